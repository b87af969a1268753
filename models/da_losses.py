"""Domain-adaptation objectives, the gaze task loss and the gaze metric.

Each DA objective is a small ``nn.Module`` with its paper's equation in the docstring
(TLlib habit). A *method* wraps one objective behind a common interface so one training
loop serves all of them::

    method = create_method("daln")                      # or "dann", "source_only"
    opt = SGD([*model.parameters(), *method.extra_parameters()], ...)
    out = model(torch.cat([x_s, x_t]))                  # one pass over both domains
    f_s, f_t = out.features.split([len(x_s), len(x_t)])
    losses = gaze_loss(out_s, y_s, model.bins)          # out_s: the source half of out
    transfer, diag = method.transfer_loss(model, f_s, f_t, grl_coeff(step, max_steps))
    loss = losses["gaze"] + trade_off * transfer

The reversal coefficient is an argument, never a counter inside a module. Diagnostics
are returned as detached tensors (not ``.item()``-ed, so a GPU loop is not forced to
sync every step), never stashed on the module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.gaze_bins import GazeBins
from models.grl import grl
from models.registry import register_method

__all__ = [
    "DALNLoss",
    "HeatmapDALNLoss",
    "DAMethod",
    "DANNLoss",
    "DANNMethod",
    "DALNMethod",
    "DomainDiscriminator",
    "SourceOnly",
    "angular_error_deg",
    "gaze_loss",
    "gaze_vectors",
    "nuclear_norm_gram",
]


# --------------------------------------------------------------------------- DANN


class DomainDiscriminator(nn.Sequential):
    """Domain classifier on features: Linear-BN-ReLU x2 - Linear -> one logit.

    TLlib's default (``tllib/modules/domain_discriminator.py``) with 1024 hidden units;
    256 is plenty for 128-256-d gaze features. Returns raw logits (no sigmoid): the
    loss uses ``binary_cross_entropy_with_logits``, which is stable for large logits.

    Shape:
        - input: ``(N, in_features)``; output: ``(N, 1)``.
    """

    def __init__(self, in_features: int, hidden: int = 256):
        super().__init__(
            nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, 1),
        )


class DANNLoss(nn.Module):
    r"""Domain adversarial loss of DANN (Ganin et al., JMLR 2016):

    .. math::
        \mathcal{L}_{adv} = \tfrac12 \Big[
            \mathbb{E}_{x \sim S}\, \ell_{BCE}\big(D(R_\lambda(f(x))), 1\big)
          + \mathbb{E}_{x \sim T}\, \ell_{BCE}\big(D(R_\lambda(f(x))), 0\big) \Big]

    where :math:`R_\lambda` is the gradient reversal layer. Minimising it trains the
    discriminator :math:`D` to tell the domains apart while the reversed gradient trains
    the features :math:`f` to confuse it. Source and target go through :math:`D` in one
    concatenated pass, so its BatchNorm sees both domains (as in TLlib).

    Inputs:
        - f_s: ``(N_s, F)`` source features; f_t: ``(N_t, F)`` target features.
        - coeff: the reversal weight :math:`\lambda`.

    Returns:
        ``(loss, {"domain_acc": ...})``: domain accuracy is the mean of the per-domain
        accuracies of the sign of the logit, 0.5 = features are indistinguishable.
    """

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, f_s: Tensor, f_t: Tensor, coeff: float | Tensor = 1.0
                ) -> tuple[Tensor, dict[str, Tensor]]:
        f = grl(torch.cat([f_s, f_t], dim=0), coeff)
        d = self.discriminator(f).reshape(-1).float()  # (N_s + N_t,) logits
        d_s, d_t = d.split([f_s.shape[0], f_t.shape[0]])
        loss = 0.5 * (F.binary_cross_entropy_with_logits(d_s, torch.ones_like(d_s))
                      + F.binary_cross_entropy_with_logits(d_t, torch.zeros_like(d_t)))
        with torch.no_grad():
            acc = 0.5 * ((d_s > 0).float().mean() + (d_t <= 0).float().mean())
        return loss, {"domain_acc": acc}


# --------------------------------------------------------------------------- DALN


def nuclear_norm_gram(p: Tensor, eps: float = 1e-10, dtype: torch.dtype = torch.float64) -> Tensor:
    r"""Nuclear norm :math:`\|P\|_* = \sum_i \sigma_i(P) = \sum_i \sqrt{\mathrm{eig}_i(P P^\top)}`.

    Goes through the eigenvalues of the smaller Gram matrix (``B x B`` or ``K x K``)
    instead of an SVD: for many small matrices (one per heatmap landmark) it is ~100x
    faster on CPU, and ``eigvalsh``'s gradient needs no eigenvalue gaps, unlike the SVD's.
    The Gram matrix is formed in ``dtype`` (float64 by default): squaring the singular
    values squares the relative rounding error, so float32 would blur the small ones.
    Eigenvalues at or below ``eps`` count as zero; they carry no gradient, which keeps
    :math:`d\sqrt{\lambda}/d\lambda = 1/(2\sqrt{\lambda})` bounded by :math:`1/(2\sqrt{eps})`.

    Args:
        p: ``(..., B, K)``; leading dimensions are a batch of matrices.

    Returns:
        ``(...)`` nuclear norms, in ``p``'s dtype.
    """
    x = p.to(dtype)
    gram = x @ x.transpose(-1, -2) if x.shape[-2] <= x.shape[-1] else x.transpose(-1, -2) @ x
    lam = torch.linalg.eigvalsh(gram)
    keep = lam > eps
    # clamp before sqrt so the masked entries' gradients are 0, not 0 * inf = nan
    sv = torch.where(keep, lam.clamp_min(eps).sqrt(), torch.zeros_like(lam))
    return sv.sum(-1).to(p.dtype)


class DALNLoss(nn.Module):
    r"""Discriminator-free adversarial loss of DALN (Chen et al., CVPR 2022):

    .. math::
        \mathcal{W}_N = \sum_{h} \frac{\|\sigma(C_h(R_\lambda(F_s)))\|_*
                                      - \|\sigma(C_h(R_\lambda(F_t)))\|_*}{B_t},
        \qquad \mathcal{L}_{DALN} = -\mathcal{W}_N

    :math:`\sigma` is the row softmax, :math:`C_h` the task head's logits for output
    :math:`h` (pitch bins, yaw bins) and :math:`B_t` the target batch size, as in the
    official ``nwd.py``. The classifier is reused as the critic: minimising
    :math:`-\mathcal{W}_N` makes the head *maximise* the nuclear-norm Wasserstein
    discrepancy, while the features, through the reversal, *minimise* it.

    Inputs:
        - head_fn: ``features -> sequence of (N, K_h) logit tensors``, the model's head.
        - f_s: ``(N_s, F)``; f_t: ``(N_t, F)``; coeff: the reversal weight.

    Returns:
        ``(loss, {"discrepancy": W_N})``.
    """

    def forward(self, head_fn: Callable[[Tensor], Sequence[Tensor]], f_s: Tensor, f_t: Tensor,
                coeff: float | Tensor = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        n_s, n_t = f_s.shape[0], f_t.shape[0]
        logits = head_fn(grl(torch.cat([f_s, f_t], dim=0), coeff))
        nwd = f_s.new_zeros((), dtype=torch.float32)
        for y in logits:
            p_s, p_t = torch.softmax(y.float(), dim=1).split([n_s, n_t])
            nwd = nwd + (nuclear_norm_gram(p_s) - nuclear_norm_gram(p_t)) / n_t
        return -nwd, {"discrepancy": nwd.detach()}


class HeatmapDALNLoss(nn.Module):
    r"""DALN for heatmap landmark models: every landmark's spatial softmax is a
    "classifier" over the :math:`HW` heatmap cells (DALN's regression extension, as for
    TLlib's keypoint losses). With :math:`P^d_k \in \mathbb{R}^{B_d \times HW}` the rows
    :math:`\mathrm{softmax}_{HW}(C(R_\lambda(h_i)))_k` for the images :math:`i` of domain
    :math:`d`,

    .. math::
        \mathcal{W}_N = \frac{1}{K} \sum_{k=1}^{K}
            \frac{\|P^s_k\|_* - \|P^t_k\|_*}{B_t},
        \qquad \mathcal{L}_{DALN} = -\mathcal{W}_N

    :math:`C` is the model's last heatmap head (beta included), :math:`h` the head
    features it reads, :math:`R_\lambda` the reversal. As in :class:`DALNLoss` the head
    is the critic (it *maximises* :math:`\mathcal{W}_N`) and the features, through the
    reversal, minimise it. The mean over landmarks (rather than DALN's sum over heads)
    keeps the scale independent of ``K``, so one trade-off serves 68 and 703 points.

    Each :math:`\|P_k\|_*` comes from the eigenvalues of the :math:`B \times B` Gram
    matrix :math:`P_k P_k^\top` (:func:`nuclear_norm_gram`), never an SVD of the
    :math:`B \times HW` matrix: 703 landmarks x 32 x 4096 took 65 s by batched SVD and
    0.4 s by the Gram route on CPU, same values (notes/domain-adaptation.md).
    ``pool > 1`` sum-pools the probability maps first (rows stay distributions), which
    cuts the cost and makes the norm less sensitive to one-cell position jitter.

    Caveat: on spatial softmaxes the nuclear norm also grows with how *spread* the
    landmark positions are across the batch, so this aligns the spread of positions
    between domains as well as the sharpness of the heatmaps.

    Inputs:
        - head_fn: ``(N, C, H, W) features -> (N, K, H, W)`` logits.
        - f_s, f_t: source / target head features; coeff: the reversal weight.

    Returns:
        ``(loss, {"discrepancy": W_N})``.
    """

    def __init__(self, pool: int = 1):
        super().__init__()
        if pool < 1:
            raise ValueError(f"pool must be >= 1, got {pool}")
        self.pool = int(pool)

    def forward(self, head_fn: Callable[[Tensor], Tensor], f_s: Tensor, f_t: Tensor,
                coeff: float | Tensor = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        n_s, n_t = f_s.shape[0], f_t.shape[0]
        logits = head_fn(grl(torch.cat([f_s, f_t], dim=0), coeff)).float()  # (N, K, H, W)
        n, k, h, w = logits.shape
        p = torch.softmax(logits.flatten(2), dim=-1)
        if self.pool > 1:
            if h % self.pool or w % self.pool:
                raise ValueError(f"pool {self.pool} does not divide the {h}x{w} heatmap")
            # sum-pooling (avg * pool^2): each row is still a distribution over cells
            p = F.avg_pool2d(p.view(n * k, 1, h, w), self.pool).view(n, k, -1) * self.pool ** 2
        p_s, p_t = p.transpose(0, 1).split([n_s, n_t], dim=1)  # (K, B_d, HW')
        nwd = (nuclear_norm_gram(p_s) - nuclear_norm_gram(p_t)).mean() / n_t
        return -nwd, {"discrepancy": nwd.detach()}


# --------------------------------------------------------------------------- methods


class DAMethod(nn.Module):
    """Common interface of the registered DA methods.

    ``transfer_loss(model, f_s, f_t, coeff) -> (loss, diagnostics)``: the term added
    (times a trade-off) to the task loss. ``model`` is the task model; a method may call
    ``model.head(features).logits``. ``extra_parameters()`` are the method's own
    trainable parameters (a discriminator), to add to the optimiser. ``needs_target`` is
    False when the target batch is not used at all, so the loop can skip loading it.
    """

    needs_target: bool = True

    def features_of(self, out: Any) -> Tensor:
        """The model output the method aligns (split into ``f_s, f_t`` by the loop):
        the pooled bottleneck ``out.features`` unless a method needs another one."""
        return out.features

    def transfer_loss(self, model: nn.Module, f_s: Tensor, f_t: Tensor,
                      coeff: float | Tensor = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())


class SourceOnly(DAMethod):
    """No transfer term: the baseline trained on source labels alone."""

    needs_target = False

    def transfer_loss(self, model, f_s, f_t, coeff=1.0):
        return f_s.new_zeros((), dtype=torch.float32), {}


class DANNMethod(DAMethod):
    """DANN on the model's bottleneck features, with a :class:`DomainDiscriminator`."""

    def __init__(self, feature_dim: int, hidden: int = 256):
        super().__init__()
        self.loss = DANNLoss(DomainDiscriminator(feature_dim, hidden))

    def transfer_loss(self, model, f_s, f_t, coeff=1.0):
        return self.loss(f_s, f_t, coeff)


class DALNMethod(DAMethod):
    """DALN: the model's own head is the critic, so there are no extra parameters.

    Task-aware: a model with a ``heatmap_head`` (the landmark hourglass) gets
    :class:`HeatmapDALNLoss` on its ``head_features``; any other model (gaze) gets
    :class:`DALNLoss` on ``model.head(features).logits``, exactly as before.
    """

    def __init__(self, pool: int = 1) -> None:
        super().__init__()
        self.loss = DALNLoss()
        self.heatmap_loss = HeatmapDALNLoss(pool)

    def features_of(self, out: Any) -> Tensor:
        head_features = getattr(out, "head_features", None)
        return out.features if head_features is None else head_features

    def transfer_loss(self, model, f_s, f_t, coeff=1.0):
        if hasattr(model, "heatmap_head"):
            return self.heatmap_loss(model.heatmap_head, f_s, f_t, coeff)
        return self.loss(lambda f: model.head(f).logits, f_s, f_t, coeff)


# Every builder takes ``feature_dim`` so the loop can call create_method(name,
# feature_dim=model.feature_dim, **method_cfg) without knowing which method it is.


@register_method("source_only")
def source_only(feature_dim: int | None = None) -> SourceOnly:
    return SourceOnly()


@register_method("dann")
def dann(feature_dim: int | None = None, hidden: int = 256) -> DANNMethod:
    if feature_dim is None:
        raise ValueError("dann needs feature_dim (the model's bottleneck width)")
    return DANNMethod(feature_dim, hidden)


@register_method("daln")
def daln(feature_dim: int | None = None, pool: int = 1) -> DALNMethod:
    """``pool``: sum-pooling of heatmap probabilities before the nuclear norm (landmarks only)."""
    return DALNMethod(pool)


# --------------------------------------------------------------------------- gaze task


def gaze_loss(out: Any, pitchyaw: Tensor, bins: tuple[GazeBins, GazeBins], alpha: float = 1.0,
              reg: str = "mse", soft_sigma_deg: float | None = None) -> dict[str, Tensor]:
    r"""L2CS-Net loss per angle: cross-entropy over bins + alpha * regression of the
    expected angle, summed over pitch and yaw:

    .. math::
        \mathcal{L} = \sum_{a \in \{p, y\}} \mathrm{CE}(z_a, \mathrm{bin}(a))
                      + \alpha\, \ell\big(\textstyle\sum_k \mathrm{softmax}(z_a)_k c_k,\; a\big)

    The regression term is in *degrees*, as in L2CS (``reg="mse"``: deg^2, ``"l1"``: deg),
    so a 1-degree error weighs like one nat of cross-entropy at ``alpha=1``.

    Args:
        out: anything with ``pitch_logits``, ``yaw_logits`` and ``pitchyaw`` (a
            :class:`~models.gaze_net.GazeOutput` or ``HeadOutput``).
        pitchyaw: ``(N, 2)`` true (pitch, yaw) in radians.
        bins: ``(pitch_bins, yaw_bins)``, e.g. ``model.bins``.
        soft_sigma_deg: if set, cross-entropy against Gaussian-smoothed bin targets.

    Returns:
        ``{"gaze": total, "ce_pitch", "ce_yaw", "reg_pitch", "reg_yaw"}``.
    """
    losses: dict[str, Tensor] = {}
    for i, (name, logits, b) in enumerate((("pitch", out.pitch_logits, bins[0]),
                                           ("yaw", out.yaw_logits, bins[1]))):
        target = pitchyaw[:, i]
        if soft_sigma_deg is None:
            losses[f"ce_{name}"] = F.cross_entropy(logits.float(), b.to_bin(target))
        else:
            losses[f"ce_{name}"] = F.cross_entropy(logits.float(), b.soft_targets(target, soft_sigma_deg))
        err = torch.rad2deg(out.pitchyaw[:, i].float() - target.float())
        if reg == "mse":
            losses[f"reg_{name}"] = err.square().mean()
        elif reg == "l1":
            losses[f"reg_{name}"] = err.abs().mean()
        else:
            raise ValueError(f"reg must be 'mse' or 'l1', got {reg!r}")
    total = losses["ce_pitch"] + losses["ce_yaw"] + alpha * (losses["reg_pitch"] + losses["reg_yaw"])
    return {"gaze": total, **losses}


def gaze_vectors(pitchyaw: Tensor) -> Tensor:
    """(pitch, yaw) radians ``(..., 2)`` -> unit gaze vectors ``(..., 3)``, MPIIGaze convention:
    ``g = (-cos p sin y, -sin p, -cos p cos y)``."""
    p, y = pitchyaw[..., 0], pitchyaw[..., 1]
    return torch.stack([-torch.cos(p) * torch.sin(y), -torch.sin(p), -torch.cos(p) * torch.cos(y)], -1)


def angular_error_deg(pred_pitchyaw: Tensor, true_pitchyaw: Tensor, reduction: str = "mean") -> Tensor:
    """Angle between predicted and true 3D gaze vectors, degrees (the gaze metric).

    Computed in float64: in float32, ``acos`` of a cosine near 1 cannot resolve errors
    below ~0.02 degrees. A metric, not a loss (``acos`` has an infinite slope at 0).

    Args:
        reduction: ``"mean"`` (a scalar) or ``"none"`` (one error per sample).
    """
    a = gaze_vectors(pred_pitchyaw.double())
    b = gaze_vectors(true_pitchyaw.double())
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    err = torch.acos(cos.clamp(-1.0, 1.0)) * (180.0 / math.pi)
    if reduction == "mean":
        return err.mean()
    if reduction == "none":
        return err
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
