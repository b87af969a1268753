"""Training progress for people (synthloop.progress): a short training prints its steps,
loss, rate and time left in a few lines; a resumed run's rate counts only the steps it
did; a log that offers a bar gets the bar."""

import re

import numpy as np

from models.data import ArraySource
from models.train import TrainConfig, train
from synthloop.progress import (
    TrainProgress,
    chain,
    format_duration,
    images_per_step,
    training_progress,
)

TINY = {"widths": (4, 8, 8, 8), "depths": (1, 1, 1, 1), "feature_dim": 16}


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_a_short_training_prints_its_steps(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 36, 60), dtype=np.uint8)
    labels = {"pitchyaw": ((rng.random((64, 2)) - 0.5) * 0.8).astype(np.float32)}
    src = ArraySource(images, 8, seed=0, labels=labels)
    cfg = TrainConfig(model_kwargs=TINY, method="dann", method_kwargs={"hidden": 16}, steps=40,
                      batch_size=8, warmup=2, eval_every=40, ckpt_every=40, log_every=5)
    lines: list[str] = []
    train(cfg, src, ArraySource(images, 8, seed=1), tmp_path, val_source=src.gather(range(16)),
          val_target=ArraySource(images, 8, seed=2).gather(range(16)),
          callback=training_progress(lines.append, cfg.steps, images_per_step(cfg), "round 0: train"))
    steps = [int(m) for line in lines for m in re.findall(r"step (\d+)/40", line)]
    assert steps == sorted(steps) and steps[-1] == 40 and 3 <= len(steps) <= 11, lines
    assert all(line.startswith("round 0: train step ") for line in lines)
    assert all(re.search(r"loss \d", line) for line in lines)
    assert all(re.search(r"[\d,]+ img/s", line) for line in lines[1:]), lines  # after the first
    assert lines[-1].endswith("done") and "left" not in lines[-1]
    assert all(" left" in line for line in lines[1:-1])


def test_rate_and_time_left_from_the_steps_this_process_did():
    clock, lines = FakeClock(), []
    p = TrainProgress(100, 64, lines.append, every=10, clock=clock)
    p(50, {"loss": 2.0})  # a resumed run: its first report is at step 50
    clock.t += 10.0
    p(60, {"loss": 1.5})  # 10 steps in 10 s: 64 img/s, 40 steps left = 40 s
    assert lines == ["train step 50/100  loss 2", "train step 60/100  loss 1.5  64 img/s  40s left"]
    clock.t += 1.0
    p(65, {"loss": 1.4})  # between reports: silent
    assert len(lines) == 2
    clock.t += 39.0
    p(100, {"loss": 1.0})
    assert lines[-1] == "train step 100/100  loss 1  64 img/s  done"


def test_the_last_step_is_always_reported():
    lines = []
    p = TrainProgress(25, 8, lines.append, every=10, clock=FakeClock())
    for step in (5, 10, 15, 20, 25):
        p(step, {})
    assert [re.search(r"step (\d+)", x).group(1) for x in lines] == ["5", "15", "25"]


def test_a_log_with_a_bar_gets_the_bar():
    made = []

    class BarLog:
        def __call__(self, msg):
            raise AssertionError("lines instead of the bar")

        def bar(self, total, label):
            made.append((total, label))
            return lambda step, metrics: made.append(step)

    cb = training_progress(BarLog(), 30, 8, "x")
    cb(10, {"loss": 1.0})
    assert made == [(30, "x"), 10]


def test_chain_calls_each_callback_and_skips_none():
    seen = []
    chain(lambda s, m: seen.append(("a", s)), None, lambda s, m: seen.append(("b", s)))(3, {})
    assert seen == [("a", 3), ("b", 3)]


def test_images_per_step_counts_target_images_only_for_methods_that_use_them():
    assert images_per_step(TrainConfig(method="source_only", batch_size=16)) == 16
    assert images_per_step(TrainConfig(method="dann", batch_size=16)) == 32
    assert images_per_step(TrainConfig(method="dann", batch_size=16, target_batch_size=8)) == 24


def test_format_duration():
    assert [format_duration(s) for s in (0, 12.4, 65, 3725)] == ["0s", "12s", "1m05s", "1h02m"]
