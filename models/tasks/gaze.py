"""The gaze task: eye patches with (pitch, yaw) labels, the L2CS loss, angular error and
the label-free checkpoint selectors on target eyes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from models.augment import augment
from models.configs import strict_from_dict
from models.gaze_loss import angular_error_deg, gaze_loss
from models.predict import predict
from models.registration import register_task
from models.validators import unsupervised_scores

__all__ = ["GAZE_SELECTORS", "GazeTask", "GazeTaskConfig", "mirror_patches"]

#: selection name -> (metric key in the eval dict, "min" | "max")
GAZE_SELECTORS: dict[str, tuple[str, str]] = {
    # Default. Mean entropy of the pitch/yaw bin softmaxes on target images: a model that
    # transfers makes confident bin predictions on the target too. It is no method's
    # training objective here: DALN maximises the nuclear norm of the softmax matrix,
    # which *is* BNM (selecting DALN with BNM would score what it optimises), and DANN
    # optimises a discriminator. Its known failure (confident collapse) shows up as a low
    # target_im, which is reported next to it.
    "entropy": ("target_entropy", "min"),
    "im": ("target_im", "max"),
    "snd": ("target_snd", "max"),
    "bnm": ("target_bnm", "max"),  # circular for DALN; offered for comparisons
    "source_error": ("source_angular_error_deg", "min"),  # the "source-val" baseline
}


@dataclass(frozen=True)
class GazeTaskConfig:
    """``TrainConfig.task_kwargs`` of the gaze task: the regression term of the loss and
    the mirroring of training patches.

    ``reg``: ``"l1"`` (deg) or ``"mse"`` (deg^2). L1 x 0.1 keeps the task loss at a few
    nats, comparable to the transfer losses (~0.4-0.7); with L2CS's deg^2 MSE at alpha 1
    the task loss is ~100-250 and a trade_off of 1 left DANN's term negligible (measured:
    domain accuracy stayed at 0.82-0.88, target error unchanged).

    ``mirror``: the probability that a training patch is flipped left to right with its
    yaw negated (a mirrored right eye is a left eye looking the other way; labels stay
    exact). 0 draws nothing, so training is bit for bit what it was without it.

    ``mirror_eye``: ``"L"`` or ``"R"`` when the real eyes of that side were mirrored onto
    the other side's for training (yaw negated; :mod:`realdata.eye_side`), else None. It
    is the model's input convention, not a training step: ``synthloop train`` mirrors
    the real folders and ``synthloop evaluate`` mirrors the same side and maps the
    predictions back, reading it from the checkpoint.
    """

    reg: str = "l1"
    reg_alpha: float = 0.1
    mirror: float = 0.0
    mirror_eye: str | None = None

    def __post_init__(self) -> None:
        if self.reg not in ("mse", "l1"):
            raise ValueError(f"reg must be 'mse' or 'l1', got {self.reg!r}")
        if self.reg_alpha < 0:
            raise ValueError(f"reg_alpha must be >= 0, got {self.reg_alpha}")
        if not 0.0 <= self.mirror <= 1.0:
            raise ValueError(f"mirror must be a probability in [0, 1], got {self.mirror}")
        if self.mirror_eye not in (None, "L", "R"):
            raise ValueError(f"mirror_eye must be None, 'L' or 'R', got {self.mirror_eye!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GazeTaskConfig:
        return strict_from_dict(cls, dict(d))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mirror_patches(x: Tensor, labels: dict[str, Tensor], gen: torch.Generator, p: float
                   ) -> tuple[Tensor, dict[str, Tensor]]:
    """Flip each patch left to right with probability ``p``; the labeled ones (the first
    ``len(pitchyaw)`` rows) get their yaw negated. Rows after them (a DA target) flip
    without labels."""
    flip = torch.rand(x.shape[0], generator=gen, device=gen.device).to(x.device) < p
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    py = labels["pitchyaw"]
    sign = torch.where(flip[:len(py)], -1.0, 1.0).to(py.dtype)
    return x, {**labels, "pitchyaw": torch.stack([py[:, 0], py[:, 1] * sign], 1)}


@register_task("gaze")
class GazeTask:
    """Eye patches ``image`` uint8 ``(N, 1, 36, 60)`` with ``pitchyaw`` ``(N, 2)`` radians;
    the L2CS loss of :func:`~models.gaze_loss.gaze_loss` (:class:`GazeTaskConfig`)."""

    name = "gaze"
    loss_key = "gaze"
    selectors = GAZE_SELECTORS
    eval_chunk = 512

    def check_config(self, cfg: Any) -> None:
        GazeTaskConfig.from_dict(cfg.task_kwargs)
        if cfg.select not in self.selectors:
            raise ValueError(f"select must be one of {sorted(self.selectors)}, got {cfg.select!r}")

    def labels(self, batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
        return {"pitchyaw": batch["pitchyaw"].to(device, non_blocking=True).float()}

    def augment(self, x: Tensor, labels: dict[str, Tensor], gen: torch.Generator,
                cfg: Any) -> tuple[Tensor, dict[str, Tensor]]:
        x = augment(x, gen)  # no op there changes the gaze label (models.augment)
        mirror = GazeTaskConfig.from_dict(cfg.task_kwargs).mirror
        if mirror > 0:
            x, labels = mirror_patches(x, labels, gen, mirror)
        return x, labels

    def loss(self, model: nn.Module, out: Any, labels: dict[str, Tensor],
             cfg: Any) -> dict[str, Tensor]:
        t = GazeTaskConfig.from_dict(cfg.task_kwargs)
        return gaze_loss(out, labels["pitchyaw"], model.bins, alpha=t.reg_alpha, reg=t.reg)

    def train_metrics(self, model: nn.Module, out: Any,
                      labels: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"src_angular_error_deg": angular_error_deg(out.pitchyaw.detach(), labels["pitchyaw"])}

    def evaluate(self, model: nn.Module, val_source: Mapping[str, Tensor] | None,
                 val_target: Mapping[str, Tensor] | None, *, amp: bool,
                 chunk: int) -> dict[str, float]:
        """``source_angular_error_deg`` on labeled ``val_source``; the label-free scores of
        :mod:`models.validators` on ``val_target`` (``target_entropy``, ``target_im``,
        ``target_bnm``, ``target_snd``...), and ``target_angular_error_deg`` when it
        carries ``pitchyaw`` (benchmarks and tuning only, never for selection)."""
        res: dict[str, float] = {}
        if val_source is not None:
            out = predict(model, val_source["image"], amp, chunk)
            y = val_source["pitchyaw"].to(out.pitchyaw.device)
            res["source_angular_error_deg"] = float(angular_error_deg(out.pitchyaw, y))
        if val_target is not None:
            out = predict(model, val_target["image"], amp, chunk)
            res.update(unsupervised_scores(out.logits, out.features, prefix="target_"))
            if val_target.get("pitchyaw") is not None:
                y = val_target["pitchyaw"].to(out.pitchyaw.device)
                res["target_angular_error_deg"] = float(angular_error_deg(out.pitchyaw, y))
        return res
