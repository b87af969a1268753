"""prepare_training_batch: the batch under the home that runs started together share is
generated and validated once; the others wait for it and read it."""

import threading
import time

import expectations.validate
from expectations.validate import ValidationReport
from synth.shards import BatchReader
from synthloop.batches import prepare_training_batch
from synthloop.gaze.spec import EyeBatchGenerator
from synthloop.settings import Settings


def test_runs_started_together_share_one_generated_batch(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    write = EyeBatchGenerator.write
    first_writing = threading.Event()

    def slow_start(self, out, **kw):
        # the first run is still drawing its scenes when the second one arrives: before
        # the lock, one of the two failed on the other's half-written folder
        first_writing.set()
        time.sleep(0.5)
        return write(self, out, **kw)

    validated = []

    def accept(source):  # Great Expectations is not what this test is about (and costs ~10 s)
        validated.append(source)
        return ValidationReport(batch_id=BatchReader(source).batch_id, success=True)

    monkeypatch.setattr(EyeBatchGenerator, "write", slow_start)
    monkeypatch.setattr(expectations.validate, "validate_batch", accept)
    logs: dict[str, list[str]] = {"first": [], "second": []}
    readers, errors = {}, []

    def run(name: str) -> None:
        if name == "second":
            first_writing.wait(timeout=60)
        try:
            readers[name] = prepare_training_batch(settings, "gaze", source=None, n=48, seed=5,
                                                   log=logs[name].append)
        except Exception as e:  # noqa: BLE001  (the test reports it below)
            errors.append(f"{name}: {e}")

    threads = [threading.Thread(target=run, args=(name,)) for name in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert readers["first"].batch_id == readers["second"].batch_id
    assert [m for m in logs["first"] if m.startswith("generating")] != []
    assert logs["second"] == []  # it neither generated nor validated: it waited and read
    assert len(validated) == 1 and readers["second"].status.status == "accepted"
