"""Tests for the face-crop protocol (realdata.face_crop): pixel convention, padding, sets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realdata.face_crop import (
    DEFAULT_ENLARGE,
    CropTransform,
    box_from_landmarks,
    crop_face,
    crop_face_set,
    square_box,
)
from realdata.landmarks import FaceSet, read_landmark_folder, write_pts

SHARED = Path(
    os.environ.get("SYNTHLOOP_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
)
LFPW = SHARED / "data" / "real" / "lfpw-train"


def _noise(h: int = 100, w: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _blob(cx: float, cy: float, h: int = 200, w: int = 300, sigma: float = 6.0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    g = 255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return np.repeat(g.astype(np.uint8)[:, :, None], 3, axis=2)


def test_pixel_centre_maps_to_the_corresponding_crop_pixel_centre():
    img = _noise()
    # a 32-px box whose corner is on the edge of pixel (row 20, col 10): scale 1
    crop, tf = crop_face(img, (9.5, 19.5, 41.5, 51.5), size=32)
    assert tf.scale == 1.0
    np.testing.assert_array_equal(tf.to_crop([13, 25]), [3, 5])  # pixel (13, 25) -> (3, 5)
    assert crop[5, 3].tolist() == img[25, 13].tolist()
    np.testing.assert_array_equal(crop, img[20:52, 10:42])  # the crop is the slice


@pytest.mark.parametrize("box", [(100, 50, 180, 130), (120, 70, 160, 110), (40, 0, 240, 200)])
def test_landmark_lands_where_to_crop_says_under_any_scale(box):
    cx, cy = 137.3, 88.6  # a smooth blob centred here, between pixel centres
    crop, tf = crop_face(_blob(cx, cy), box, size=64)
    g = crop[..., 0].astype(np.float64)
    u, v = tf.to_crop([cx, cy])
    row, col = np.unravel_index(np.argmax(g), g.shape)
    assert abs(col - u) <= 1 and abs(row - v) <= 1  # uint8 plateaus make ties: centroid below
    yy, xx = np.mgrid[0:64, 0:64]
    centroid = np.array([(g * xx).sum(), (g * yy).sum()]) / g.sum()
    np.testing.assert_allclose(centroid, [u, v], atol=0.1)


def test_transform_round_trip_and_box_edges():
    tf = CropTransform.from_box((10.0, -5.0, 110.0, 95.0), 128)
    pts = np.random.default_rng(0).uniform(-50, 200, (68, 2))
    np.testing.assert_allclose(tf.from_crop(tf.to_crop(pts)), pts, atol=1e-12)
    # the box's edges are the crop's edges: half a pixel outside the first/last centres
    np.testing.assert_allclose(tf.to_crop([[10, -5], [110, 95]]), [[-0.5, -0.5], [127.5, 127.5]])
    assert tf.to_crop(pts[None]).shape == (1, 68, 2)


def test_square_box_and_box_from_landmarks():
    assert square_box((0, 0, 10, 20), 1.0) == (-5.0, 0.0, 15.0, 20.0)  # centre kept
    x0, y0, x1, y1 = square_box((0, 0, 10, 20))
    assert DEFAULT_ENLARGE == 1.25 and (x1 - x0, y1 - y0) == (25.0, 25.0)
    pts = np.array([[10, 10], [30, 20], [np.nan, np.nan], [20, 50]])
    assert box_from_landmarks(pts, 1.0) == (0.0, 10.0, 40.0, 50.0)  # NaN ignored
    with pytest.raises(ValueError, match="2 finite points"):
        box_from_landmarks(np.full((68, 2), np.nan))
    with pytest.raises(ValueError, match="zero size"):
        square_box((1, 1, 1, 1))
    with pytest.raises(ValueError, match="x1 >= x0"):
        square_box((5, 0, 1, 4))
    with pytest.raises(ValueError, match="enlarge"):
        square_box((0, 0, 1, 1), 0)


def test_non_square_box_is_squared_not_stretched():
    img = _noise()
    wide, tf_wide = crop_face(img, (9.5, 29.5, 41.5, 41.5), size=32)  # 32 x 12, centre y 35.5
    sq, tf_sq = crop_face(img, (9.5, 19.5, 41.5, 51.5), size=32)
    assert tf_wide == tf_sq
    np.testing.assert_array_equal(wide, sq)


def test_box_leaving_the_image_is_zero_padded():
    img = _noise() | 1  # no zeros inside the image
    crop, tf = crop_face(img, (-20.5, -10.5, 19.5, 29.5), size=40)  # scale 1, 20 px out left
    assert np.all(crop[:, :20] == 0) and np.all(crop[:10] == 0)
    np.testing.assert_array_equal(crop[10:, 20:], img[0:30, 0:20])
    assert tf.to_crop([0, 0]).tolist() == [20.0, 10.0]


def test_box_leaving_the_image_edge_padding_repeats_the_border():
    img = _noise()
    crop, _ = crop_face(img, (-20.5, -0.5, 19.5, 39.5), size=40, pad="edge")
    np.testing.assert_array_equal(crop[:, :20], np.repeat(img[0:40, :1], 20, axis=1))
    far, _ = crop_face(img, (500, 500, 600, 600), size=16, pad="edge")  # entirely outside
    assert np.all(far == img[-1, -1])
    far0, _ = crop_face(img, (500, 500, 600, 600), size=16)
    assert not far0.any()


def test_crop_face_inputs():
    gray = _noise()[..., 0]
    crop, _ = crop_face(gray, (0, 0, 50, 50), size=16)
    assert crop.shape == (16, 16, 3) and crop.dtype == np.uint8
    assert np.all(crop[..., 0] == crop[..., 2])
    crop_pil, _ = crop_face(Image.fromarray(gray), (0, 0, 50, 50), size=16)
    np.testing.assert_array_equal(crop, crop_pil)
    with pytest.raises(ValueError, match="uint8"):
        crop_face(gray.astype(np.float32), (0, 0, 5, 5))
    with pytest.raises(ValueError, match="pad"):
        crop_face(gray, (0, 0, 5, 5), pad="reflect")


def _face_set(tmp_path: Path) -> FaceSet:
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(_noise(80, 90, seed=i)).save(tmp_path / f"f{i}.png")
        write_pts(tmp_path / f"f{i}.pts", rng.uniform(20, 60, (68, 2)))
    return read_landmark_folder(tmp_path)


def test_crop_face_set_landmarks_mode(tmp_path):
    fs = _face_set(tmp_path)
    images, points, tfs = crop_face_set(fs, size=32)
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    for i in range(2):
        np.testing.assert_allclose(points[i], tfs[i].to_crop(fs.points[i]))
        crop, _ = crop_face(fs.image(i), box_from_landmarks(fs.points[i]), 32)
        np.testing.assert_array_equal(images[i], crop)
        # the landmark box fills 1 / 1.25 of the crop along its longer side
        extent = (points[i].max(0) - points[i].min(0)).max()
        assert extent == pytest.approx(32 / DEFAULT_ENLARGE)


def test_crop_face_set_box_mode(tmp_path):
    fs = _face_set(tmp_path)
    boxes = [(10, 10, 50, 50), (0, 0, 80, 80)]
    _, points, tfs = crop_face_set(fs, size=32, enlarge=1.0, boxes=boxes)
    assert tfs[1] == CropTransform.from_box((0, 0, 80, 80), 32)
    np.testing.assert_allclose(points[0], tfs[0].to_crop(fs.points[0]))
    with pytest.raises(ValueError, match="expected 2 boxes"):
        crop_face_set(fs, boxes=boxes[:1])


@pytest.mark.skipif(not LFPW.is_dir(), reason="no shared data (../shared/data/real)")
def test_crop_lfpw_faces():
    fs = read_landmark_folder(LFPW)
    sub = fs.subset(slice(0, 12))
    images, points, _ = crop_face_set(sub, size=128)
    assert images.shape == (12, 128, 128, 3)
    assert points.min() > 0 and points.max() < 127  # every landmark inside the crop
    assert images.reshape(12, -1).std(1).min() > 10  # real content, not padding
