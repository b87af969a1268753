"""The fixed LFPW split the landmark benchmarks score on: 645 training / 160 test faces
of LFPW train (300-W release)."""

from __future__ import annotations

from pathlib import Path

from realdata.landmarks import FaceSet, read_landmark_folder
from realdata.splits import holdout_split

__all__ = ["LFPW_N_TEST", "split_lfpw"]

LFPW_N_TEST = 160


def split_lfpw(dir: str | Path, n_test: int = LFPW_N_TEST, seed: int = 0) -> tuple[FaceSet, FaceSet]:
    """A fixed ``(train, test)`` split of a labeled face folder: LFPW train's 805 faces
    give 645 / 160 with the defaults.

    The faces are read in sorted file-name order (``read_landmark_folder``), permuted by
    ``numpy.random.default_rng(seed)``; the first ``n_test`` of the permutation are the
    test set. Both halves keep the sorted order. Same folder, ``n_test`` and ``seed``, same
    split on any machine (numpy's PCG64 permutation is stable across versions).
    """
    fs = read_landmark_folder(dir)
    n = len(fs)
    if not 0 < n_test < n:
        raise ValueError(f"n_test must be in [1, {n - 1}] for {n} faces, got {n_test}")
    train, test = holdout_split(n, n_test, seed)
    return fs.subset(train.tolist()), fs.subset(test.tolist())

