"""Domain-gap measures between a synthetic and a target (real or simulated) domain.

Three families, all on plain numpy arrays so any caller (a Prefect task, a notebook, a
benchmark) can use them without torch:

* distances between *feature* distributions: :func:`mmd_rbf` (kernel two-sample
  statistic) and :func:`frechet_distance` (the FID formula on any features);
* the model's uncertainty on the target: :func:`mean_prediction_entropy` of its
  bin-classifier heads (high entropy on target data = the model is out of its domain);
* low-level *image* statistics per image (brightness, contrast, sharpness, noise) and
  their gap between two image sets: :func:`image_statistics`, :func:`image_stat_gap`.
  These say *which* nuisance factor differs, so the distribution update can fit it.

Pure module: numpy and scipy only, no side effects on import.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "IMAGE_STATS",
    "as_2d",
    "frechet_distance",
    "frechet_distance_from_stats",
    "image_stat_gap",
    "image_statistics",
    "mean_prediction_entropy",
    "mmd_rbf",
    "sq_dists",
]

#: Per-image statistics computed by :func:`image_statistics`, in report order.
IMAGE_STATS = ("brightness", "contrast", "laplacian_var", "noise_sigma")

# Immerkær's noise operator: the difference of two Laplacians, which annihilates any
# locally quadratic image. sum(N**2) = 36, so white noise of std s gives residual std 6 s.
_IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
_LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
_MAD_TO_SIGMA = 0.6744897501960817  # median(|Z|) for Z ~ N(0, 1)


# --------------------------------------------------------------------------- features


def as_2d(x: Any, name: str) -> np.ndarray:
    """Features as a finite float64 ``(N, D)`` array with ``N >= 2`` (a vector is one
    feature per sample); a ValueError names ``name`` otherwise."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"{name} must be (N, D) with N >= 2, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds non-finite values")
    return a


def sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``a`` and ``b``."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def mmd_rbf(
    a: Any,
    b: Any,
    *,
    bandwidths: Sequence[float] | None = None,
    max_n: int = 2000,
    seed: int = 0,
) -> float:
    r"""Unbiased squared maximum mean discrepancy with a multi-bandwidth RBF kernel.

    .. math::
        \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)} \sum_{i \ne j} k(a_i, a_j)
            + \frac{1}{n(n-1)} \sum_{i \ne j} k(b_i, b_j)
            - \frac{2}{mn} \sum_{i, j} k(a_i, b_j),
        \qquad k(x, y) = \frac{1}{|S|} \sum_{\sigma \in S} \exp\!\Big(-\frac{\lVert x-y\rVert^2}{2\sigma^2}\Big)

    (Gretton et al., "A Kernel Two-Sample Test", JMLR 13, 2012, eq. 3; the kernel mixture
    follows Long et al., "Learning Transferable Features with Deep Adaptation Networks",
    ICML 2015). The estimate is unbiased, so it fluctuates around 0 (and can be slightly
    negative) when both samples come from the same distribution.

    Args:
        a, b: samples, ``(m, D)`` and ``(n, D)`` (1-D inputs are read as ``D = 1``).
        bandwidths: kernel widths :math:`\sigma`. Default: the median heuristic,
            :math:`\sigma_0 = \sqrt{\mathrm{median}\,\lVert x - y\rVert^2 / 2}` over
            distinct pairs of the pooled sample, and :math:`S = \sigma_0 \cdot
            \{1/4, 1/2, 1, 2, 4\}`. Pass fixed widths to compare MMDs across pairs of
            samples on one scale.
        max_n: each sample is subsampled (without replacement, by ``seed``) to at most
            this many rows; the kernel matrices cost :math:`O(\text{max\_n}^2)` memory.
        seed: makes the subsampling deterministic.

    Returns:
        :math:`\widehat{\mathrm{MMD}}^2_u` as a float.
    """
    x, y = as_2d(a, "a"), as_2d(b, "b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    rng = np.random.default_rng(seed)
    if len(x) > max_n:
        x = x[np.sort(rng.choice(len(x), max_n, replace=False))]
    if len(y) > max_n:
        y = y[np.sort(rng.choice(len(y), max_n, replace=False))]
    dxx, dyy, dxy = sq_dists(x, x), sq_dists(y, y), sq_dists(x, y)
    if bandwidths is None:
        m, n = len(x), len(y)
        pooled = np.concatenate(
            [dxx[np.triu_indices(m, 1)], dyy[np.triu_indices(n, 1)], dxy.ravel()]
        )
        med = float(np.median(pooled))
        if med <= 0:  # (nearly) all points identical: any width gives 0
            med = float(pooled.max()) if pooled.max() > 0 else 1.0
        sigma0 = math.sqrt(med / 2.0)
        sigmas = [sigma0 * s for s in (0.25, 0.5, 1.0, 2.0, 4.0)]
    else:
        sigmas = [float(s) for s in bandwidths]
        if not sigmas or any(not (s > 0 and math.isfinite(s)) for s in sigmas):
            raise ValueError(f"bandwidths must be positive and finite, got {bandwidths}")

    def kernel(d: np.ndarray) -> np.ndarray:
        return sum(np.exp(-d / (2.0 * s * s)) for s in sigmas) / len(sigmas)

    m, n = len(x), len(y)
    kxx, kyy, kxy = kernel(dxx), kernel(dyy), kernel(dxy)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def frechet_distance_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    r"""Fréchet (2-Wasserstein) distance between :math:`N(\mu_1, \Sigma_1)` and
    :math:`N(\mu_2, \Sigma_2)`:

    .. math::
        d^2 = \lVert \mu_1 - \mu_2 \rVert^2
              + \mathrm{Tr}\big(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2}\big)

    (Dowson & Landau 1982; as FID in Heusel et al., NeurIPS 2017). Numerical fixes as in
    the reference ``pytorch-fid`` implementation: if ``sqrtm`` of the product is not
    finite (singular covariances), ``eps * I`` is added to both covariances; a complex
    result with a negligible imaginary part (rounding) is replaced by its real part, and
    a large imaginary part raises ``ValueError``.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products are handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.all(np.isfinite(covmean)):
            offset = np.eye(len(mu1)) * eps
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm has a large imaginary part: {np.abs(covmean.imag).max():.3g}")
        covmean = covmean.real
    d2 = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return max(d2, 0.0)  # rounding can make a true 0 slightly negative


def frechet_distance(a: Any, b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two feature samples ``(N, D)``
    (sample means and unbiased covariances); see :func:`frechet_distance_from_stats`.
    Note it is the *squared* distance, as FID is by convention."""
    x, y = as_2d(a, "a"), as_2d(b, "b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    return frechet_distance_from_stats(
        x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    )


# --------------------------------------------------------------------------- predictions


def _entropy_rows(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "auto":
        is_probs = (
            np.all(x >= 0) and np.all(x <= 1) and np.allclose(x.sum(-1), 1.0, atol=1e-4)
        )
        kind = "probs" if is_probs else "logits"
    if kind == "logits":
        z = x - x.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        p = np.exp(logp)
    elif kind == "probs":
        p = x / x.sum(-1, keepdims=True)
        logp = np.log(np.where(p > 0, p, 1.0))  # 0 log 0 = 0
    else:
        raise ValueError(f"kind must be 'auto', 'probs' or 'logits', got {kind!r}")
    return -(p * logp).sum(-1)


def mean_prediction_entropy(
    probs_or_logits_list: Any, *, kind: str = "auto", normalise: bool = False
) -> float:
    r"""Mean Shannon entropy (nats) of categorical predictions,
    :math:`H = -\frac{1}{N} \sum_i \sum_k p_{ik} \log p_{ik}`, averaged over heads.

    Args:
        probs_or_logits_list: one ``(N, K)`` array (or tensor), or a list of them, e.g.
            ``GazeOutput.logits`` (pitch-bin and yaw-bin heads); heads may differ in K.
        kind: ``"probs"`` (rows sum to 1), ``"logits"`` (softmax is applied) or
            ``"auto"`` (probabilities if every row is in [0, 1] and sums to 1).
        normalise: divide each head's entropy by :math:`\log K`, so 0 = one-hot and
            1 = uniform whatever the number of bins.

    Higher on target than on source data means the model is less certain off its
    training domain (an unsupervised validation signal; see notes/domain-adaptation.md).
    """
    heads = probs_or_logits_list
    if isinstance(heads, np.ndarray) or hasattr(heads, "detach"):
        heads = [heads]
    values = []
    for h in heads:
        if hasattr(h, "detach"):
            h = h.detach().cpu().numpy()
        x = np.asarray(h, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] < 2:
            raise ValueError(f"each head must be (N, K) with N >= 1, K >= 2, got {x.shape}")
        ent = float(_entropy_rows(x, kind).mean())
        values.append(ent / math.log(x.shape[1]) if normalise else ent)
    if not values:
        raise ValueError("no predictions given")
    return float(np.mean(values))


# --------------------------------------------------------------------------- images


def _conv3x3_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """'valid' 3x3 correlation over the last two axes of (N, H, W)."""
    h, w = x.shape[-2:]
    out = np.zeros((*x.shape[:-2], h - 2, w - 2))
    for i in range(3):
        for j in range(3):
            if k[i, j] != 0:
                out += k[i, j] * x[..., i:i + h - 2, j:j + w - 2]
    return out


def _as_gray_stack(images: Any) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 4:  # (N, H, W, C): luminance-free average is enough for statistics
        x = x.mean(-1)
    if x.ndim != 3 or x.shape[0] == 0 or min(x.shape[1:]) < 3:
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C) with H, W >= 3, got {np.shape(images)}")
    return x.astype(np.float64)


def image_statistics(images_uint8: Any) -> dict[str, Any]:
    r"""Per-image low-level statistics of grayscale images (0..255 scale), plus summaries.

    * ``brightness``: mean intensity of each image.
    * ``contrast``: standard deviation of the intensities of each image (RMS contrast).
    * ``laplacian_var``: variance of the 4-neighbour Laplacian response (valid region), a
      *sharpness* score (Pech-Pacheco et al., ICPR 2000): blur lowers it. Noise raises it
      too, so read it beside ``noise_sigma``.
    * ``noise_sigma``: standard deviation of additive white noise, from Immerkær's
      operator :math:`N = \begin{psmallmatrix}1&-2&1\\-2&4&-2\\1&-2&1\end{psmallmatrix}`
      (J. Immerkær, "Fast Noise Variance Estimation", CVIU 64(2), 1996), which cancels
      locally quadratic image content; white noise of std :math:`\sigma` leaves a
      residual of std :math:`6\sigma` (:math:`\sum N^2 = 36`). Immerkær averages
      :math:`|I * N|`; here the median is used instead,
      :math:`\hat\sigma = \mathrm{median}|I * N| / (6 \cdot 0.6745)`, which ignores the
      few residuals on edges (eyelids, the limbus) that would inflate the mean.

    Returns ``{"n": N, "per_image": {stat: float array (N,)}, "summary": {stat:
    {"mean", "std", "median"}}}``; summaries are plain floats.
    """
    x = _as_gray_stack(images_uint8)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    lap = _conv3x3_valid(x, _LAPLACIAN).reshape(n, -1)
    res = _conv3x3_valid(x, _IMMERKAER).reshape(n, -1)
    per = {
        "brightness": flat.mean(1),
        "contrast": flat.std(1),
        "laplacian_var": lap.var(1),
        "noise_sigma": np.median(np.abs(res), axis=1) / (6.0 * _MAD_TO_SIGMA),
    }
    summary = {
        k: {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v))}
        for k, v in per.items()
    }
    return {"n": int(n), "per_image": per, "summary": summary}


def image_stat_gap(a_images: Any, b_images: Any) -> dict[str, dict[str, float]]:
    r"""Compare :func:`image_statistics` of two image sets, per statistic:

    * ``mean_a``, ``mean_b`` and ``diff = mean_b - mean_a``;
    * ``std_diff``: the difference in units of the pooled standard deviation
      (:math:`d = (\bar b - \bar a) / \sqrt{(s_a^2 + s_b^2)/2}`, Cohen's d), comparable
      across statistics with different scales;
    * ``wasserstein``: the 1-D Wasserstein-1 distance between the two per-image
      distributions (``scipy.stats.wasserstein_distance``), in the statistic's units.

    Either argument may also be the dict :func:`image_statistics` returned (reuse it
    when one side, e.g. the real data, is compared many times).
    """
    from scipy.stats import wasserstein_distance

    sa = a_images if isinstance(a_images, dict) else image_statistics(a_images)
    sb = b_images if isinstance(b_images, dict) else image_statistics(b_images)
    out: dict[str, dict[str, float]] = {}
    for k in IMAGE_STATS:
        va, vb = np.asarray(sa["per_image"][k]), np.asarray(sb["per_image"][k])
        pooled = math.sqrt((va.var() + vb.var()) / 2.0)
        diff = float(vb.mean() - va.mean())
        out[k] = {
            "mean_a": float(va.mean()),
            "mean_b": float(vb.mean()),
            "diff": diff,
            "std_diff": diff / pooled if pooled > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff)),
            "wasserstein": float(wasserstein_distance(va, vb)),
        }
    return out
