"""Gaze's part in refining a batch (:mod:`synthloop.refine`): the label probe and the
before/after grid.

The probe is a small gaze model trained on the *unrefined* parent batch and then frozen.
Validation runs it on every parent image and its refined twin
(:mod:`expectations.refined`): if refinement moved where the eye looks, the probe's answer
moves with it, and a refined eye whose label no longer fits is caught without a single
real label.

A patch that adds the same pattern to every eye of a head pose (the mean patches) cannot
move the eye; it can only hide it, and the frozen probe, a model of unrefined eyes, reads
the pattern itself as gaze. Such batches are checked for **learnability** instead: two
fresh probes, one on the unrefined and one on the refined eyes (every tenth eye held out
of both), and each one's error on the held-out eyes of its kind
(:func:`write_learnability`); validation bounds how much worse the refined eyes teach.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["LEARNABILITY_MAX_N", "load_consistency_probe", "refine_preview", "train_label_probe",
           "write_learnability"]

PROBE_MODEL = "gaze_resnet_s"
PROBE_BATCH = 64
#: the learnability probes read at most this many eyes of the batch (held in memory twice)
LEARNABILITY_MAX_N = 20_000
HOLDOUT_EVERY = 10  # every tenth eye is held out of both learnability probes


def train_label_probe(reader, out: Path, *, seed: int, steps: int, log=print) -> Path:
    """Train the probe ``steps`` steps on ``reader``'s eyes; returns its checkpoint."""
    from models.data import ShardSource

    log(f"label probe: {PROBE_MODEL}, {steps} steps on the unrefined eyes")
    return _train_probe(ShardSource(reader, PROBE_BATCH, seed), out, seed=seed, steps=steps)


def _train_probe(source, out: Path, *, seed: int, steps: int) -> Path:
    """A probe trained ``steps`` steps on ``source`` (source-only); its ``last.pt``."""
    from models.train import TrainConfig, train

    cfg = TrainConfig(model=PROBE_MODEL, method="source_only", steps=steps, batch_size=PROBE_BATCH,
                      seed=seed, warmup=min(100, steps // 5), eval_every=steps, ckpt_every=steps,
                      log_every=max(1, steps // 4), select="source_error")
    train(cfg, source, None, out, val_source=source.gather(np.arange(min(256, len(source)))),
          resume=False)
    return Path(out) / "last.pt"


def _held_out_errors(images: np.ndarray, pitchyaw: np.ndarray, held: np.ndarray, out: Path, *,
                     seed: int, steps: int) -> np.ndarray:
    """A probe trained ``steps`` steps on the eyes not ``held``; its angular error (deg) on
    the held ones."""
    import torch

    from analysis.gaze_eval import angular_errors_deg
    from models.data import ArraySource
    from models.predict import predict
    from models.registry import load_model

    source = ArraySource(images[~held], PROBE_BATCH, seed, labels={"pitchyaw": pitchyaw[~held]})
    net = load_model(_train_probe(source, out, seed=seed, steps=steps)).eval()
    pred = predict(net, torch.from_numpy(images[held]).unsqueeze(1), amp=False).pitchyaw.numpy()
    return angular_errors_deg(pred, pitchyaw[held])


def write_learnability(reader, refiner, condition, out: Path, *, seed: int, steps: int,
                       log=print) -> Path:
    """Whether the refined eyes still teach their labels: a probe trained on the parent's
    eyes and one on the same eyes refined (the first :data:`LEARNABILITY_MAX_N`, every
    tenth held out of both), each scored on the held-out eyes of its kind. Writes
    ``learnability.csv`` (``sample, parent_error_deg, refined_error_deg``) into ``out``."""
    import pandas as pd

    from models.data import batch_gaze_labels
    from models.simgan import refine_images

    n = min(reader.n, LEARNABILITY_MAX_N)
    idx = np.arange(n)
    held = idx % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
    if held.sum() == 0 or (~held).sum() == 0:
        raise ValueError(f"{reader.path}: {n} eyes are too few to hold every "
                         f"{HOLDOUT_EVERY}th out of a learnability probe")
    images = reader.images(idx)
    refined = refine_images(refiner, images, condition=None if condition is None else condition[:n])
    pitchyaw = batch_gaze_labels(reader)["pitchyaw"][:n]
    log(f"label learnability: two {PROBE_MODEL} probes, {steps} steps each on "
        f"{int((~held).sum()):,} unrefined and refined eyes, scored on {int(held.sum()):,} held out")
    out = Path(out)
    errors = {name: _held_out_errors(x, pitchyaw, held, out / name, seed=seed, steps=steps)
              for name, x in (("parent", images), ("refined", refined))}
    path = out / "learnability.csv"
    pd.DataFrame({"sample": idx[held], "parent_error_deg": errors["parent"],
                  "refined_error_deg": errors["refined"]}).to_csv(path, index=False)
    return path


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
