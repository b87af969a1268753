"""The weight average: its arithmetic against a hand computation, and a training run
that evaluates, saves and resumes it exactly."""

import numpy as np
import pytest
import torch
from torch import nn

from models.checkpoint import load_checkpoint
from models.data import ArraySource
from models.ema import WeightEMA
from models.registry import load_model
from models.train import TrainConfig, train

TINY = {"widths": (4, 8, 8, 8), "depths": (1, 1, 1, 1), "feature_dim": 16}


def test_the_average_follows_the_hand_computation():
    net = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    ema = WeightEMA(net, 0.9)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.9
    with torch.no_grad():
        net[0].weight.fill_(3.0)
        net[1].num_batches_tracked.fill_(7)
    ema.update(net, 0)          # decay 1/10: 0.1 * 1 + 0.9 * 3
    assert torch.allclose(ema.model[0].weight, torch.full((1, 2), 2.8))
    ema.update(net, 10**6)      # decay 0.9: 0.9 * 2.8 + 0.1 * 3
    assert torch.allclose(ema.model[0].weight, torch.full((1, 2), 2.82))
    assert int(ema.model[1].num_batches_tracked) == 7          # integers are copied
    assert not any(p.requires_grad for p in ema.model.parameters())
    assert float(net[0].weight.detach()[0, 0]) == 3.0                   # the online model is untouched


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(nn.Linear(1, 1), decay)
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(ema=decay)


def _source():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (48, 36, 60), dtype=np.uint8)
    pitchyaw = ((rng.random((48, 2)) - 0.5) * 0.8).astype(np.float32)
    src = ArraySource(images, 8, seed=0, labels={"pitchyaw": pitchyaw})
    return src, src.gather(range(16))


def _cfg(**kw):
    return TrainConfig(**{**dict(model_kwargs=TINY, steps=12, batch_size=8, warmup=2,
                                 eval_every=4, ckpt_every=6, log_every=4, select="source_error",
                                 ema=0.95), **kw})


def test_training_saves_the_average_as_the_model(tmp_path):
    src, val = _source()
    train(_cfg(), src, None, tmp_path / "full", val_source=val)
    ck = load_checkpoint(tmp_path / "full" / "last.pt")
    avg, online = ck["model_state"], ck["online_state"]
    moved = [k for k in avg if avg[k].is_floating_point() and not torch.equal(avg[k], online[k])]
    assert moved, "the average should differ from the online weights after 12 steps"
    served = load_model(tmp_path / "full" / "last.pt")
    assert torch.equal(served.state_dict()[moved[0]], avg[moved[0]])

    best = load_checkpoint(tmp_path / "full" / "best.pt")
    assert "online_state" not in best  # best.pt is for serving: the average only


def test_resume_from_step_6_continues_the_average(tmp_path):
    src, val = _source()
    train(_cfg(), src, None, tmp_path / "full", val_source=val)

    class Stop:
        batch_size = 8

        def batch(self, step):
            if step == 6:
                raise KeyboardInterrupt
            return src.batch(step)

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(), Stop(), None, tmp_path / "cut", val_source=val)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["step"] == 6
    train(_cfg(), src, None, tmp_path / "cut", val_source=val)
    a, b = (load_checkpoint(tmp_path / d / "last.pt") for d in ("full", "cut"))
    for part in ("model_state", "online_state"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part


def test_without_ema_checkpoints_hold_no_second_copy(tmp_path):
    src, val = _source()
    train(_cfg(ema=None, steps=4), src, None, tmp_path, val_source=val)
    assert "online_state" not in load_checkpoint(tmp_path / "last.pt")
