r"""The distribution update policy: from evidence on real data to the next scene distribution.

One round of the feedback loop ends here. Two kinds of evidence move bin weights of the
current distribution :math:`w` (one factor at a time, :math:`K` bins, :math:`\sum_b w_b = 1`):

**(a) Label-space re-weighting** (:func:`label_reweight`), where real samples carry labels
and per-sample errors :math:`\epsilon_i`. The expected error on real data is

.. math:: E_{\text{real}}[\epsilon] = \sum_b p_{\text{real}}(b)\, \bar\epsilon(b),

and synthetic training samples lower :math:`\bar\epsilon(b)` where they are placed, so they
should go where the *error mass* :math:`p_{\text{real}}(b)\,\bar\epsilon(b)` is (frequent
*and* badly served). With :math:`n_b` real samples in bin :math:`b`, error sum
:math:`S_b = \sum_{i \in b} \epsilon_i`, overall mean error :math:`\bar\epsilon` and
:math:`c` = ``pseudo_count`` pseudo-samples per bin (placed like the current weights, at the
mean error, so sparse bins are smoothed toward :math:`w` instead of trusted):

.. math:: t_b = m_b = \frac{S_b + c K \bar\epsilon\, w_b}{\sum_{b'} S_{b'} + c K \bar\epsilon}.

A bin no real sample falls in gets only its pseudo mass, so it decays toward the floor
over rounds, never below it. On a continuous factor the counts are linear-binned: a
sample between two bin centres counts in both, in proportion to its closeness, so a
label on an edge is half each neighbour's (real labels on a grid, such as Columbia's
gaze at 0 and +-10 deg, otherwise land on one side by rounding and the next distribution
draws them half a bin off).

**(b) Nuisance identification** (:func:`fit_nuisance`), for appearance factors that real
data show only through image statistics (noise, blur, JPEG, equalisation, light). For a
factor :math:`f` mapped to a statistic :math:`s`, from a synthetic *probe* batch drawn
from the current distribution: :math:`h_b` = histogram of :math:`s` over the probe images
whose :math:`f` lies in bin :math:`b`, :math:`r` = histogram of :math:`s` over the real
images (common edges: ``stat_bins`` quantiles of both pooled), both normalised. If the
real images came from the mixture :math:`\sum_b a_b h_b`, the mixture weights are

.. math:: a = \arg\min_{a \ge 0,\ \sum a = 1}
            \lVert H a - r \rVert^2 + \lambda \lVert a - w \rVert^2,

solved by non-negative least squares (``scipy.optimize.nnls``, deterministic) on the
stacked system :math:`[H; \sqrt\lambda I; \rho 1^\top]\, a \approx [r; \sqrt\lambda w; \rho]`
(:math:`\rho = 10^3` makes the sum-to-one row all but exact; then :math:`a` is
renormalised). The ridge keeps :math:`a` at :math:`w` along directions the statistic
cannot see (bins with identical :math:`h_b`) instead of an arbitrary vertex, and stops
the fit from chasing sampling noise: it is scaled by the histograms' noise level,
:math:`\lambda = \kappa\,(1/n_{\text{real}} + \overline{1/n_b})` with :math:`\kappa` =
``ridge`` and :math:`n_b` the (effective) probe count of bin :math:`b`, since a
histogram of :math:`n` samples has squared error about :math:`1/n` in total. (With
:math:`\kappa = 4`, a statistic independent of the factor moves it by a total variation
of 0.04-0.12 with ``step = 1``; a statistic that sees it still recovers the true bin.)
Bins with fewer than 5 probe samples are left at their weight. This is an
*approximation*: :math:`h_b` marginalises over all other factors as the probe drew them,
so it is exact only if they are distributed as in the real data. Two things reduce the
error: factors are fitted in the mapping's order (put the dominant one first), and once a
factor has moved, the probe samples are importance-weighted by
:math:`\prod_g w^{\text{new}}_g(b_g) / w^{\text{probe}}_g(b_g)` over the factors already
moved, so later fits marginalise over the *updated* distribution. Repeated rounds refine.

**The move** (both kinds). Geometric interpolation toward the target :math:`t`, a
bounded ratio and a floor:

.. math::
    g_b = w_b^{1-\eta}\, t_b^{\eta}, \qquad
    w'_b = \mathrm{clip}\big(\lambda^* g_b,\ \max(w_b / R, \phi),\ \max(w_b R, \phi)\big),

with :math:`\eta` = ``step``, :math:`R` = ``max_ratio``, :math:`\phi` = ``floor``, and
:math:`\lambda^*` the normaliser that makes :math:`\sum_b w'_b = 1` (found by bisection;
:math:`\sum_b w'_b` is non-decreasing in :math:`\lambda`), over the factor's *support*,
the bins with :math:`w_b > 0`. So every bin of the support satisfies :math:`w'_b \ge \phi`
and :math:`w'_b / w_b \in [1/R, R]` (a bin that starts below the floor may be raised
further, to the floor), mass moves only between the support's bins, and a round can never
collapse a factor. A bin with :math:`w_b = 0` stays at zero: the distribution's author
left it out (a narrowed gaze range), and a floor that raised it would draw, every round,
scenes the start excluded. The result goes
through :meth:`SceneDistribution.reweight` with floor :math:`\phi` (a no-op guard here).
Geometric steps compose: two steps of :math:`\eta` toward a fixed target equal one of
:math:`1 - (1-\eta)^2` (before clipping).

:func:`update_distribution` runs (a) then (b) and derives ONE child version (parent = the
current id) whose ``reason`` names the worst slices and the largest moves with numbers,
plus a JSON-able report. Same inputs give the same child id.

Pure module: numpy/scipy only, no side effects on import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from analysis.factor_maps import EYE_NUISANCE
from synth.distribution import Factor, SceneDistribution

__all__ = [


    "NuisanceEvidence",
    "UpdatePolicy",
    "fit_nuisance",
    "label_reweight",
    "move_weights",
    "update_distribution",
]

_RHO = 1e3  # weight of the sum-to-one row in the stacked NNLS system
_MIN_PROBE_PER_BIN = 5  # fewer probe samples: h_b is too noisy, the bin is left alone


@dataclass(frozen=True)
class UpdatePolicy:
    """Knobs of the update (see the module docstring for the equations).

    step: :math:`\\eta` in (0, 1], how far toward the target one round moves (geometric).
    floor: minimum probability of every bin (keeps the support alive).
    max_ratio: :math:`R \\ge 1`, per-bin bound on new / old weight in one round.
    pseudo_count: pseudo-samples per bin at the mean error, smoothing the error mass.
    min_count: a factor is left unchanged with fewer real (or probe) samples than this.
    stat_bins: histogram bins of a statistic in the nuisance fit.
    ridge: :math:`\\kappa`, pull of the nuisance mixture toward the current weights, in
        units of the histograms' sampling noise.
    """

    step: float = 0.7
    floor: float = 0.01
    max_ratio: float = 4.0
    pseudo_count: float = 1.0
    min_count: int = 30
    stat_bins: int = 12
    ridge: float = 4.0

    def __post_init__(self) -> None:
        if not 0.0 < self.step <= 1.0:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {self.floor}")
        if not (self.max_ratio >= 1.0 and math.isfinite(self.max_ratio)):
            raise ValueError(f"max_ratio must be finite and >= 1, got {self.max_ratio}")
        if self.pseudo_count < 0 or self.ridge < 0:
            raise ValueError("pseudo_count and ridge must be >= 0")
        if self.min_count < 1 or self.stat_bins < 2:
            raise ValueError("need min_count >= 1 and stat_bins >= 2")


@dataclass(frozen=True)
class NuisanceEvidence:
    """What :func:`fit_nuisance` needs: a synthetic probe batch drawn from the distribution
    being updated (its factor values and its images' statistics) and the real images'
    statistics, all ``{name: (n,) array}``; ``mapping`` is factor -> statistic."""

    syn_factor_values: Mapping[str, Any]
    syn_stats: Mapping[str, Any]
    real_stats: Mapping[str, Any]
    mapping: Mapping[str, str] = field(default_factory=lambda: dict(EYE_NUISANCE))


# --------------------------------------------------------------------------- the move


def move_weights(old: Sequence[float], target: Sequence[float], policy: UpdatePolicy) -> np.ndarray:
    """One bounded geometric step from ``old`` toward ``target`` (module docstring):
    ``clip(lambda * old^(1-step) * target^step, max(old/R, floor), max(old*R, floor))``
    with ``lambda`` chosen so the result sums to 1, over the bins ``old`` gives weight (a
    bin at zero stays at zero, whatever the target says)."""
    w = np.asarray(old, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if w.shape != t.shape or w.ndim != 1 or np.any(w < 0) or np.any(t < 0):
        raise ValueError("old and target must be non-negative vectors of one length")
    support = w > 0
    k = int(support.sum())
    if policy.floor * k >= 1.0:
        raise ValueError(f"floor {policy.floor} too high for {k} bins with weight")
    w = w / w.sum()
    t = np.where(support, t, 0.0)
    t = t / t.sum() if t.sum() > 0 else w
    g = w ** (1.0 - policy.step) * t ** policy.step
    # A bin the target empties still ranks (last) by its old weight: keeps lambda finite.
    g = np.where(g > 0, g, 1e-12 * w)
    lo = np.where(support, np.maximum(w / policy.max_ratio, policy.floor), 0.0)
    hi = np.where(support, np.maximum(w * policy.max_ratio, policy.floor), 0.0)
    if lo.sum() >= 1.0:  # bounds leave no room (tiny R with many bins under the floor)
        return lo / lo.sum()
    pos = g > 0
    lam_lo, lam_hi = 0.0, float(np.max(hi[pos] / g[pos]))  # sum at lam_hi = sum(hi) >= 1

    def total(lam: float) -> float:
        return float(np.clip(lam * g, lo, hi).sum())

    for _ in range(200):  # bisection: deterministic, converges to machine precision
        mid = 0.5 * (lam_lo + lam_hi)
        if total(mid) < 1.0:
            lam_lo = mid
        else:
            lam_hi = mid
    new = np.clip(lam_hi * g, lo, hi)
    return new / new.sum()


def _apply(dist: SceneDistribution, change: dict[str, Any], new: np.ndarray,
           policy: UpdatePolicy) -> SceneDistribution:
    """Set a factor's weights through ``SceneDistribution.reweight`` (floor as a guard) and
    record the weights the distribution actually holds (rounded to 12 digits) as ``new``."""
    name = change["factor"]
    old = np.asarray(dist.factor(name).weights)
    mult = np.divide(new, old, out=np.zeros_like(new), where=old > 0)
    out = dist.reweight(name, mult, change["kind"], floor=policy.floor)
    change["new"] = [float(x) for x in out.factor(name).weights]
    return out


# --------------------------------------------------------------------------- reporting


def _bin_label(f: Factor, b: int) -> tuple[float, float]:
    if f.kind == "continuous":
        return f.edges[b], f.edges[b + 1]
    return f.values[b], f.values[b]


def _fmt_bin(f: Factor, b: int) -> str:
    lo, hi = _bin_label(f, b)
    return f"[{lo:.3g},{hi:.3g})" if f.kind == "continuous" else f"={lo:.3g}"


def _change(f: Factor, kind: str, old: np.ndarray, new: np.ndarray,
            evidence: dict[str, Any], skipped: str | None = None) -> dict[str, Any]:
    delta = new - old
    bins = np.arange(len(delta))
    up = np.lexsort((bins, -delta))  # most raised first, ties by bin
    down = np.lexsort((bins, delta))  # most lowered first, ties by bin

    def rows(idx: Sequence[int]) -> list[dict[str, Any]]:
        out = []
        for b in idx:
            lo, hi = _bin_label(f, int(b))
            out.append({"bin": int(b), "lo": lo, "hi": hi, "old": float(old[b]),
                        "new": float(new[b])})
        return out

    raised = [int(b) for b in up if delta[b] > 1e-12][:3]
    lowered = [int(b) for b in down if delta[b] < -1e-12][:3]
    return {
        "factor": f.name,
        "kind": kind,
        "skipped": skipped,
        "old": [float(x) for x in old],
        "new": [float(x) for x in new],
        "tv": float(0.5 * np.abs(delta).sum()),
        "raised": rows(raised),
        "lowered": rows(lowered),
        "evidence": evidence,
    }


def _describe(dist: SceneDistribution, ch: dict[str, Any]) -> str:
    f = dist.factor(ch["factor"])
    ev = ch["evidence"]
    head = f"{f.name}~{ev['stat']}" if ch["kind"] == "nuisance" else f.name
    parts = [head]
    if ch["kind"] == "label" and ev.get("worst_bin") is not None:
        b = ev["worst_bin"]
        parts.append(f"worst {_fmt_bin(f, b)} err {ev['mean_error'][b]:.3g} (n={ev['counts'][b]})")
    if ch["raised"]:
        r = ch["raised"][0]
        parts.append(f"up {_fmt_bin(f, r['bin'])} {r['old']:.3f}->{r['new']:.3f}")
    parts.append(f"tv {ch['tv']:.3f}")
    return " ".join(parts)


def _reason(dist: SceneDistribution, changes: Mapping[str, dict[str, Any]], what: str,
            max_parts: int = 3) -> str:
    """Short and deterministic: the factors that moved most (by TV), each with its most
    raised bin (and, for labels, the worst-error bin); the report has the rest."""
    moved = [c for c in changes.values() if c["skipped"] is None and c["tv"] > 1e-9]
    if not moved:
        why = "; ".join(f"{c['factor']}: {c['skipped'] or 'already at target'}"
                        for c in changes.values())
        return f"{what}: no change ({why or 'no factors'})"
    moved.sort(key=lambda c: (-c["tv"], c["factor"]))
    text = "; ".join(_describe(dist, c) for c in moved[:max_parts])
    more = f"; +{len(moved) - max_parts} more" if len(moved) > max_parts else ""
    return f"{what}: {text}{more}"


# --------------------------------------------------------------------------- (a) labels


def _linear_bins(f: Factor, x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's two bins and its share of each: linear binning between the centres of
    a continuous factor's bins (a value at a bin's centre is all that bin's, one on an edge
    half each neighbour's), so labels that sit on edges (Columbia's gaze grid of 0 and
    +-10 deg on bins of 5) count on both sides instead of on whichever side rounding puts
    them; the next distribution then draws them centred, not shifted by half a bin. A
    value between a bin the distribution gives no weight and one it does is wholly the
    latter's (so a label on the edge of a narrowed range counts inside it). Categorical
    factors: each value wholly in its bin. Returns ``(bins, shares)``, both ``(n, 2)``."""
    if f.kind != "continuous" or f.n_bins < 2:
        return np.stack([idx, idx], 1), np.stack([np.ones(len(idx)), np.zeros(len(idx))], 1)
    e = np.asarray(f.edges, dtype=np.float64)
    centres = (e[:-1] + e[1:]) / 2
    lo = np.clip(np.searchsorted(centres, x, side="right") - 1, 0, f.n_bins - 2)
    frac = np.clip((x - centres[lo]) / (centres[lo + 1] - centres[lo]), 0.0, 1.0)
    bins = np.stack([lo, lo + 1], 1)
    share = np.stack([1.0 - frac, frac], 1)
    out = np.asarray(f.weights)[bins] <= 0
    one_out = out.sum(1) == 1  # beside a bin left out: all of it to the one with weight
    share = np.where(one_out[:, None], (~out).astype(np.float64), share)
    return bins, share


def _label_step(dist: SceneDistribution, name: str, errors: np.ndarray, values: Any,
                policy: UpdatePolicy) -> tuple[np.ndarray, dict[str, Any]]:
    f = dist.factor(name)
    w = np.asarray(f.weights)
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.shape != errors.shape:
        raise ValueError(f"real_values[{name!r}] has {x.shape}, errors {errors.shape}")
    idx = f.bin_index(x)
    keep = (idx >= 0) & np.isfinite(errors)
    k = f.n_bins
    bins, share = _linear_bins(f, x[keep], idx[keep])
    n_b = np.bincount(bins.ravel(), weights=share.ravel(), minlength=k)
    s_b = np.bincount(bins.ravel(), weights=(share * errors[keep, None]).ravel(), minlength=k)
    n = int(keep.sum())
    mean_b = [float(s / c) if c > 1e-9 else None for s, c in zip(s_b, n_b, strict=True)]
    evidence: dict[str, Any] = {
        "n": n, "n_outside": int((idx < 0).sum()), "counts": [round(float(c)) for c in n_b],
        "mean_error": mean_b, "error_mass": None, "target": None, "worst_bin": None,
    }
    if n < policy.min_count:
        return w, _change(f, "label", w, w, evidence, f"{n} real samples < {policy.min_count}")
    ebar = float(s_b.sum() / n)
    if not ebar > 0:
        return w, _change(f, "label", w, w, evidence, "all errors are 0")
    m = s_b + policy.pseudo_count * k * ebar * w
    t = m / m.sum()
    ok = [b for b in range(k) if n_b[b] >= min(policy.min_count, max(n // k, 1))]
    worst = max(ok, key=lambda b: (mean_b[b], -b)) if ok else None
    evidence.update(error_mass=[float(v) for v in t], target=[float(v) for v in t],
                    worst_bin=worst, mean_error_all=ebar)
    new = move_weights(w, t, policy)
    return new, _change(f, "label", w, new, evidence)


def label_reweight(
    dist: SceneDistribution,
    errors: Any,
    real_values: Mapping[str, Any],
    policy: UpdatePolicy = UpdatePolicy(),
) -> tuple[SceneDistribution, dict[str, dict[str, Any]]]:
    """Move each named factor's weights toward the real data's error mass per bin (a).

    Args:
        dist: the current distribution.
        errors: ``(N,)`` per-sample errors on real data (any non-negative unit).
        real_values: ``{factor name: (N,) true values of the real samples}``, in the
            factor's unit (e.g. gaze pitch in radians); values outside the support are
            dropped (counted in the evidence as ``n_outside``).
        policy: the update knobs.

    Returns:
        ``(new_dist, changes)``: one child of ``dist`` (parent = ``dist.id``) and
        ``{factor: change}`` with ``old``/``new`` weights, ``tv`` (total variation moved),
        the most ``raised``/``lowered`` bins and the ``evidence`` (counts, mean error per
        bin, error mass, worst bin).
    """
    err = np.asarray(errors, dtype=np.float64).ravel()
    cur, changes = dist, {}
    for name in real_values:
        new, changes[name] = _label_step(cur, name, err, real_values[name], policy)
        cur = _apply(cur, changes[name], new, policy)
    return dist.derive(_reason(dist, changes, "label reweight"), factors=cur.factors), changes


# --------------------------------------------------------------------------- (b) nuisance


def _stat_edges(a: np.ndarray, b: np.ndarray, bins: int) -> np.ndarray:
    return np.unique(np.quantile(np.concatenate([a, b]), np.linspace(0.0, 1.0, bins + 1)))


def _hist(x: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(idx, weights=weights, minlength=len(edges) - 1).astype(np.float64)


def _mixture(h: np.ndarray, r: np.ndarray, prior: np.ndarray, ridge: float) -> np.ndarray:
    """argmin ||h a - r||^2 + ridge ||a - prior||^2 over the simplex (stacked NNLS)."""
    from scipy.optimize import nnls

    j = h.shape[1]
    a_mat = np.vstack([h, math.sqrt(ridge) * np.eye(j), _RHO * np.ones((1, j))])
    y = np.concatenate([r, math.sqrt(ridge) * prior, [_RHO]])
    a, _ = nnls(a_mat, y, maxiter=50 * j)
    return a / a.sum() if a.sum() > 0 else prior


def _importance(dist: SceneDistribution, probe: SceneDistribution,
                values: Mapping[str, np.ndarray], n: int, skip: str) -> np.ndarray:
    """prod_g w_g(b_g) / w_probe_g(b_g) over factors whose weights differ from the probe's."""
    omega = np.ones(n)
    for g in dist.factors:
        if g.name == skip or g.name not in values or g.name not in probe.factor_names:
            continue
        gp = probe.factor(g.name)
        if gp.weights == g.weights:
            continue
        idx = g.bin_index(np.asarray(values[g.name], dtype=np.float64))
        ratio = np.asarray(g.weights) / np.maximum(np.asarray(gp.weights), 1e-300)
        omega *= np.where(idx >= 0, ratio[np.maximum(idx, 0)], 0.0)
    return omega


def _nuisance_step(dist: SceneDistribution, probe: SceneDistribution, name: str, stat: str,
                   ev: NuisanceEvidence, policy: UpdatePolicy) -> tuple[np.ndarray, dict[str, Any]]:
    f = dist.factor(name)
    w = np.asarray(f.weights)
    k = f.n_bins
    v = np.asarray(ev.syn_factor_values[name], dtype=np.float64).ravel()
    z = np.asarray(ev.syn_stats[stat], dtype=np.float64).ravel()
    r = np.asarray(ev.real_stats[stat], dtype=np.float64).ravel()
    if v.shape != z.shape:
        raise ValueError(f"probe {name!r} values {v.shape} and {stat!r} stats {z.shape} differ")
    omega = _importance(dist, probe, ev.syn_factor_values, len(v), name)
    idx = f.bin_index(v)
    keep = (idx >= 0) & np.isfinite(z) & (omega > 0)
    r = r[np.isfinite(r)]
    evidence: dict[str, Any] = {"stat": stat, "n_probe": int(keep.sum()), "n_real": int(len(r))}
    if keep.sum() < policy.min_count or len(r) < policy.min_count:
        why = f"{int(keep.sum())} probe / {len(r)} real samples < {policy.min_count}"
        return w, _change(f, "nuisance", w, w, evidence, why)
    idx, z, omega = idx[keep], z[keep], omega[keep]
    edges = _stat_edges(z, r, policy.stat_bins)
    if len(edges) < 3:
        return w, _change(f, "nuisance", w, w, evidence, f"{stat} takes a single value")
    counts = np.bincount(idx, minlength=k)
    ident = np.flatnonzero(counts >= _MIN_PROBE_PER_BIN)
    if len(ident) < 2:
        return w, _change(f, "nuisance", w, w, evidence, "fewer than 2 bins in the probe")
    h = np.stack([_hist(z[idx == b], edges, omega[idx == b]) for b in ident], 1)
    h = h / np.maximum(h.sum(0, keepdims=True), 1e-300)
    rh = _hist(r, edges) / len(r)
    mass = float(w[ident].sum())
    prior = w[ident] / mass
    # sampling noise of the residual: ~1/n per histogram (entries p(1-p)/n, summed)
    n_eff = np.array([omega[idx == b].sum() ** 2 / np.sum(omega[idx == b] ** 2) for b in ident])
    noise = 1.0 / len(r) + float(np.mean(1.0 / n_eff))
    a = _mixture(h, rh, prior, policy.ridge * noise)
    t = w.copy()
    t[ident] = a * mass
    new = move_weights(w, t, policy)
    mix = np.full(k, np.nan)
    mix[ident] = a
    evidence.update(
        stat_edges=[float(e) for e in edges],
        real_hist=[float(x) for x in rh],
        probe_counts=[int(c) for c in counts],
        mixture=[None if np.isnan(x) else float(x) for x in mix],
        fit_residual_old=float(np.linalg.norm(h @ prior - rh)),
        fit_residual_mixture=float(np.linalg.norm(h @ a - rh)),
        fit_residual_new=float(np.linalg.norm(h @ (new[ident] / new[ident].sum()) - rh)),
        probe_ess=float(omega.sum() ** 2 / np.sum(omega ** 2)),
    )
    return new, _change(f, "nuisance", w, new, evidence)


def _as_evidence(nuisance: NuisanceEvidence | Mapping[str, Any]) -> NuisanceEvidence:
    if isinstance(nuisance, NuisanceEvidence):
        return nuisance
    return NuisanceEvidence(**dict(nuisance))


def _fit_all(dist: SceneDistribution, probe: SceneDistribution, ev: NuisanceEvidence,
             policy: UpdatePolicy) -> tuple[SceneDistribution, dict[str, dict[str, Any]]]:
    cur, changes = dist, {}
    for name, stat in ev.mapping.items():
        missing = [m for m, src in ((name, ev.syn_factor_values), (stat, ev.syn_stats),
                                    (stat, ev.real_stats)) if m not in src]
        if name not in dist.factor_names or missing:
            raise KeyError(f"nuisance {name!r} -> {stat!r}: missing "
                           f"{missing or [name + ' in the distribution']}")
        new, changes[name] = _nuisance_step(cur, probe, name, stat, ev, policy)
        cur = _apply(cur, changes[name], new, policy)
    return cur, changes


def fit_nuisance(
    dist: SceneDistribution,
    syn_factor_values: Mapping[str, Any],
    syn_stats: Mapping[str, Any],
    real_stats: Mapping[str, Any],
    mapping: Mapping[str, str] = EYE_NUISANCE,
    policy: UpdatePolicy = UpdatePolicy(),
) -> tuple[SceneDistribution, dict[str, dict[str, Any]]]:
    """Fit appearance factors to real image statistics (b), in ``mapping`` order.

    Args:
        dist: the current distribution; the probe batch must have been drawn from it.
        syn_factor_values: ``{factor: (M,) values}`` of the probe scenes (all factors
            available help the importance weighting; at least those in ``mapping``).
        syn_stats: ``{stat: (M,)}`` of the probe images
            (:func:`analysis.image_stats.image_statistics_table`).
        real_stats: ``{stat: (N,)}`` of the real images.
        mapping: factor -> statistic (:data:`analysis.factor_maps.EYE_NUISANCE` for eyes).
        policy: the update knobs.

    Returns:
        ``(new_dist, changes)`` as :func:`label_reweight`; each change's evidence holds
        the statistic, its common edges, the real histogram, the probe counts per bin,
        the fitted ``mixture`` (``None`` for bins the probe missed), the residual
        :math:`\\lVert H a - r \\rVert` for the old weights, the mixture and the new
        weights, and the probe's effective sample size after importance weighting.
    """
    ev = NuisanceEvidence(syn_factor_values, syn_stats, real_stats, dict(mapping))
    cur, changes = _fit_all(dist, dist, ev, policy)
    return dist.derive(_reason(dist, changes, "nuisance fit"), factors=cur.factors), changes


# --------------------------------------------------------------------------- (c) both


def update_distribution(
    dist: SceneDistribution,
    *,
    errors: Any = None,
    real_values: Mapping[str, Any] | None = None,
    label_factors: Sequence[str] = (),
    nuisance: NuisanceEvidence | Mapping[str, Any] | None = None,
    policy: UpdatePolicy = UpdatePolicy(),
) -> tuple[SceneDistribution, dict[str, Any]]:
    """One loop round: label re-weighting (a), then nuisance fitting (b), as ONE child.

    Args:
        dist: the current distribution (the nuisance probe must come from it).
        errors: ``(N,)`` per-sample errors on labeled real data, or ``None``.
        real_values: ``{factor: (N,) true values}`` of those samples.
        label_factors: which of ``real_values`` to re-weight (default: all of them).
        nuisance: :class:`NuisanceEvidence` (or a dict with its fields), or ``None``.
            Without a ``mapping`` it uses :data:`analysis.factor_maps.EYE_NUISANCE`.
        policy: the update knobs.

    Returns:
        ``(new_dist, report)``: ``new_dist.parent == dist.id`` and its ``reason`` names
        the worst slices and the largest moves; ``report`` (JSON-able) holds ``parent``,
        ``id``, ``reason``, ``policy``, ``order`` (factors as processed) and ``factors``:
        ``{factor: change}`` as :func:`label_reweight` / :func:`fit_nuisance` describe.
    """
    if errors is None and nuisance is None:
        raise ValueError("nothing to update from: pass errors (with real_values) and/or nuisance")
    changes: dict[str, dict[str, Any]] = {}
    cur = dist
    if errors is not None:
        if not real_values:
            raise ValueError("errors need real_values: the true factor values of the samples")
        names = tuple(label_factors) or tuple(real_values)
        unknown = [n for n in names if n not in real_values]
        if unknown:
            raise KeyError(f"label factors without real values: {unknown}")
        err = np.asarray(errors, dtype=np.float64).ravel()
        for name in names:
            new, changes[name] = _label_step(cur, name, err, real_values[name], policy)
            cur = _apply(cur, changes[name], new, policy)
    if nuisance is not None:
        ev = _as_evidence(nuisance)
        overlap = sorted(set(ev.mapping) & set(changes))
        if overlap:
            raise ValueError(f"factors both label-reweighted and nuisance-fitted: {overlap}")
        cur, fitted = _fit_all(cur, dist, ev, policy)
        changes.update(fitted)
    reason = _reason(dist, changes, "loop update")
    new_dist = dist.derive(reason, factors=cur.factors)
    report = {
        "parent": dist.id,
        "id": new_dist.id,
        "reason": reason,
        "policy": asdict(policy),
        "order": list(changes),
        "factors": changes,
    }
    return new_dist, report
