"""Splits of a dataset into a kept part and a held-out part: one rule for every split in
the project (the feedback loop's analysis / held-out parts, the target's validation part,
the synthetic validation part, the LFPW benchmark split).

A split is a seeded permutation whose first ``k`` entries are held out; both parts come
back sorted. The same ``(n, k, seed)`` gives the same split on any machine (numpy's
PCG64 permutation is stable across versions). Each kind of split salts the seed with its
own constant, so two splits drawn from one run seed are independent.

Data with people in it is split by person where the people are known
(:func:`group_holdout_split`): a model scored on a person it was tuned or trained on
looks better than it is on the next person.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["LOOP_HOLDOUT_SALT", "VALIDATION_SALT", "group_holdout_split", "holdout_size",
           "holdout_split", "split"]

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


def group_holdout_split(groups, frac: float, seed: int | Sequence[int],
                        cap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held out)`` sorted sample indices, whole groups on one side: the groups
    (people) are split as :func:`holdout_split` splits samples, ``holdout_size(G, frac,
    cap)`` of the ``G`` distinct groups (sorted by name, then permuted) held out. So the
    held-out share of *samples* is ``frac`` only on average over groups."""
    names = np.asarray([str(g) for g in groups])
    unique = np.unique(names)  # sorted: the split does not depend on the row order
    _, held = holdout_split(len(unique), holdout_size(len(unique), frac, cap), seed)
    is_held = np.isin(names, unique[held])
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def split(n: int, frac: float, seed: int | Sequence[int], groups=None,
          cap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held out)``: by group when ``groups`` are given (:func:`group_holdout_split`,
    ``cap`` counting groups), else by sample (``holdout_size(n, frac, cap)`` samples)."""
    if groups is not None:
        if len(groups) != n:
            raise ValueError(f"{len(groups)} groups for {n} samples")
        return group_holdout_split(groups, frac, seed, cap)
    return holdout_split(n, holdout_size(n, frac, cap), seed)


#: The landmark benchmarks' fixed split of LFPW train (300-W release): 645 / 160 faces.
LFPW_N_TEST = 160


def split_face_folder(dir: str | Path, n_test: int = LFPW_N_TEST, seed: int = 0):
    """A fixed ``(train, test)`` split of a labeled face folder (``FaceSet`` halves): LFPW
    train's 805 faces give 645 / 160 with the defaults.

    The faces are read in sorted file-name order (``read_landmark_folder``), permuted by
    ``numpy.random.default_rng(seed)``; the first ``n_test`` of the permutation are the
    test set. Both halves keep the sorted order. Same folder, ``n_test`` and ``seed``, same
    split on any machine (numpy's PCG64 permutation is stable across versions).
    """
    from realdata.landmarks import read_landmark_folder

    fs = read_landmark_folder(dir)
    n = len(fs)
    if not 0 < n_test < n:
        raise ValueError(f"n_test must be in [1, {n - 1}] for {n} faces, got {n_test}")
    train, test = holdout_split(n, n_test, seed)
    return fs.subset(train.tolist()), fs.subset(test.tolist())
