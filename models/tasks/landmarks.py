r"""The landmark task: face crops with point labels, the landmark loss, NMEs and the
label-free heatmap scores, through which :mod:`models.train` trains landmark models.

**Label-free scores** on target images, the landmark analogues of the gaze
validators, over the per-landmark spatial softmaxes of the last stack:
``target_entropy`` (mean spatial entropy, nats; the default selector), ``target_im``
(:math:`H(\bar p_k) - \overline{H(p_k)}`, mean over landmarks), ``target_bnm`` (mean
:math:`\|P_k\|_*/B`; circular for DALN, which optimises it) and ``target_snd_features``
(SND on the pooled features). No ``target_snd`` on the probabilities: that similarity
matrix would be N x N over K*H*W-long vectors. Caveat for entropy: the learnable
inverse temperature sharpens every map as training goes on, so entropy falls with
training time as well as with transfer; ``select="source_error"`` is the safer choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from models.augment import FACE_PHOTOMETRIC, GeometryConfig, augment_landmarks
from models.configs import strict_from_dict
from models.da_losses import nuclear_norm_gram
from models.heatmaps import spatial_entropy
from models.landmark_losses import landmark_loss, nme
from models.predict import predict, predict_points
from models.registration import register_task
from models.validators import snd_score

__all__ = ["LANDMARK_SELECTORS", "LandmarkTask", "LandmarkTaskConfig"]

#: selection name -> (metric key, "min" | "max") for the landmark task
LANDMARK_SELECTORS: dict[str, tuple[str, str]] = {
    "entropy": ("target_entropy", "min"),
    "im": ("target_im", "max"),
    "bnm": ("target_bnm", "max"),  # circular for DALN
    "source_error": ("source_nme_crop", "min"),
}

_BNM_LANDMARK_GROUP = 128  # landmarks per Gram batch in the eval BNM (bounds memory)


def _nme_metrics(pred: Tensor, true: Tensor, visible: Tensor | None, crop_size: float,
                 prefix: str) -> dict[str, float]:
    out = {f"{prefix}nme_crop": float(nme(pred, true, norm="crop", visible=visible, crop_size=crop_size))}
    if true.shape[1] == 68:
        out[f"{prefix}nme_io"] = float(nme(pred, true, norm="inter_ocular", visible=visible))
    return out


# --------------------------------------------------------------------------- label-free


class _HeatmapStats:
    """Streams the label-free scores over evaluation chunks (never holds all maps)."""

    def __init__(self) -> None:
        self.n = 0
        self.entropy_sum = 0.0
        self.p_sum: Tensor | None = None  # (K, HW) float64
        self.bnm_sum = 0.0
        self.features: list[Tensor] = []
        self.hw = 1

    def add(self, probs: Tensor, features: Tensor) -> None:
        """probs: ``(n, K, HW)`` spatial softmaxes; features: ``(n, F)``."""
        n, k, hw = probs.shape
        self.hw = hw
        p = probs.double()
        self.entropy_sum += float(spatial_entropy(p).mean(1).sum())
        self.p_sum = p.sum(0) if self.p_sum is None else self.p_sum + p.sum(0)
        pk = p.transpose(0, 1)  # (K, n, HW)
        nuc = torch.cat([nuclear_norm_gram(pk[i:i + _BNM_LANDMARK_GROUP])
                         for i in range(0, k, _BNM_LANDMARK_GROUP)])
        self.bnm_sum += float(nuc.mean())  # = n * (mean_k ||P_k||_* / n): chunks weighted by size
        self.features.append(features.detach().float().cpu())
        self.n += n

    def scores(self, prefix: str) -> dict[str, float]:
        assert self.p_sum is not None and self.n > 0
        mean_entropy = self.entropy_sum / self.n
        p_bar = self.p_sum / self.n
        h_bar = float(spatial_entropy(p_bar).mean())
        out = {"entropy": mean_entropy, "max_entropy": math.log(self.hw), "im": h_bar - mean_entropy,
               "bnm": self.bnm_sum / self.n}
        feats = torch.cat(self.features)
        if feats.shape[0] >= 3:
            out["snd_features"] = snd_score(feats[:4096])
        return {prefix + k: v for k, v in out.items()}


# --------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class LandmarkTaskConfig:
    """``TrainConfig.task_kwargs`` of the landmark task: the loss and the face augmentation.

    ``coord_weight`` scales the crop-normalised coordinate loss (a 2 px error at 128 px
    is 0.016): raise it, or lower ``trade_off``, so DA terms of ~0.5 do not drown it.
    """

    coord: str = "l1"
    coord_weight: float = 1.0
    heatmap_weight: float = 0.0
    sigma: float = 1.0
    smooth_l1_beta: float = 0.01
    wing_w: float = 0.08
    wing_eps: float = 0.016
    max_scale: float = 0.05
    max_translate: float = 4.0
    p_geometry: float = 0.8
    # "basic": small scale and shift (the options above) and photometric; "faces": the
    # full face augmentation (models.landmark_augment: flips with ``mirror``, rotation,
    # scale, occlusion, colour, blur, noise, JPEG), its defaults
    augment: str = "basic"
    mirror: list[int] | None = None  # the point layout's left/right permutation

    def __post_init__(self) -> None:
        if self.coord not in ("l1", "smooth_l1", "wing"):
            raise ValueError(f"coord must be 'l1', 'smooth_l1' or 'wing', got {self.coord!r}")
        if self.wing_w <= 0 or self.wing_eps <= 0:
            raise ValueError(f"need wing_w > 0 and wing_eps > 0: {self}")
        if self.augment not in ("basic", "faces"):
            raise ValueError(f"augment must be 'basic' or 'faces', got {self.augment!r}")
        if self.mirror is not None:
            from models.landmark_augment import check_mirror

            check_mirror(self.mirror)
        if self.coord_weight <= 0 or self.heatmap_weight < 0 or self.sigma <= 0:
            raise ValueError(f"need coord_weight > 0, heatmap_weight >= 0, sigma > 0: {self}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LandmarkTaskConfig:
        return strict_from_dict(cls, dict(d))

    def loss_kwargs(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in ("coord", "coord_weight", "heatmap_weight", "sigma",
                                  "smooth_l1_beta", "wing_w", "wing_eps")}


@register_task("landmarks")
class LandmarkTask:
    """Batches: ``image`` uint8 ``(N, 3, 128, 128)`` (or float in [0, 1]), ``points``
    ``(N, K, 2)`` float ``(x, y)`` pixel-centre coordinates, optional ``visible`` ``(N, K)``.
    Models: registered with ``task="landmarks"`` (the hourglass family)."""

    name = "landmarks"
    loss_key = "landmarks"
    selectors = LANDMARK_SELECTORS
    eval_chunk = 64  # (N, S, K, 32, 32) maps per chunk: 64 x 4 x 703 x 4 KiB = 0.7 GiB

    def check_config(self, cfg: Any) -> None:
        LandmarkTaskConfig.from_dict(cfg.task_kwargs)
        if cfg.select not in self.selectors:
            raise ValueError(f"select must be one of {sorted(self.selectors)} for landmarks, "
                             f"got {cfg.select!r}")

    @staticmethod
    def _cfg(cfg: Any) -> LandmarkTaskConfig:
        return LandmarkTaskConfig.from_dict(cfg.task_kwargs)

    def labels(self, batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
        out = {"points": batch["points"].to(device, non_blocking=True).float()}
        if batch.get("visible") is not None:
            out["visible"] = batch["visible"].to(device, non_blocking=True).float()
        return out

    def augment(self, x: Tensor, labels: dict[str, Tensor], gen: torch.Generator,
                cfg: Any) -> tuple[Tensor, dict[str, Tensor]]:
        t = self._cfg(cfg)
        if t.augment == "faces":
            from models.landmark_augment import FaceAugmentConfig, augment_faces

            face_cfg = FaceAugmentConfig() if t.mirror is not None else FaceAugmentConfig(p_flip=0.0)
            x, points, visible = augment_faces(x, gen, labels["points"], labels.get("visible"),
                                               t.mirror, face_cfg)
            return x, {**labels, "points": points,
                       **({"visible": visible} if visible is not None else {})}
        geometry = GeometryConfig(t.max_scale, t.max_translate, t.p_geometry)
        x, points = augment_landmarks(x, gen, labels["points"], geometry, FACE_PHOTOMETRIC)
        return x, {**labels, "points": points}

    def loss(self, model: nn.Module, out: Any, labels: dict[str, Tensor], cfg: Any) -> dict[str, Tensor]:
        return landmark_loss(out, labels["points"], labels.get("visible"),
                             crop_size=model.input_size, stride=model.stride,
                             **self._cfg(cfg).loss_kwargs())

    def train_metrics(self, model: nn.Module, out: Any, labels: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"src_nme_crop": nme(out.coords.detach(), labels["points"], norm="crop",
                                    visible=labels.get("visible"), crop_size=model.input_size)}

    def evaluate(self, model: nn.Module, val_source: Mapping[str, Tensor] | None,
                 val_target: Mapping[str, Tensor] | None, *, amp: bool, chunk: int) -> dict[str, float]:
        """``source_nme_crop`` (+ ``source_nme_io`` for 68 points) on labeled
        ``val_source``; the label-free scores (module docstring) on ``val_target``, and
        its NMEs if it carries ``points`` (benchmarks only, never for selection)."""
        res: dict[str, float] = {}
        crop = float(model.input_size)
        if val_source is not None:
            pred = predict_points(model, val_source["image"], amp=amp, chunk=chunk)
            res.update(_nme_metrics(pred, val_source["points"].to(pred.device),
                                    _on(val_source.get("visible"), pred.device), crop, "source_"))
        if val_target is not None:
            stats = _HeatmapStats()
            coords = []
            images = val_target["image"]
            for i in range(0, images.shape[0], chunk):
                out = predict(model, images[i:i + chunk], amp, chunk)
                stats.add(out.spatial_probs, out.features)
                coords.append(out.coords)
            res.update(stats.scores("target_"))
            if val_target.get("points") is not None:
                pred = torch.cat(coords)
                res.update(_nme_metrics(pred, val_target["points"].to(pred.device),
                                        _on(val_target.get("visible"), pred.device), crop, "target_"))
        return res


def _on(t: Tensor | None, device: torch.device) -> Tensor | None:
    return None if t is None else t.to(device)
