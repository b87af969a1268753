r"""IWDAN: importance-weighted domain-adversarial training, for label shift (Tachet des
Combes, Zhao, Wang, Gordon, NeurIPS 2020, "Domain Adaptation with Conditional
Distribution Matching and Generalized Label Shift").

DANN matches the feature marginals :math:`p_S(z)` and :math:`p_T(z)`. When the label
distributions differ, :math:`p_S(z) = \sum_y p_S(y)\, p_S(z \mid y)`, so matching the
marginals moves target features of one label toward source features of others: the
failure our label-shift benchmarks show. IWDAN matches the source marginal re-weighted
to the target's label distribution instead, with :math:`w_y = p_T(y) / p_S(y)`:

.. math::
    \mathcal{L}_{IWDAN} = \tfrac12 \Big[
        \mathbb{E}_{(x, y) \sim S}\, w_y\, \ell_{BCE}\big(D(R_\lambda(f(x))), 1\big)
      + \mathbb{E}_{x \sim T}\, \ell_{BCE}\big(D(R_\lambda(f(x))), 0\big) \Big]

(:class:`IWDANLoss`). :math:`w` is not known without target labels; black-box shift
estimation (BBSE, Lipton et al., ICML 2018) gets it from the model's own confusion. With
:math:`C_{ij} = P_S(\hat y = i, y = j)` and :math:`\mu_i = P_T(\hat y = i)`, label shift
gives :math:`\mu = C w`; :func:`bbse_weights` solves

.. math::
    \min_w \|C w - \mu\|^2 + \gamma \|w - 1\|^2
    \quad \text{s.t.} \quad \textstyle\sum_y p_S(y)\, w_y = 1,\ 0 \le w \le w_{\max}

(a stacked least-squares system with a heavily weighted constraint row, then clipped and
rescaled; the ridge :math:`\gamma` keeps classes the confusion cannot resolve at 1).

**Gaze.** Gaze is a regression; its classes here are a coarse joint grid of (pitch, yaw)
cells (:class:`GazeClasses`, 6 x 6 by default), read from the model's predicted angles
and the true ones. **Online.** :math:`C` and :math:`\mu` are exponential moving averages
over the training batches themselves (the source half's predictions and labels, the
target half's predictions), so the method needs no extra pass over data; :math:`w` is
solved again every ``solve_every`` batches once ``warmup`` batches were seen, and is 1
before: IWDAN starts as DANN. Everything it estimates is a buffer, saved in checkpoints,
so a resumed run continues exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.da_losses import DAMethod, DomainDiscriminator
from models.grl import grl
from models.registration import register_method

__all__ = ["GazeClasses", "IWDANLoss", "IWDANMethod", "bbse_weights"]


class GazeClasses:
    """A coarse joint grid over (pitch, yaw): ``n_pitch x n_yaw`` cells of equal width
    over ``[-pitch_deg, pitch_deg] x [-yaw_deg, yaw_deg]``; angles beyond fall in the end
    cells. Class ``k = i_pitch * n_yaw + i_yaw``."""

    def __init__(self, pitch_deg: float = 30.0, yaw_deg: float = 36.0, n_pitch: int = 6,
                 n_yaw: int = 6):
        if pitch_deg <= 0 or yaw_deg <= 0 or n_pitch < 1 or n_yaw < 1:
            raise ValueError("need positive ranges and at least one cell per angle")
        self.pitch_deg, self.yaw_deg, self.n_pitch, self.n_yaw = pitch_deg, yaw_deg, n_pitch, n_yaw

    @property
    def n(self) -> int:
        return self.n_pitch * self.n_yaw

    def __call__(self, pitchyaw: Tensor) -> Tensor:
        """``(N, 2)`` radians -> ``(N,)`` long class indices."""
        deg = torch.rad2deg(pitchyaw.detach().float())

        def cell(a: Tensor, half: float, n: int) -> Tensor:
            return ((a + half) / (2 * half) * n).floor().clamp(0, n - 1).long()

        return cell(deg[:, 0], self.pitch_deg, self.n_pitch) * self.n_yaw \
            + cell(deg[:, 1], self.yaw_deg, self.n_yaw)


def bbse_weights(confusion: Tensor, target_pred: Tensor, *, ridge: float = 1e-3,
                 max_weight: float = 10.0, constraint: float = 1e3) -> Tensor:
    r"""Label-shift weights :math:`w_y = p_T(y)/p_S(y)` from the source joint confusion
    ``confusion[i, j] = P_S(pred = i, true = j)`` ``(K, K)`` and the target's predicted
    class distribution ``target_pred[i] = P_T(pred = i)`` ``(K,)`` (module docstring).
    Classes the source never shows get weight 0 (there is nothing to re-weight)."""
    c = confusion.double()
    mu = target_pred.double()
    k = c.shape[0]
    p_s = c.sum(0)  # P_S(y)
    present = p_s > 0
    eye = torch.eye(k, dtype=torch.float64, device=c.device)
    a = torch.cat([c, math.sqrt(ridge) * eye, constraint * p_s[None]])
    b = torch.cat([mu, math.sqrt(ridge) * torch.ones(k, dtype=torch.float64, device=c.device),
                   torch.tensor([constraint], dtype=torch.float64, device=c.device)])
    w = torch.linalg.lstsq(a, b[:, None]).solution[:, 0]
    w = torch.where(present, w.clamp(0.0, max_weight), torch.zeros_like(w))
    mass = (p_s * w).sum()
    return (w / mass if mass > 0 else torch.where(present, 1.0, 0.0).double()).float()


class IWDANLoss(nn.Module):
    """The importance-weighted domain-adversarial loss (module docstring) on features
    ``f_s`` (with per-sample weights ``w_s``) and ``f_t``; returns ``(loss,
    {"domain_acc"})`` like :class:`~models.da_losses.DANNLoss`, which it equals when every
    weight is 1."""

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, f_s: Tensor, f_t: Tensor, w_s: Tensor, coeff: float | Tensor = 1.0
                ) -> tuple[Tensor, dict[str, Tensor]]:
        f = grl(torch.cat([f_s, f_t], dim=0), coeff)
        d = self.discriminator(f).reshape(-1).float()
        d_s, d_t = d.split([f_s.shape[0], f_t.shape[0]])
        src = F.binary_cross_entropy_with_logits(d_s, torch.ones_like(d_s), reduction="none")
        loss = 0.5 * ((w_s.float() * src).mean()
                      + F.binary_cross_entropy_with_logits(d_t, torch.zeros_like(d_t)))
        with torch.no_grad():
            acc = 0.5 * ((d_s > 0).float().mean() + (d_t <= 0).float().mean())
        return loss, {"domain_acc": acc}


class IWDANMethod(DAMethod):
    """IWDAN with online BBSE weights over gaze classes (module docstring)."""

    def __init__(self, feature_dim: int, hidden: int = 256, classes: GazeClasses | None = None,
                 momentum: float = 0.99, warmup: int = 200, solve_every: int = 50,
                 max_weight: float = 10.0, ridge: float = 1e-3):
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if warmup < 1 or solve_every < 1:
            raise ValueError("warmup and solve_every must be positive")
        self.classes = classes or GazeClasses()
        self.loss = IWDANLoss(DomainDiscriminator(feature_dim, hidden))
        self.momentum, self.warmup, self.solve_every = momentum, warmup, solve_every
        self.max_weight, self.ridge = max_weight, ridge
        k = self.classes.n
        self.register_buffer("confusion", torch.zeros(k, k, dtype=torch.float64))
        self.register_buffer("target_pred", torch.zeros(k, dtype=torch.float64))
        self.register_buffer("weights", torch.ones(k))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def observe(self, pred_s: Tensor, true_s: Tensor, pred_t: Tensor) -> None:
        """Fold one batch into the moving averages (class indices), and solve for the
        weights when it is time."""
        k = self.classes.n
        joint = torch.zeros(k, k, dtype=torch.float64, device=self.confusion.device)
        joint.index_put_((pred_s, true_s), torch.ones_like(pred_s, dtype=torch.float64),
                         accumulate=True)
        hist = torch.bincount(pred_t, minlength=k).double()
        first = int(self.seen) == 0
        m = 0.0 if first else self.momentum
        self.confusion.mul_(m).add_(joint / len(pred_s), alpha=1 - m)
        self.target_pred.mul_(m).add_(hist / len(pred_t), alpha=1 - m)
        self.seen += 1
        n = int(self.seen)
        if n >= self.warmup and (n - self.warmup) % self.solve_every == 0:
            self.weights.copy_(bbse_weights(self.confusion, self.target_pred, ridge=self.ridge,
                                            max_weight=self.max_weight))

    def transfer_loss(self, model, f_s, f_t, coeff=1.0, *, labels=None, outputs=None):
        if labels is None or "pitchyaw" not in labels or outputs is None:
            raise ValueError("iwdan weights source samples by their gaze class: it needs the "
                             "source labels (pitchyaw) and the model's outputs (gaze models only)")
        n_s = f_s.shape[0]
        pred = outputs.pitchyaw.detach()
        true_cls = self.classes(labels["pitchyaw"])
        self.observe(self.classes(pred[:n_s]), true_cls, self.classes(pred[n_s:]))
        w_s = self.weights[true_cls]
        loss, diag = self.loss(f_s, f_t, w_s, coeff)
        return loss, {**diag, "iw_max": self.weights.max().detach(),
                      "iw_batch_mean": w_s.mean().detach()}


@register_method("iwdan", needs_target=True, tasks=("gaze",))
def iwdan(feature_dim: int | None = None, hidden: int = 256, pitch_deg: float = 30.0,
          yaw_deg: float = 36.0, n_pitch: int = 6, n_yaw: int = 6, momentum: float = 0.99,
          warmup: int = 200, solve_every: int = 50, max_weight: float = 10.0,
          ridge: float = 1e-3) -> IWDANMethod:
    """``method_kwargs``: the discriminator's width, the class grid, the moving average's
    momentum, the batches before the first solve and between solves, the weight cap and
    the ridge (:func:`bbse_weights`)."""
    if feature_dim is None:
        raise ValueError("iwdan needs feature_dim (the model's bottleneck width)")
    return IWDANMethod(feature_dim, hidden, GazeClasses(pitch_deg, yaw_deg, n_pitch, n_yaw),
                       momentum, warmup, solve_every, max_weight, ridge)
