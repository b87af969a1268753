"""RealFaces.relabeled: the same crops with other labels (a teacher's pseudo-labels), and
no way for the original labels to come back through a later crop."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from realdata.landmarks import write_pts
from realdata.real_faces import load_real_faces


@pytest.fixture
def faces(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (120, 140, 3), dtype=np.uint8)).save(
            tmp_path / f"f{i}.png")
        write_pts(tmp_path / f"f{i}.pts", rng.uniform(40, 90, (68, 2)) + [5 * i, 0])
    return load_real_faces(tmp_path, 64)


def test_relabeled_keeps_the_crops_and_carries_the_new_points_into_the_images(faces):
    new = faces.points + np.array([3.0, -2.0])
    moved = faces.relabeled(new)
    assert moved.images is faces.images and moved.transforms == faces.transforms
    assert np.allclose(moved.points, new) and not np.allclose(faces.points, new)  # a copy
    back = np.stack([t.to_crop(p) for t, p in zip(moved.transforms, moved.face_set.points,
                                                   strict=True)])
    assert np.allclose(back, new)  # the face set holds the same labels, in image pixels
    assert moved.face_set.names == faces.face_set.names
    assert moved.subset([2]).points.shape == (1, 68, 2)


def test_cropping_a_relabeled_set_again_never_brings_back_the_old_labels(faces):
    new = faces.points[::-1].copy()  # each face labeled with another face's points
    again = load_real_faces(faces.relabeled(new), 96)  # another size: cropped anew
    scale = 96 / 64
    # the new crop is around the new points; their layout is the new one, not the old
    rel_new = (new - new.mean(axis=1, keepdims=True)) * scale
    rel_got = again.points - again.points.mean(axis=1, keepdims=True)
    assert np.allclose(rel_got, rel_new, atol=0.5)


def test_relabeled_refuses_points_of_the_wrong_shape_or_not_finite(faces):
    with pytest.raises(ValueError, match="points must be"):
        faces.relabeled(faces.points[:2])
    bad = faces.points.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        faces.relabeled(bad)
