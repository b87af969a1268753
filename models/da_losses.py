"""Domain-adaptation objectives and the methods that wrap them.

Each DA objective is a small ``nn.Module`` with its paper's equation in the docstring
(TLlib habit). A *method* wraps one objective behind a common interface so one training
loop serves all of them::

    method = create_method("daln")                      # or "dann", "source_only"
    opt = SGD([*model.parameters(), *method.extra_parameters()], ...)
    out = model(torch.cat([x_s, x_t]))                  # one pass over both domains
    f_s, f_t = out.features.split([len(x_s), len(x_t)])
    losses = task.loss(model, out_s, labels, cfg)       # out_s: the source half of out
    transfer, diag = method.transfer_loss(model, f_s, f_t, grl_coeff(step, max_steps))
    loss = losses[task.loss_key] + trade_off * transfer

The reversal coefficient is an argument, never a counter inside a module. Diagnostics
are returned as detached tensors (not ``.item()``-ed, so a GPU loop is not forced to
sync every step), never stashed on the module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.grl import grl
from models.registration import register_method

__all__ = [
    "DALNLoss",
    "HeatmapDALNLoss",
    "DAMethod",
    "DANNLoss",
    "DANNMethod",
    "DALNMethod",
    "DomainDiscriminator",
    "SourceOnly",
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

    ``transfer_loss(model, f_s, f_t, coeff, labels=None, outputs=None) -> (loss,
    diagnostics)``: the term added (times a trade-off) to the task loss. ``model`` is the
    task model; a method may call ``model.head(features).logits``; ``labels`` are the
    source half's labels (the task's dict, e.g. ``pitchyaw``) and ``outputs`` the model's
    output over source + target (source first), for methods that weight by class under
    label shift.
    ``extra_parameters()`` are the method's own
    trainable parameters (a discriminator), to add to the optimiser. ``needs_target`` is
    False when the target batch is not used at all, so the loop can skip loading it.
    """

    needs_target: bool = True

    def features_of(self, out: Any) -> Tensor:
        """The model output the method aligns (split into ``f_s, f_t`` by the loop):
        the pooled bottleneck ``out.features`` unless a method needs another one."""
        return out.features

    def transfer_loss(self, model: nn.Module, f_s: Tensor, f_t: Tensor,
                      coeff: float | Tensor = 1.0, *, labels: dict[str, Tensor] | None = None,
                      outputs: Any = None) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())


class SourceOnly(DAMethod):
    """No transfer term: the baseline trained on source labels alone."""

    needs_target = False

    def transfer_loss(self, model, f_s, f_t, coeff=1.0, *, labels=None, outputs=None):
        return f_s.new_zeros((), dtype=torch.float32), {}


class DANNMethod(DAMethod):
    """DANN on the model's bottleneck features, with a :class:`DomainDiscriminator`."""

    def __init__(self, feature_dim: int, hidden: int = 256):
        super().__init__()
        self.loss = DANNLoss(DomainDiscriminator(feature_dim, hidden))

    def transfer_loss(self, model, f_s, f_t, coeff=1.0, *, labels=None, outputs=None):
        return self.loss(f_s, f_t, coeff)


class DALNMethod(DAMethod):
    """DALN: the model's own head is the critic, so there are no extra parameters.

    Task-aware: a model with a ``heatmap_head`` (the landmark hourglass) gets
    :class:`HeatmapDALNLoss` on its ``head_features``; any other model (gaze) gets
    :class:`DALNLoss` on ``model.head(features).logits``.
    """

    def __init__(self, pool: int = 1) -> None:
        super().__init__()
        self.loss = DALNLoss()
        self.heatmap_loss = HeatmapDALNLoss(pool)

    def features_of(self, out: Any) -> Tensor:
        head_features = getattr(out, "head_features", None)
        return out.features if head_features is None else head_features

    def transfer_loss(self, model, f_s, f_t, coeff=1.0, *, labels=None, outputs=None):
        if hasattr(model, "heatmap_head"):
            return self.heatmap_loss(model.heatmap_head, f_s, f_t, coeff)
        return self.loss(lambda f: model.head(f).logits, f_s, f_t, coeff)


# Every builder takes ``feature_dim`` so the loop can call create_method(name,
# feature_dim=model.feature_dim, **method_cfg) without knowing which method it is.


@register_method("source_only", needs_target=False)
def source_only(feature_dim: int | None = None) -> SourceOnly:
    return SourceOnly()


@register_method("dann", needs_target=True)
def dann(feature_dim: int | None = None, hidden: int = 256) -> DANNMethod:
    if feature_dim is None:
        raise ValueError("dann needs feature_dim (the model's bottleneck width)")
    return DANNMethod(feature_dim, hidden)


@register_method("daln", needs_target=True)
def daln(feature_dim: int | None = None, pool: int = 1) -> DALNMethod:
    """``pool``: sum-pooling of heatmap probabilities before the nuclear norm (landmarks only)."""
    return DALNMethod(pool)
