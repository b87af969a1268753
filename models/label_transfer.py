r"""Label transfer: predicted dense synthetic landmarks -> the 68 iBug points of real labels.

Synthetic landmarks are projections of fixed mesh vertices; human 300-W annotators put
the jaw on the occluding contour, eyebrows on their upper edge, and so on. Face
Synthetics (Wood et al. 2021) bridges the two conventions with a small "label
translation" network trained on real labels; this is that network for a dense set.

Model (``D`` dense points in, ``M = 68`` out), per sample:

.. math::
    c = \tfrac12(\min_d q_d + \max_d q_d), \quad
    s = \tfrac12 \max(\text{bbox width}, \text{bbox height}), \quad z_d = (q_d - c) / s

.. math::
    \hat p_m = c + s\Big(\sum_d A_{md}\, z_d + g_\theta(z)_m\Big) = \sum_d A_{md}\, q_d + s\, g_\theta(z)_m,
    \qquad g_\theta(z) = W z + \mathrm{MLP}(z)

``A`` (``M x D``, rows summing to 1, a fixed buffer) is the baseline: by default each real
point's nearest dense point on average over the training set (one-hot rows), or any
fixed linear combination. :math:`g_\theta` is an MLP on the normalised dense set plus a linear
shortcut, both starting at zero, so an untrained model *is* the baseline and training only
learns the correction, in units of the face size (invariant to where the face sits
and how large it is in the crop).

Examples::

    >>> fit = fit_label_transfer(dense_pred, real68, steps=2000, seed=0)
    >>> p68 = apply_label_transfer(fit.model, new_dense_pred)
    >>> save_label_transfer("lt.pt", fit); net = load_model("lt.pt")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from models.checkpoint import save_checkpoint
from models.configs import strict_from_dict
from models.registration import register_model

__all__ = [
    "LabelTransfer",
    "LabelTransferConfig",
    "LabelTransferFit",
    "apply_label_transfer",
    "fit_label_transfer",
    "nearest_dense_index",
    "normalise_points",
    "save_label_transfer",
]


def normalise_points(points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(z, centre, scale)``: ``points`` ``(N, D, 2)`` centred on their bounding box and
    divided by half its larger side, so ``z`` lies in ``[-1, 1]``; ``centre`` ``(N, 1, 2)``,
    ``scale`` ``(N, 1, 1)``."""
    lo, hi = points.amin(1, keepdim=True), points.amax(1, keepdim=True)
    centre = 0.5 * (lo + hi)
    scale = 0.5 * (hi - lo).amax(-1, keepdim=True).clamp_min(1e-6)
    return (points - centre) / scale, centre, scale


@dataclass(frozen=True)
class LabelTransferConfig:
    num_dense: int = 490
    num_out: int = 68
    hidden: int = 256
    layers: int = 2  # hidden layers of the MLP

    def __post_init__(self) -> None:
        if min(self.num_dense, self.num_out, self.hidden, self.layers) < 1:
            raise ValueError(f"all sizes must be >= 1: {self}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelTransferConfig:
        return strict_from_dict(cls, d)


class LabelTransfer(nn.Module):
    """``forward(dense (N, D, 2)) -> (N, M, 2)``, pixels in, pixels out (module docstring)."""

    task = "label_transfer"

    def __init__(self, cfg: LabelTransferConfig | None = None, **overrides: Any):
        super().__init__()
        cfg = LabelTransferConfig.from_dict({**asdict(cfg or LabelTransferConfig()), **overrides})
        self.cfg = cfg
        # default baseline: every output at the mean of the dense set, until set_base*()
        self.register_buffer("base", torch.full((cfg.num_out, cfg.num_dense), 1.0 / cfg.num_dense))
        dims = [2 * cfg.num_dense] + [cfg.hidden] * cfg.layers
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.GELU()]
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(dims[-1], 2 * cfg.num_out)
        # a linear shortcut beside the MLP: most of the convention gap is a re-weighting of
        # neighbouring dense points, which a linear map learns in a few hundred steps where
        # the MLP alone needs thousands; the MLP adds the pose-dependent remainder
        self.linear = nn.Linear(2 * cfg.num_dense, 2 * cfg.num_out, bias=False)
        for p in (self.out.weight, self.out.bias, self.linear.weight):
            nn.init.zeros_(p)  # starts as the baseline exactly

    @property
    def config(self) -> dict[str, Any]:
        return asdict(self.cfg)

    def set_base(self, weights: Tensor) -> None:
        """Fix the baseline to ``weights`` ``(M, D)``; each row must sum to 1 (an affine
        combination, so the baseline moves with the face)."""
        w = torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != self.base.shape:
            raise ValueError(f"base must be {tuple(self.base.shape)}, got {tuple(w.shape)}")
        if not torch.allclose(w.sum(1), torch.ones(w.shape[0]), atol=1e-4):
            raise ValueError("each row of the base combination must sum to 1")
        self.base.copy_(w.to(self.base.device))

    def set_base_index(self, index: Sequence[int] | Tensor) -> None:
        """Baseline ``p_m = q_{index[m]}``: one dense point per output point."""
        idx = torch.as_tensor(index, dtype=torch.long)
        if idx.shape != (self.cfg.num_out,) or idx.min() < 0 or idx.max() >= self.cfg.num_dense:
            raise ValueError(f"index must be {self.cfg.num_out} ints in [0, {self.cfg.num_dense})")
        self.set_base(torch.nn.functional.one_hot(idx, self.cfg.num_dense).float())

    def baseline(self, dense: Tensor) -> Tensor:
        """``A q``: the fixed part of the prediction, ``(N, M, 2)``."""
        return torch.einsum("md,ndc->nmc", self.base, dense.float())

    def forward(self, dense: Tensor) -> Tensor:
        if dense.ndim != 3 or dense.shape[1:] != (self.cfg.num_dense, 2):
            raise ValueError(f"dense must be (N, {self.cfg.num_dense}, 2), got {tuple(dense.shape)}")
        z, _, scale = normalise_points(dense.float())
        z = z.flatten(1)
        corr = (self.linear(z) + self.out(self.mlp(z))).view(-1, self.cfg.num_out, 2)
        return self.baseline(dense) + scale * corr


@register_model("label_transfer", task="label_transfer")
def label_transfer(**cfg: Any) -> LabelTransfer:
    """The label-transfer MLP; ``num_dense`` must match the dense landmark set."""
    return LabelTransfer(**cfg)


def nearest_dense_index(dense: Tensor, target: Tensor, visible: Tensor | None = None) -> Tensor:
    """For each target point, the dense point closest to it on average over the samples,
    in bbox-normalised coordinates: ``(M,)`` indices into ``D``."""
    z, centre, scale = normalise_points(dense.double())
    t = (target.double() - centre) / scale
    w = _weights(target, visible).double()  # (N, M)
    t = torch.nan_to_num(t, nan=0.0)
    d = torch.cdist(t, z)  # (N, M, D)
    mean_d = (d * w.unsqueeze(-1)).sum(0) / w.sum(0).clamp_min(1e-12).unsqueeze(-1)
    return mean_d.argmin(-1)


def _weights(target: Tensor, visible: Tensor | None) -> Tensor:
    finite = torch.isfinite(target).all(-1)
    return finite.float() if visible is None else visible.float() * finite


@dataclass
class LabelTransferFit:
    model: LabelTransfer  # eval mode, CPU
    base_index: Tensor | None  # (M,) when the baseline is a nearest-point map
    baseline_error: float  # mean point error (px) of the baseline alone, training set
    train_error: float  # mean point error (px) after fitting, training set
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, batch loss)
    params: dict[str, Any] = field(default_factory=dict)


def _set_baseline(net: LabelTransfer, dense: Tensor, target: Tensor, w: Tensor,
                  base_index: Sequence[int] | Tensor | None, base_weights: Tensor | None,
                  ) -> Tensor | None:
    """Fix ``net``'s baseline: ``base_weights``, else ``base_index``, else each target
    point's nearest dense point on this data. Returns the index used (None for weights)."""
    if base_weights is not None:
        net.set_base(base_weights)
        return None
    index = (torch.as_tensor(base_index, dtype=torch.long) if base_index is not None
             else nearest_dense_index(dense, target, w))
    net.set_base_index(index)
    return index


def _mean_error(pred: Tensor, target: Tensor, w: Tensor) -> float:
    err = torch.nan_to_num((pred.double() - target.double()).norm(dim=-1), nan=0.0)
    return float((err * w).sum() / w.sum().clamp_min(1e-12))


def fit_label_transfer(dense_pred: Tensor, real68: Tensor, steps: int = 2000, seed: int = 0, *,
                       visible: Tensor | None = None, base_index: Sequence[int] | Tensor | None = None,
                       base_weights: Tensor | None = None, hidden: int = 256, layers: int = 2,
                       lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 64,
                       log_every: int = 100) -> LabelTransferFit:
    """Train a :class:`LabelTransfer` on (predicted dense, real labeled) pairs.

    The loss is L1 in bbox-normalised units (the scale of :func:`normalise_points`), so
    large and small faces weigh alike; AdamW with cosine decay to 0; minibatches of
    ``batch_size`` drawn from a generator seeded by ``seed``, and the initialisation from
    ``seed`` too, so the same inputs and seed give the same weights (CPU, one process).

    Args:
        dense_pred: ``(N, D, 2)`` dense landmarks predicted on the real images (pixels).
        real68: ``(N, M, 2)`` their real labels; NaN = missing.
        visible: ``(N, M)`` optional weights (0 = ignore).
        base_index / base_weights: the fixed baseline (module docstring); by default
            :func:`nearest_dense_index` on this data.
    """
    if dense_pred.ndim != 3 or real68.ndim != 3 or dense_pred.shape[0] != real68.shape[0]:
        raise ValueError(f"need (N, D, 2) and (N, M, 2), got {tuple(dense_pred.shape)}, "
                         f"{tuple(real68.shape)}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    dense = dense_pred.detach().float().cpu()
    target = real68.detach().float().cpu()
    w = _weights(target, None if visible is None else visible.detach().cpu())
    n, d, _ = dense.shape
    m = target.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = LabelTransfer(num_dense=d, num_out=m, hidden=hidden, layers=layers)
    index = _set_baseline(net, dense, target, w, base_index, base_weights)
    target0 = torch.nan_to_num(target, nan=0.0)
    _, _, scale = normalise_points(dense)
    with torch.no_grad():
        baseline_error = _mean_error(net.baseline(dense), target, w)

    decay = [p for p in net.parameters() if p.ndim >= 2]
    no_decay = [p for p in net.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    b = min(batch_size, n)
    history: list[tuple[int, float]] = []
    net.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = 0.5 * lr * (1.0 + math.cos(math.pi * step / max(steps, 1)))
        idx = torch.randperm(n, generator=gen)[:b]
        pred = net(dense[idx])
        e = ((pred - target0[idx]).abs().sum(-1) / scale[idx, :, 0])  # (b, M) normalised L1
        loss = (e * w[idx]).sum() / w[idx].sum().clamp_min(1e-12)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            history.append((step, float(loss.detach())))
    net.eval()
    with torch.no_grad():
        train_error = _mean_error(net(dense), target, w)
    params = {"method": "mlp", "steps": steps, "seed": seed, "hidden": hidden, "layers": layers, "lr": lr,
              "weight_decay": weight_decay, "batch_size": batch_size, "n": n}
    return LabelTransferFit(net, index, baseline_error, train_error, history, params)


@torch.no_grad()
def apply_label_transfer(model: LabelTransfer, dense_pred: Tensor, chunk: int = 4096) -> Tensor:
    """The 68 points for dense predictions ``(N, D, 2)`` (eval mode, no gradients)."""
    was = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device
        return torch.cat([model(dense_pred[i:i + chunk].to(dev)) for i in range(0, len(dense_pred), chunk)])
    finally:
        model.train(was)


def save_label_transfer(path: str | Path, fit: LabelTransferFit | LabelTransfer,
                        extra: dict[str, Any] | None = None) -> Path:
    """Write a self-describing checkpoint: ``models.checkpoint.load_model(path)`` rebuilds
    the network (baseline buffer included) without naming the class."""
    model = fit.model if isinstance(fit, LabelTransferFit) else fit
    info: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    if isinstance(fit, LabelTransferFit):
        info = dict(fit.params)
        metrics = {"baseline_error_px": fit.baseline_error, "train_error_px": fit.train_error}
    train_config = {"model": "label_transfer", "task": "label_transfer", **info}
    return save_checkpoint(path, model, None, None, int(info.get("steps", 0)), train_config,
                           extra, metrics=metrics)
