r"""The landmark task: loss, NME metrics, label-free heatmap scores, and the task object
through which :mod:`models.train` trains and evaluates landmark models.

**Loss** (:func:`landmark_loss`). Integral regression on the soft-argmax coordinates
of every stack (intermediate supervision, Newell et al. 2016), normalised by the crop
size, with per-point weights :math:`w_{nk}` (0 for invisible or missing points):

.. math::
    \mathcal{L}_{coord}^{(s)} = \frac{\sum_{n,k} w_{nk}\,
        \tfrac12 \big(\ell(\hat x^{(s)}_{nk} - x_{nk}) + \ell(\hat y^{(s)}_{nk} - y_{nk})\big) / L}
        {\sum_{n,k} w_{nk}}, \qquad
    \mathcal{L} = \lambda_c \frac{1}{S}\sum_s \mathcal{L}_{coord}^{(s)}
                + \lambda_h \frac{1}{S}\sum_s \mathcal{L}_{KL}^{(s)}

with :math:`\ell` = L1 or smooth-L1, :math:`L` the crop size (128) and
:math:`\mathcal{L}_{KL}` the weighted mean of :func:`models.heatmaps.heatmap_kl`
(off by default: :math:`\lambda_h = 0`). Stacks are *averaged*, not summed as in the
paper, so the task loss, and with it the DA trade-off, means the same for 2 and 4 stacks.

**Metrics.** NME = 100 x mean point error / normaliser (DESIGN.md): inter-ocular
(outer eye corners, points 36 and 45 of the 0-based iBug 68) or the crop size; always
named in the key (``source_nme_io``, ``source_nme_crop``).

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
import torch.nn.functional as F
from torch import Tensor, nn

from models.augment import FACE_PHOTOMETRIC, GeometryConfig, augment_landmarks
from models.configs import strict_from_dict
from models.da_losses import nuclear_norm_gram
from models.heatmaps import heatmap_kl, spatial_entropy
from models.registry import register_task
from models.validators import snd_score

__all__ = [
    "IBUG_OUTER_EYE_CORNERS",
    "LANDMARK_SELECTORS",
    "LandmarkTask",
    "LandmarkTaskConfig",
    "landmark_loss",
    "nme",
    "point_errors",
    "point_weights",
    "predict_points",
]

#: 0-based indices of the outer eye corners in the iBug 68 layout (inter-ocular NME).
IBUG_OUTER_EYE_CORNERS = (36, 45)
IBUG_LEFT_EYE = tuple(range(36, 42))
IBUG_RIGHT_EYE = tuple(range(42, 48))

#: selection name -> (metric key, "min" | "max") for the landmark task
LANDMARK_SELECTORS: dict[str, tuple[str, str]] = {
    "entropy": ("target_entropy", "min"),
    "im": ("target_im", "max"),
    "bnm": ("target_bnm", "max"),  # circular for DALN
    "source_error": ("source_nme_crop", "min"),
}

_BNM_LANDMARK_GROUP = 128  # landmarks per Gram batch in the eval BNM (bounds memory)


# --------------------------------------------------------------------------- loss


def point_weights(points: Tensor, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(weights (N, K) float, points with missing entries zeroed)``.

    A point counts with weight ``visible`` (bool or float in [0, 1]; 1 if None) and weight
    0 wherever its coordinates are not finite (missing labels may be NaN). Zeroing the
    missing coordinates keeps NaNs out of the graph: ``0 * nan`` would poison gradients.
    """
    finite = torch.isfinite(points).all(-1)
    w = finite.float() if visible is None else visible.float() * finite
    return w, torch.where(finite.unsqueeze(-1), points.float(), torch.zeros_like(points, dtype=torch.float32))


def _weighted_mean(values: Tensor, w: Tensor) -> Tensor:
    """``sum(w * v) / sum(w)`` over everything; 0 (with zero gradient) when all weights are 0."""
    return (values * w).sum() / w.sum().clamp_min(1e-12)


def landmark_loss(out: Any, points: Tensor, visible: Tensor | None = None, *, crop_size: float,
                  stride: float, coord: str = "l1", coord_weight: float = 1.0,
                  heatmap_weight: float = 0.0, sigma: float = 1.0,
                  smooth_l1_beta: float = 0.01) -> dict[str, Tensor]:
    """The landmark task loss (module docstring) on a :class:`~models.hourglass.LandmarkOutput`.

    Args:
        out: needs ``stack_coords`` ``(N, S, K, 2)``; and ``heatmaps`` ``(N, S, K, H, W)``
            (beta-scaled logits) when ``heatmap_weight > 0``.
        points: ``(N, K, 2)`` true ``(x, y)`` pixel-centre coordinates; NaN = missing.
        visible: ``(N, K)`` bool or float weights, or None (all visible).
        crop_size: input crop size in pixels (the normaliser); stride: pixels per cell.
        coord: ``"l1"`` or ``"smooth_l1"`` (``smooth_l1_beta`` in crop units: 0.01 = 1.3 px).
        sigma: Gaussian target width in heatmap cells, for the heatmap term.

    Returns:
        ``{"landmarks": total, "coord": last stack, "coord_inter": mean of the earlier
        stacks (if any), "heatmap": mean KL over stacks (if heatmap_weight > 0)}``.
    """
    w, target = point_weights(points, visible)
    stack_coords = out.stack_coords.float()
    n_stacks = stack_coords.shape[1]
    per_stack = []
    for s in range(n_stacks):
        d = (stack_coords[:, s] - target) / crop_size  # (N, K, 2)
        if coord == "l1":
            e = d.abs()
        elif coord == "smooth_l1":
            e = F.smooth_l1_loss(d, torch.zeros_like(d), beta=smooth_l1_beta, reduction="none")
        else:
            raise ValueError(f"coord must be 'l1' or 'smooth_l1', got {coord!r}")
        per_stack.append(_weighted_mean(e.mean(-1), w))
    losses: dict[str, Tensor] = {"coord": per_stack[-1]}
    if n_stacks > 1:
        losses["coord_inter"] = torch.stack(per_stack[:-1]).mean()
    total = coord_weight * torch.stack(per_stack).mean()
    if heatmap_weight > 0:
        kl = heatmap_kl(out.heatmaps, target.unsqueeze(1).expand_as(stack_coords), stride, sigma)
        # every stack carries the same weights, so this is the mean over stacks too
        losses["heatmap"] = _weighted_mean(kl, w.unsqueeze(1).expand_as(kl))  # (N, S, K)
        total = total + heatmap_weight * losses["heatmap"]
    return {"landmarks": total, **losses}


# --------------------------------------------------------------------------- metrics


def point_errors(pred: Tensor, true: Tensor) -> Tensor:
    """Euclidean point errors ``(N, K)`` in pixels (float64); NaN where ``true`` is missing."""
    return (pred.double() - true.double()).norm(dim=-1)


def _normaliser(true: Tensor, norm: str, crop_size: float | None) -> Tensor:
    n = true.shape[0]
    t = true.double()
    if norm == "crop":
        if crop_size is None:
            raise ValueError("norm='crop' needs crop_size")
        return torch.full((n,), float(crop_size), dtype=torch.float64, device=true.device)
    if true.shape[1] != 68:
        raise ValueError(f"norm={norm!r} needs the iBug 68 layout, got {true.shape[1]} points")
    if norm == "inter_ocular":
        a, b = IBUG_OUTER_EYE_CORNERS
        return (t[:, a] - t[:, b]).norm(dim=-1)
    if norm == "inter_pupil":
        left = t[:, list(IBUG_LEFT_EYE)].mean(1)
        right = t[:, list(IBUG_RIGHT_EYE)].mean(1)
        return (left - right).norm(dim=-1)
    raise ValueError(f"norm must be 'inter_ocular', 'inter_pupil' or 'crop', got {norm!r}")


def nme(pred: Tensor, true: Tensor, *, norm: str = "inter_ocular", visible: Tensor | None = None,
        crop_size: float | None = None, reduction: str = "mean") -> Tensor:
    r"""Normalised mean error in percent:
    :math:`\mathrm{NME}_n = 100 \cdot \frac{1}{|V_n|}\sum_{k \in V_n} \|\hat p_{nk} - p_{nk}\| / d_n`.

    Args:
        pred, true: ``(N, K, 2)`` pixels; ``true`` may hold NaN for missing points.
        norm: ``"inter_ocular"`` (||p36 - p45||), ``"inter_pupil"`` (distance of the
            eye-contour centroids 36-41 and 42-47) or ``"crop"`` (``crop_size``).
        visible: ``(N, K)``; points with weight 0 are left out of the mean.
        reduction: ``"mean"`` over samples (those with a finite normaliser and at least
            one point) or ``"none"`` (``(N,)``, NaN for unusable samples).
    """
    w, _ = point_weights(true, visible)
    err = torch.nan_to_num(point_errors(pred, true), nan=0.0)
    w = w.double()
    per_sample = (err * w).sum(1) / w.sum(1)  # NaN for samples without points
    per_sample = 100.0 * per_sample / _normaliser(true, norm, crop_size)
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        ok = torch.isfinite(per_sample)
        return per_sample[ok].mean() if bool(ok.any()) else per_sample.new_tensor(float("nan"))
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


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
    max_scale: float = 0.05
    max_translate: float = 4.0
    p_geometry: float = 0.8

    def __post_init__(self) -> None:
        if self.coord not in ("l1", "smooth_l1"):
            raise ValueError(f"coord must be 'l1' or 'smooth_l1', got {self.coord!r}")
        if self.coord_weight <= 0 or self.heatmap_weight < 0 or self.sigma <= 0:
            raise ValueError(f"need coord_weight > 0, heatmap_weight >= 0, sigma > 0: {self}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LandmarkTaskConfig:
        return strict_from_dict(cls, dict(d))

    def loss_kwargs(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in ("coord", "coord_weight", "heatmap_weight", "sigma",
                                  "smooth_l1_beta")}


@torch.no_grad()
def predict_points(model: nn.Module, images: Tensor, *, amp: bool = True, chunk: int = 64) -> Tensor:
    """Predicted ``(N, K, 2)`` points (float32, on the model's device) in chunks, in the
    model's current mode; only the coordinates are kept, so memory stays at one chunk."""
    from models.train import predict  # models.train imports this module

    return torch.cat([predict(model, images[i:i + chunk], amp, chunk).coords
                      for i in range(0, images.shape[0], chunk)])


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
        from models.train import predict  # models.train imports this module

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
