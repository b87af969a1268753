"""The one split rule: sizes, disjoint sorted parts, determinism, and the exact split the
project's stored results depend on."""

import numpy as np
import pytest

from realdata.splits import LOOP_HOLDOUT_SALT, holdout_size, holdout_split


def test_holdout_split_parts_are_disjoint_sorted_and_seeded():
    keep, hold = holdout_split(100, 20, seed=3)
    assert len(hold) == 20 and len(keep) == 80
    assert np.array_equal(np.sort(np.concatenate([keep, hold])), np.arange(100))
    assert np.all(np.diff(keep) > 0) and np.all(np.diff(hold) > 0)
    assert np.array_equal(hold, holdout_split(100, 20, seed=3)[1])
    assert not np.array_equal(hold, holdout_split(100, 20, seed=4)[1])
    # a salted seed is another permutation: the loop's split is not the validation one
    assert not np.array_equal(holdout_split(100, 20, [3, LOOP_HOLDOUT_SALT])[1], hold)


def test_holdout_split_is_the_first_k_of_numpys_permutation():
    perm = np.random.default_rng([0, LOOP_HOLDOUT_SALT]).permutation(10)
    keep, hold = holdout_split(10, 4, [0, LOOP_HOLDOUT_SALT])
    assert np.array_equal(hold, np.sort(perm[:4])) and np.array_equal(keep, np.sort(perm[4:]))
    with pytest.raises(ValueError, match="cannot hold out 11 of 10"):
        holdout_split(10, 11, 0)


@pytest.mark.parametrize("n, frac, cap, expected", [
    (100, 0.2, None, 20),
    (100, 0.2, 5, 5),        # capped
    (3, 0.05, None, 1),      # at least one held out
    (2, 0.9, None, 1),       # at least one kept
    (1, 0.5, None, 0),       # a single sample is only kept
    (10, 0.0, None, 0),
])
def test_holdout_size(n, frac, cap, expected):
    assert holdout_size(n, frac, cap) == expected


def test_holdout_size_refuses_fractions_outside_0_1():
    with pytest.raises(ValueError, match="frac"):
        holdout_size(10, 1.0)


def test_group_split_keeps_each_group_on_one_side():
    from realdata.splits import group_holdout_split

    groups = [f"s{i % 7}" for i in range(70)]
    keep, hold = group_holdout_split(groups, 0.3, seed=[0, LOOP_HOLDOUT_SALT])
    assert np.array_equal(np.sort(np.concatenate([keep, hold])), np.arange(70))
    held = {groups[i] for i in hold}
    assert len(held) == 2  # round(7 * 0.3) groups
    assert held.isdisjoint({groups[i] for i in keep})
    # the same groups whatever the row order: groups are sorted before the permutation
    again = group_holdout_split(groups[::-1], 0.3, seed=[0, LOOP_HOLDOUT_SALT])[1]
    assert {groups[::-1][i] for i in again} == held


def test_split_by_sample_without_groups():
    from realdata.splits import split

    assert np.array_equal(split(100, 0.2, 3)[1], holdout_split(100, 20, 3)[1])
    with pytest.raises(ValueError, match="3 groups for 4 samples"):
        split(4, 0.5, 0, groups=["a", "b", "c"])
