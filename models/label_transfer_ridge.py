r"""Label transfer fitted in closed form: ridge regression with its weight chosen by exact
leave-one-out error on the labeled faces.

Same model as :class:`models.label_transfer.LabelTransfer` (so the same checkpoint and the
same :func:`~models.label_transfer.apply_label_transfer`), with the MLP left at zero: the
correction is linear in the normalised dense set,

.. math::
    \hat p_m = \sum_d A_{md}\, q_d + s\,(W z + b)_m,

and :math:`W, b` minimise :math:`\sum_i w_{im} \lVert r_{im} - (W z_i + b)_m \rVert^2 +
\lambda \lVert W \rVert^2`, :math:`r_{im} = (t_{im} - (A q_i)_m) / s_i` the label's offset
from the baseline in face units (:math:`b` is not penalised).

Why not the gradient-trained MLP: with a few dozen to a hundred labeled faces it has
~10^5 weights per 10^4 numbers to fit and over-fits; a ridge fit has one knob, and the
knob is chosen by the labeled faces themselves. For a linear smoother :math:`S` the
leave-one-out residual is :math:`(r_i - \hat r_i) / (1 - S_{ii})` exactly, so every
:math:`\lambda` of the grid is scored, and the chosen one solved, from one thin SVD of the
(weighted, centred) features, no refits. The chosen :math:`\lambda` minimises the mean leave-one-out point
distance (face units), the quantity the NME measures.

Output points labeled on different faces (NaN labels or ``visible`` weights) are solved
per group of points that share a weight column; each group's leave-one-out errors add to
one curve, so one :math:`\lambda` serves all points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from models.label_transfer import (
    LabelTransfer,
    LabelTransferFit,
    _mean_error,
    _set_baseline,
    _weights,
    normalise_points,
)

__all__ = ["LOG10_LAMBDAS", "MIN_FACES", "fit_label_transfer_ridge", "ridge_loo"]

MIN_FACES = 3  # leave-one-out over fewer labeled faces is no estimate

#: the grid of :math:`\log_{10}(\lambda / \bar e)`, :math:`\bar e` the Gram matrix's mean
#: eigenvalue (so the grid does not depend on the number of faces or dense points)
LOG10_LAMBDAS: tuple[float, ...] = tuple(np.round(np.arange(-5.0, 3.01, 0.25), 2))


class _Decomposed(NamedTuple):
    """One weighted least-squares problem, centred on its weighted means and scaled by
    ``sqrt(w)`` (so the weighted fit is an ordinary one), with the thin SVD of its features:
    every lambda's leave-one-out error and solution come from it without refactoring."""

    u: Tensor  # (n, k), k = min(n, F)
    sv: Tensor  # (k,)
    vh: Tensor  # (k, F)
    rs: Tensor  # (n, P*2) centred, scaled targets
    xm: Tensor  # (F,) weighted feature mean
    rm: Tensor  # (P*2,) weighted target mean
    w: Tensor  # (n,)


def _decompose(x: Tensor, r: Tensor, w: Tensor) -> _Decomposed:
    sw = w.sqrt()
    xm = (w[:, None] * x).sum(0) / w.sum()
    rm = (w[:, None, None] * r).sum(0).reshape(-1) / w.sum()
    u, sv, vh = torch.linalg.svd(sw[:, None] * (x - xm), full_matrices=False)
    return _Decomposed(u, sv, vh, sw[:, None] * (r.reshape(len(r), -1) - rm), xm, rm, w)


def _loo(p: _Decomposed, lambdas: Sequence[float]) -> Tensor:
    """For each lambda, the sum over samples with ``w > 0`` and points of
    ``w_i * |leave-one-out residual|``."""
    e = p.sv**2
    ur = p.u.T @ p.rs
    keep = p.w > 0
    sw = p.w[keep].sqrt()
    out = []
    for lam in lambdas:
        f = e / (e + lam)
        fitted = p.u @ (f[:, None] * ur)  # the weighted, centred fit of rs
        # hat diagonal of the whole smoother: the penalised part plus the intercept's w_i / sum w
        h = (p.u**2) @ f + p.w / p.w.sum()
        res = (p.rs - fitted)[keep] / (sw * (1.0 - h[keep]).clamp_min(1e-12))[:, None]
        out.append((p.w[keep] * res.reshape(len(res), -1, 2).norm(dim=-1).sum(-1)).sum())
    return torch.stack(out)


def _solve(p: _Decomposed, lam: float) -> tuple[Tensor, Tensor]:
    """``(W (P*2, F), b (P*2,))`` of the weighted ridge fit at ``lam``."""
    weights = (p.rs.T @ p.u) * (p.sv / (p.sv**2 + lam)) @ p.vh
    return weights, p.rm - weights @ p.xm


def ridge_loo(x: Tensor, r: Tensor, w: Tensor, lambdas: Sequence[float]) -> Tensor:
    """Leave-one-out errors of a weighted ridge fit for every ``lambdas`` (absolute).

    ``x`` ``(n, F)`` features, ``r`` ``(n, P, 2)`` targets (P points in 2-D), ``w`` ``(n,)``
    sample weights >= 0 shared by the P points. Returns ``(len(lambdas),)``: for each
    lambda, the sum over samples with ``w > 0`` and points of ``w_i * |loo residual|``
    (the caller normalises). Float64 throughout."""
    return _loo(_decompose(x, r, w), lambdas)


def fit_label_transfer_ridge(dense_pred: Tensor, real68: Tensor, steps: int = 0, seed: int = 0, *,
                             visible: Tensor | None = None,
                             base_index: Sequence[int] | Tensor | None = None,
                             base_weights: Tensor | None = None,
                             log10_lambdas: Sequence[float] = LOG10_LAMBDAS) -> LabelTransferFit:
    """Fit a :class:`LabelTransfer` in closed form (module docstring). ``steps`` and
    ``seed`` are accepted for a common signature with the MLP fit and unused: the fit is
    deterministic. Needs at least :data:`MIN_FACES` labeled faces.

    ``fit.params`` records ``lambda_log10`` (relative to the Gram matrix's mean eigenvalue),
    ``loo_curve`` ``[(log10, mean leave-one-out error in face units)]`` and
    ``lambda_at_grid_edge`` (True: the best lambda is an end of the grid, widen it)."""
    del steps, seed
    if dense_pred.ndim != 3 or real68.ndim != 3 or dense_pred.shape[0] != real68.shape[0]:
        raise ValueError(f"need (N, D, 2) and (N, M, 2), got {tuple(dense_pred.shape)}, "
                         f"{tuple(real68.shape)}")
    if not log10_lambdas:
        raise ValueError("log10_lambdas is empty")
    dense = dense_pred.detach().double().cpu()
    target = real68.detach().double().cpu()
    if not torch.isfinite(dense).all():
        raise ValueError("dense predictions contain NaN or inf")
    w = _weights(target, None if visible is None else visible.detach().cpu()).double()  # (N, M)
    most = int((w > 0).sum(0).max()) if w.numel() else 0
    if most < MIN_FACES:
        raise ValueError(f"ridge label transfer needs >= {MIN_FACES} labeled faces, got {most}")
    n, d, _ = dense.shape
    m = target.shape[1]
    with torch.random.fork_rng(devices=[]):  # the unused MLP's init: fixed, and no draw
        torch.manual_seed(0)                   # from the caller's random stream
        net = LabelTransfer(num_dense=d, num_out=m)
    index = _set_baseline(net, dense, target, w, base_index, base_weights)
    z, _, scale = normalise_points(dense)
    x = z.reshape(n, -1)
    with torch.no_grad():
        base = net.baseline(dense.float()).double()
    resid = torch.nan_to_num((target - base) / scale, nan=0.0)  # (N, M, 2) face units

    # points whose weight columns agree are one least-squares problem; points labeled on
    # too few faces keep the baseline
    groups: dict[bytes, list[int]] = {}
    for j in range(m):
        groups.setdefault(w[:, j].numpy().tobytes(), []).append(j)
    problems = [(cols, _decompose(x, resid[:, cols], w[:, cols[0]])) for cols in groups.values()
                if int((w[:, cols[0]] > 0).sum()) >= MIN_FACES]
    ebar = float(((x - x.mean(0)) ** 2).sum()) / n or 1.0  # the Gram matrix's mean eigenvalue
    lambdas = [ebar * 10.0 ** float(g) for g in log10_lambdas]
    curve = sum(_loo(p, lambdas) for _, p in problems)
    curve = curve / max(sum(float(p.w.sum()) * len(cols) for cols, p in problems), 1e-12)
    best = int(curve.argmin())
    weight = torch.zeros(2 * m, 2 * d, dtype=torch.float64)
    bias = torch.zeros(2 * m, dtype=torch.float64)
    for cols, p in problems:
        rows = torch.tensor([2 * j + c for j in cols for c in (0, 1)])
        weight[rows], bias[rows] = _solve(p, lambdas[best])
    with torch.no_grad():
        net.linear.weight.copy_(weight.float())
        net.out.bias.copy_(bias.float())
    net.eval()
    with torch.no_grad():
        baseline_error = _mean_error(base, target, w)
        train_error = _mean_error(net(dense.float()), target, w)
    grid = [float(g) for g in log10_lambdas]
    params = {"method": "ridge", "n": n, "lambda_log10": grid[best],
              "lambda_at_grid_edge": best in (0, len(grid) - 1) and len(grid) > 1,
              "loo_error": float(curve[best]),
              "loo_curve": [(g, float(c)) for g, c in zip(grid, curve, strict=True)]}
    return LabelTransferFit(net, index, baseline_error, train_error, [], params)
