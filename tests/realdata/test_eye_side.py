"""Mirroring one side's eye patches onto the other's (realdata.eye_side)."""

from __future__ import annotations

import numpy as np
import pytest

from realdata.errors import DataFormatError
from realdata.eye_side import mirror_side, mirrored_mask, mirrored_yaw, unmirror_pitchyaw
from realdata.eyes import EyeImages


def _eyes(sides=("L", "R", "R"), head=True) -> EyeImages:
    rng = np.random.default_rng(0)
    n = 3
    return EyeImages(rng.integers(0, 256, (n, 4, 6), dtype=np.uint8),
                     rng.normal(size=(n, 2)).astype(np.float32), tuple(f"{i}.png" for i in range(n)),
                     "folder", headpose=rng.normal(size=(n, 2)).astype(np.float32) if head else None,
                     sides=sides)


def test_mirrors_only_that_side_and_negates_its_yaws():
    eyes = _eyes()
    out = mirror_side(eyes, "R")
    np.testing.assert_array_equal(out.images[0], eyes.images[0])
    np.testing.assert_array_equal(out.images[1], eyes.images[1][:, ::-1])
    np.testing.assert_array_equal(out.pitchyaw[:, 0], eyes.pitchyaw[:, 0])
    np.testing.assert_array_equal(out.pitchyaw[:, 1], eyes.pitchyaw[:, 1] * [1, -1, -1])
    np.testing.assert_array_equal(out.headpose[:, 1], eyes.headpose[:, 1] * [1, -1, -1])
    np.testing.assert_array_equal(out.headpose[:, 0], eyes.headpose[:, 0])
    assert out.sides == ("L", "L", "L")
    # the input is not touched
    assert eyes.sides == ("L", "R", "R") and not np.shares_memory(out.images, eyes.images)


def test_mirroring_back_restores_the_patches_and_labels():
    eyes = _eyes(sides=("L", "L", "L"))
    there = mirror_side(eyes, "L")
    assert there.sides == ("R", "R", "R") and not np.array_equal(there.images, eyes.images)
    back = mirror_side(there, "R")
    assert back.sides == eyes.sides
    for name in ("images", "pitchyaw", "headpose"):
        np.testing.assert_array_equal(getattr(back, name), getattr(eyes, name))


def test_predictions_map_back_to_the_stated_frame():
    eyes = _eyes()
    mask = mirrored_mask(eyes, "R")
    assert mask.tolist() == [False, True, True]
    pred = mirror_side(eyes, "R").pitchyaw  # a perfect model in the mirrored frame
    np.testing.assert_array_equal(unmirror_pitchyaw(pred, mask), eyes.pitchyaw)
    with pytest.raises(ValueError, match=r"pitchyaw must be \(3, 2\)"):
        unmirror_pitchyaw(pred[:2], mask)


def test_needs_sides_and_a_known_side():
    with pytest.raises(DataFormatError, match="no eye side per image .meta.csv needs an 'eye'") as e:
        mirror_side(_eyes(sides=None), "L")
    assert str(e.value.path) == "folder"
    with pytest.raises(ValueError, match="side must be one of"):
        mirrored_mask(_eyes(), "left")


def test_a_yaw_column_follows_the_mirrored_eyes():
    out = mirrored_yaw([-30, 0, 15, 0], np.array([True, True, False, False]))
    assert out.tolist() == [30.0, 0.0, 15.0, 0.0]
    assert not np.signbit(out).any()  # a mirrored 0 stays +0, so it prints and groups as 0
