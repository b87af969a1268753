"""Champion promotion: only a better score on a comparable validation moves the alias."""

import pytest


@pytest.fixture()
def registry(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from synthloop import tracking

    tracking.configure(f"sqlite:///{tmp_path / 'mlflow.db'}", "gaze", tmp_path / "art")
    client = MlflowClient()
    name = tracking.registered_model_name("gaze")
    client.create_registered_model(name)

    def version(score: float, target: str, metric: str = "target_entropy_best") -> str:
        with mlflow.start_run() as run:
            mlflow.set_tags({"target": target, "selection_metric": "target_entropy"})
            mlflow.log_metric(metric, score)
        return client.create_model_version(name, f"file://{tmp_path}/m", run.info.run_id).version

    yield client, name, version
    mlflow.set_tracking_uri("")


def _champion(client, name):
    return client.get_model_version_by_alias(name, "champion").version


def test_promotion_needs_a_better_comparable_score(registry):
    from synthloop.tracking import maybe_promote

    client, name, version = registry
    on_a = {"target": "/data/a", "selection_metric": "target_entropy"}
    v1 = version(2.0, "/data/a")
    assert maybe_promote("gaze", v1, "target_entropy_best", 2.0, False, on_a)["promoted"]
    assert _champion(client, name) == v1

    v2 = version(2.5, "/data/a")  # worse (lower entropy is better)
    d = maybe_promote("gaze", v2, "target_entropy_best", 2.5, False, on_a)
    assert not d["promoted"] and d["reason"] == "not better than the champion"
    assert _champion(client, name) == v1
    # the registry page says it in words, with both numbers
    tag = client.get_model_version(name, v2).tags["champion_decision"]
    assert tag == f"not champion: not better than the champion (target_entropy_best 2.5 vs 2 of version {v1})"

    v3 = version(1.0, "/data/b")  # better number, but measured on another target
    d = maybe_promote("gaze", v3, "target_entropy_best", 1.0, False,
                      {"target": "/data/b", "selection_metric": "target_entropy"})
    assert not d["promoted"] and "target" in d["reason"]
    assert _champion(client, name) == v1

    v4 = version(1.5, "/data/a")
    assert maybe_promote("gaze", v4, "target_entropy_best", 1.5, False, on_a)["promoted"]
    assert _champion(client, name) == v4
    # higher-is-better metrics compare the other way
    v5 = version(1.6, "/data/a")
    assert maybe_promote("gaze", v5, "target_entropy_best", 1.6, True, on_a)["promoted"]


def test_a_checkpoint_folder_belongs_to_one_dataset(tmp_path):
    from synthloop.runs import claim_output_dir

    out = tmp_path / "ckpt"
    data = {"source_batch": "batch-1", "target": "/t", "target_n": 10, "target_paths": "abc"}
    claim_output_dir(out, data)
    claim_output_dir(out, dict(data))  # same data: resume is fine
    with pytest.raises(ValueError, match="target.*differ"):
        claim_output_dir(out, {**data, "target": "/other"})
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "last.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown provenance"):
        claim_output_dir(stray, data)


@pytest.mark.parametrize("level, shown", [
    ("WARNING", ["WARNING mlflow: the artifact store is slow\n"]),
    ("INFO", ["Registered model 'synthloop-gaze' already exists. Creating a new version of "
              "this model...\n", "Created version '2' of model 'synthloop-gaze'.\n",
              "WARNING mlflow: the artifact store is slow\n"]),
])
def test_registration_chatter_is_dropped_and_every_other_line_kept(level, shown, capsys,
                                                                   monkeypatch):
    import logging

    from mlflow.utils.logging_utils import eprint

    from synthloop.tracking import _registry_chatter_off

    monkeypatch.setattr(logging.getLogger("mlflow"), "level", getattr(logging, level))
    with _registry_chatter_off():
        eprint("Registered model 'synthloop-gaze' already exists. Creating a new version of "
               "this model...")
        eprint("Created version '2' of model 'synthloop-gaze'.")
        eprint("WARNING mlflow: the artifact store is slow")
    assert capsys.readouterr().err == "".join(shown)


def test_registrations_in_two_threads_leave_stderr_as_it_was(monkeypatch):
    # the first registration ends while the second is still in: unserialised, the first's
    # restore would come first and the second's would leave stderr on the first's buffer
    import logging
    import sys
    import threading
    import time

    from synthloop.tracking import _registry_chatter_off

    monkeypatch.setattr(logging.getLogger("mlflow"), "level", logging.WARNING)
    before = sys.stderr
    first_in, second_going = threading.Event(), threading.Event()

    def first() -> None:
        with _registry_chatter_off():
            first_in.set()
            second_going.wait(1.0)
            time.sleep(0.05)

    def second() -> None:
        first_in.wait(1.0)
        second_going.set()
        with _registry_chatter_off():
            time.sleep(0.2)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sys.stderr is before
