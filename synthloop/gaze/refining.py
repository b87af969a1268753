"""Gaze's part in refining a batch (:mod:`synthloop.refine`): the label probe and the
before/after grid.

The probe is a small gaze model trained on the *unrefined* parent batch and then frozen.
Validation runs it on every parent image and its refined twin
(:mod:`expectations.refined`): if refinement moved where the eye looks, the probe's answer
moves with it, and a refined eye whose label no longer fits is caught without a single
real label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_consistency_probe", "refine_preview", "train_label_probe"]

PROBE_MODEL = "gaze_resnet_s"
PROBE_BATCH = 64


def train_label_probe(reader, out: Path, *, seed: int, steps: int, log=print) -> Path:
    """Train the probe ``steps`` steps on ``reader``'s eyes; returns its checkpoint."""
    from models.data import ShardSource
    from models.train import TrainConfig, train

    source = ShardSource(reader, PROBE_BATCH, seed)
    cfg = TrainConfig(model=PROBE_MODEL, method="source_only", steps=steps, batch_size=PROBE_BATCH,
                      seed=seed, warmup=min(100, steps // 5), eval_every=steps, ckpt_every=steps,
                      log_every=max(1, steps // 4), select="source_error")
    val = source.gather(np.arange(min(256, reader.n)))
    log(f"label probe: {PROBE_MODEL}, {steps} steps on the unrefined eyes")
    train(cfg, source, None, out, val_source=val, resume=False)
    return Path(out) / "last.pt"


def load_consistency_probe(checkpoint: Path):
    """A frozen gaze model (a probe's ``last.pt``) as the refiner's label-consistency
    function: float eye batches in [0, 1] -> pitch and yaw in degrees, so the
    consistency weight reads per degree (:class:`models.simgan.SimGANConfig`). A module,
    so the refiner's training moves it to its own device."""
    import torch

    from models.registry import load_model

    class GazeDegrees(torch.nn.Module):
        def __init__(self, net: torch.nn.Module):
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.rad2deg(self.net(x).pitchyaw)

    probe = GazeDegrees(load_model(checkpoint)).eval()
    probe.requires_grad_(False)
    return probe


def refine_preview(reader, refined: np.ndarray, real: np.ndarray, out: Path) -> Path:
    """32 synthetic eyes and their refined twins with the (same) gaze arrows, beside real
    eyes spread evenly over the real set."""
    from synth.preview import EyePanel, eye_panels

    k = min(32, reader.n)
    meta = reader.metadata.iloc[:k]
    py, pupils = meta[["pitch", "yaw"]].to_numpy(), meta[["pupil_x_px", "pupil_y_px"]].to_numpy()
    spread = np.linspace(0, len(real) - 1, min(k, len(real))).round().astype(int)
    return eye_panels([EyePanel(reader.images(np.arange(k)), f"synthetic {reader.batch_id}", py, pupils),
                       EyePanel(refined[:k], "refined (same gaze labels)", py, pupils),
                       EyePanel(real[spread], "real (the refiner's target)")], out, cols=4)
