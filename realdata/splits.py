"""Splits of a dataset into a kept part and a held-out part: one rule for every split in
the project (the feedback loop's analysis / held-out parts, the target's validation part,
the synthetic validation part, the LFPW benchmark split).

A split is a seeded permutation whose first ``k`` entries are held out; both parts come
back sorted. The same ``(n, k, seed)`` gives the same split on any machine (numpy's
PCG64 permutation is stable across versions). Each kind of split salts the seed with its
own constant, so two splits drawn from one run seed are independent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["LOOP_HOLDOUT_SALT", "VALIDATION_SALT", "holdout_size", "holdout_split"]

#: Validation parts of training data (synthetic batches, target images, labeled real faces).
VALIDATION_SALT = 99
#: The feedback loop's analysis / held-out split of the real data.
LOOP_HOLDOUT_SALT = 4242


def holdout_size(n: int, frac: float, cap: int | None = None) -> int:
    """``round(n * frac)``, at most ``cap``; when ``frac > 0`` and ``n > 1``, at least 1 and
    at most ``n - 1`` (both parts non-empty)."""
    if not 0.0 <= frac < 1.0:
        raise ValueError(f"frac must be in [0, 1), got {frac}")
    k = int(round(n * frac))
    if cap is not None:
        k = min(cap, k)
    if frac > 0 and n > 1:
        k = min(max(k, 1), n - 1)
    return k


def holdout_split(n: int, k: int, seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held out)`` sorted index arrays: the first ``k`` of a permutation of
    ``range(n)`` drawn with ``numpy.random.default_rng(seed)`` are held out."""
    if not 0 <= k <= n:
        raise ValueError(f"cannot hold out {k} of {n} samples")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])
