r"""RSD: representation subspace distance, domain adaptation built for regression (Chen,
Wang, Wang, Long, ICML 2021, "Representation Subspace Distance for Domain Adaptation
Regression"), its principal-angle term.

Gaze is a regression, and aligning feature *distributions* (DANN, DALN) moves what a
regressor reads: its output depends on the features' scale, which marginal alignment
changes freely. RSD aligns only the *directions* the two domains' features span. For a
batch of source features :math:`F_s` and target features :math:`F_t` (``b x d``, ``b <
d``), :math:`U_s, U_t` are orthonormal bases of the spans of their rows; the singular
values of :math:`U_s^\top U_t` are the cosines of the principal angles
:math:`\theta_i` between the two subspaces, and

.. math::
    \mathcal{L}_{RSD} = \sum_i \sin\theta_i .

The loss is invariant to the features' scale and to any rotation of both domains
together, which is the point: the regressor's scale is left alone. It has no trainable
parameters and no gradient reversal; the feature extractor minimises it directly.

Numerics, and what differs from the paper. The paper takes :math:`U` from an SVD of the
features; a batch of ReLU features is often rank-deficient (dead units, near-repeated
rows), where the SVD's gradient is infinite: our first run that way diverged to NaN on
its first seed. :func:`_basis` gets the same span from a Cholesky factor of the batch's
Gram matrix (a tiny ridge keeps it defined), and the cosines come from singular *values*
only, whose gradient exists where they repeat. The paper's second term, a base-mismatch
penalty between the two domains' principal directions, needs singular *vectors* (and
the SVD's ordering of the features' variance), so it is left out. Everything runs in
float64 outside autocast, with :math:`1 - \cos^2\theta` floored so that identical
directions do not give an infinite gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.da_losses import DAMethod
from models.registration import register_method

__all__ = ["RSDMethod", "subspace_distance"]


def _basis(f: Tensor, ridge: float) -> Tensor:
    """An orthonormal basis ``(d, b)`` of the span of ``f``'s rows: ``f^T L^{-T}`` with
    ``L L^T = f f^T + ridge * mean(diag) * I`` (exactly orthonormal at ``ridge=0``)."""
    gram = f @ f.T
    eye = torch.eye(f.shape[0], dtype=f.dtype, device=f.device)
    chol = torch.linalg.cholesky(gram + ridge * gram.diagonal().mean().clamp_min(1e-12) * eye)
    return torch.linalg.solve_triangular(chol, f, upper=False).T


def subspace_distance(f_s: Tensor, f_t: Tensor, *, floor: float = 1e-6,
                      ridge: float = 1e-6) -> Tensor:
    """The sum of the sines of the principal angles between the row spans of ``f_s`` and
    ``f_t`` (``(b, d)`` each, ``b <= d``)."""
    if f_s.ndim != 2 or f_s.shape != f_t.shape:
        raise ValueError(f"need two (batch, features) tensors of one shape, got "
                         f"{tuple(f_s.shape)} and {tuple(f_t.shape)}")
    if f_s.shape[0] > f_s.shape[1]:
        raise ValueError(f"RSD needs fewer samples than features per domain (got {f_s.shape[0]} "
                         f"of {f_s.shape[1]}): more samples span the whole feature space")
    cosine = torch.linalg.svdvals(_basis(f_s.double(), ridge).T @ _basis(f_t.double(), ridge))
    return (1 - cosine.square()).clamp_min(floor).sqrt().sum().float()


class RSDMethod(DAMethod):
    """RSD's subspace distance on the model's bottleneck features (no parameters)."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def transfer_loss(self, model, f_s, f_t, coeff=1.0, *, labels=None, outputs=None):
        n = min(f_s.shape[0], f_t.shape[0])  # compares two n-dimensional spans
        with torch.autocast(device_type=f_s.device.type, enabled=False):
            sines = subspace_distance(f_s[:n], f_t[:n])
        return self.weight * sines, {"mean_sine": (sines / n).detach()}


@register_method("rsd", needs_target=True)
def rsd(feature_dim: int | None = None, weight: float = 0.01) -> RSDMethod:
    """``weight``: the loss's scale against the task loss (the paper weighs it 0.001
    against mean squared errors of targets in [0, 1]; a gaze loss of binned cross-entropy
    plus regression is about ten times larger)."""
    if weight < 0:
        raise ValueError(f"rsd weight must be >= 0, got {weight}")
    return RSDMethod(weight)
