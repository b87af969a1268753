"""The synthetic batch a training job runs on, for any task: the folder the user named
(validated now if it never was), or a batch of the task's default distribution generated
and validated under the project home (reused by later runs with the same size and seed).
Only an accepted batch is trained on.

Runs started together (tuning workers on one study, runs side by side) often want the
same batch under the home: one generates and validates it while the others wait on a
lock beside it, then read it (without the lock, the second writer of the folder failed
with "another writer is creating this folder right now")."""

from __future__ import annotations

from synth.distribution import SceneDistribution
from synthloop.errors import DataFormatError
from synthloop.settings import Settings
from synthloop.taskspec import get_task

__all__ = ["prepare_training_batch"]


def prepare_training_batch(settings: Settings, task: str, *, source: str | None, n: int, seed: int,
                           dist: SceneDistribution | None = None, log=print):
    """An open :class:`synth.shards.BatchReader` of an accepted ``task`` batch; a
    quarantined batch, or one of another task, is a DataFormatError naming the folder."""
    from synth.shards import QuarantinedBatchError, open_for_training
    from synthloop.locks import file_lock

    spec = get_task(task)
    if source is None:
        dist = dist or spec.default_distribution()
        out = settings.batches_dir / f"train-{task}-{dist.id}-s{seed}-n{n}"
        # not the writer's own name lock (.<name>.lock), which it takes inside
        with file_lock(out.with_name(f".{out.name}.prepare.lock")):
            if not (out / "manifest.json").is_file():
                log(f"generating {n} synthetic {spec.samples} from {dist.id} into {out}")
                spec.generator().write(out, n=n, seed=seed, dist=dist)
            reader = _validate_once(str(out), task, log)
        source = str(out)
    else:
        reader = _validate_once(source, task, log)
    try:
        return open_for_training(source)
    except QuarantinedBatchError as e:
        said, where = str(e), f"{reader.path}: "  # the folder is named once, by the new error
        raise DataFormatError(source, said.removeprefix(where)) from None


def _validate_once(source: str, task: str, log):
    """``source``'s reader, once it is checked to hold a ``task`` batch and validated if it
    never was."""
    from expectations.validate import record_outcome, validate_batch
    from synth.shards import BatchReader

    reader = BatchReader(source)
    if reader.task != task:
        raise DataFormatError(source, f"a {reader.task!r} batch, not a {task!r} batch")
    if reader.status.status == "unvalidated":
        log(f"validating {reader.batch_id} with Great Expectations")
        record_outcome(source, validate_batch(source))
    return reader
