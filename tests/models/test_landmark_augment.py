"""Face augmentation that moves the landmarks with the pixels: flips re-index the points,
the affine on the points is the one grid_sample applies to the pixels (blobs rendered at
known points land where the augmented points say), and a seed fixes everything."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from models.heatmaps import gaussian_heatmaps, soft_argmax
from models.landmark_augment import (
    IBUG68_MIRROR,
    FaceAugmentConfig,
    augment_faces,
    batch_mirror,
    hflip_points,
    layout_mirror,
    random_affine,
)

H, W = 72, 88  # not square: the x and y normalisations of grid_sample differ
MIRROR = np.asarray(IBUG68_MIRROR)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _faces(b=6, seed=0, k=68, margin=0.25):
    """Random images and points in the crop's central part (so every augmented point
    stays inside it)."""
    g = _gen(seed)
    x = torch.randint(0, 256, (b, 3, H, W), generator=g, dtype=torch.uint8)
    lo = torch.tensor([margin * W, margin * H])
    span = torch.tensor([(1 - 2 * margin) * W, (1 - 2 * margin) * H])
    pts = lo + span * torch.rand((b, k, 2), generator=g)
    return x, pts


def _blobs(points, sigma=1.5):
    """One channel per point: a Gaussian blob centred on it, peak 1."""
    return gaussian_heatmaps(points, (H, W), stride=1.0, sigma=sigma)


def _centroids(images):
    """Each channel's intensity-weighted centre: soft-argmax of log-intensity."""
    coords, _ = soft_argmax(torch.log(images.clamp_min(1e-12)), stride=1.0)
    return coords


def test_ibug68_mirror_maps_left_eye_to_right_eye_and_fixes_the_nose_bridge():
    assert np.array_equal(MIRROR[MIRROR], np.arange(68))
    assert set(MIRROR[36:42]) == set(range(42, 48)) and set(MIRROR[42:48]) == set(range(36, 42))
    assert MIRROR[36] == 45 and MIRROR[39] == 42  # outer corner to outer, inner to inner
    assert all(MIRROR[i] == i for i in (27, 28, 29, 30))
    assert MIRROR[0] == 16 and MIRROR[31] == 35 and MIRROR[48] == 54


def test_layout_mirror_joins_the_set_and_the_68_head():
    dense = np.concatenate([MIRROR, 68 + np.arange(10).reshape(5, 2)[:, ::-1].ravel()])
    m = layout_mirror(dense, real_head=True)
    assert len(m) == 78 + 68 and np.array_equal(m[m], np.arange(len(m)))
    assert np.array_equal(m[:78], dense) and np.array_equal(m[78:], 78 + MIRROR)
    assert layout_mirror(None, real_head=True) is None
    with pytest.raises(ValueError, match="own inverse"):
        layout_mirror([1, 2, 0])


def test_batch_mirror_reads_the_stored_permutation():
    stored = np.concatenate([MIRROR, [69, 68]]).astype(np.int32)
    labels = {"dense70_mirror": stored, "dense70_vertex_ids": np.arange(70), "old_vertex_ids": np.arange(70)}
    assert np.array_equal(batch_mirror(labels, "points68"), MIRROR)
    assert np.array_equal(batch_mirror(labels, "dense70"), stored)
    assert batch_mirror(labels, "old") is None  # a batch from before the sets were symmetric


def test_flip_twice_is_the_identity():
    x, pts = _faces()
    vis = torch.rand(pts.shape[:2]) > 0.3
    cfg = replace(FaceAugmentConfig.off(), p_flip=1.0)
    once = augment_faces(x, _gen(1), pts, vis, MIRROR, cfg)
    twice = augment_faces(once.images, _gen(2), once.points, once.visible, MIRROR, cfg)
    # a flip maps pixel centres onto pixel centres: no interpolation, only the rounding
    # of grid coordinates (far below one grey level, 1/255)
    torch.testing.assert_close(once.images, x.float().flip(-1) / 255, atol=5e-5, rtol=0)
    torch.testing.assert_close(twice.images, x.float() / 255, atol=5e-5, rtol=0)
    torch.testing.assert_close(twice.points, pts, atol=1e-5, rtol=0)
    assert torch.equal(twice.visible, vis)
    # the left eye of the flipped face is the mirror image of the right one
    torch.testing.assert_close(once.points[:, 36:42, 0], (W - 1) - pts[:, MIRROR[36:42], 0])
    torch.testing.assert_close(once.points, hflip_points(pts, W, MIRROR))
    # points on a 1/64 px grid come back bit for bit
    grid_pts = torch.round(pts * 64) / 64
    back = augment_faces(x, _gen(1), augment_faces(x, _gen(1), grid_pts, None, MIRROR, cfg).points,
                         None, MIRROR, cfg).points
    assert torch.equal(back, grid_pts)


@pytest.mark.parametrize("seed", [0, 1])
def test_points_follow_the_pixels(seed):
    """Render a blob at each point (one channel each), augment with strong geometry, find
    the blobs again: each lands on its augmented point (re-indexed if the sample was
    flipped) to a small fraction of a pixel."""
    b = 8
    _, pts = _faces(b, seed=seed, k=68)
    cfg = FaceAugmentConfig(p_flip=0.5, p_rotate=1.0, p_scale=1.0, p_translate=1.0,
                            max_log_aspect=np.log(1.1), padding="zeros").geometry_only()
    out = augment_faces(_blobs(pts), _gen(10 + seed), pts, None, MIRROR, cfg)
    _, _, flip = random_affine(b, _gen(10 + seed), cfg)  # the first draws of the call
    assert flip.any() and not flip.all()
    found = _centroids(out.images)  # channel j: the blob of input point j
    expect = torch.where(flip.view(b, 1, 1), out.points[:, MIRROR], out.points)
    err = (found - expect).norm(dim=-1)
    assert err.max() < 0.1, err.max()
    # and the geometry did move them (by pixels, not hundredths)
    assert (found - pts).norm(dim=-1).mean() > 5.0


def test_default_config_is_deterministic_per_seed():
    x, pts = _faces()
    vis = torch.ones(pts.shape[:2])
    a = augment_faces(x, _gen(5), pts, vis, MIRROR)
    b = augment_faces(x, _gen(5), pts, vis, MIRROR)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    c = augment_faces(x, _gen(6), pts, vis, MIRROR)
    assert not torch.equal(a.images, c.images) and not torch.equal(a.points, c.points)
    assert a.images.dtype == torch.float32 and 0.0 <= float(a.images.min()) <= float(a.images.max()) <= 1.0


def test_off_is_the_identity():
    x, pts = _faces()
    vis = torch.rand(pts.shape[:2])
    out = augment_faces(x, _gen(0), pts, vis, None, FaceAugmentConfig.off())
    torch.testing.assert_close(out.images, x.float() / 255, atol=1e-6, rtol=0)
    assert torch.equal(out.points, pts) and torch.equal(out.visible, vis)


def test_every_op_on_keeps_shapes_and_range():
    x, pts = _faces(b=8)
    cfg = FaceAugmentConfig(p_flip=1, p_rotate=1, p_occlude=1, p_colour=1, p_gray=0.5, p_jpeg=1)
    out = augment_faces(x, _gen(3), pts, torch.ones(pts.shape[:2], dtype=torch.bool), MIRROR, cfg)
    assert out.images.shape == x.shape and out.points.shape == pts.shape
    assert float(out.images.min()) >= 0.0 and float(out.images.max()) <= 1.0
    # JPEG quantises to whole grey levels
    torch.testing.assert_close(out.images * 255, torch.round(out.images * 255), atol=1e-4, rtol=0)
    assert out.visible.all()  # occluded points keep their labels by default


def test_only_the_labeled_part_has_points_and_nan_stays_in_its_channel():
    """A source+target batch: 5 images, points for the first 2; a syn+real layout where
    synthetic samples have no labels in the 68 head (NaN, weight 0)."""
    x, _ = _faces(b=5)
    dense = np.concatenate([MIRROR, [69, 68]])
    m = layout_mirror(dense, real_head=True)
    pts = torch.full((2, 70 + 68, 2), float("nan"))
    _, p = _faces(b=2, k=70, seed=3)
    pts[:, :70] = p
    w = torch.zeros(2, 138)
    w[:, :70] = 1.0
    cfg = replace(FaceAugmentConfig(), p_flip=1.0)
    out = augment_faces(x, _gen(0), pts, w, m, cfg)
    assert out.images.shape == x.shape and out.points.shape == (2, 138, 2) and out.visible.shape == (2, 138)
    assert torch.isfinite(out.points[:, :70]).all() and torch.isnan(out.points[:, 70:]).all()
    assert torch.equal(out.visible, w)
    assert augment_faces(x, _gen(0), cfg=cfg).points is None


def test_occluded_points_can_be_switched_off():
    x, pts = _faces(b=8)
    vis = torch.ones(pts.shape[:2], dtype=torch.bool)
    cfg = replace(FaceAugmentConfig.off(), p_occlude=1.0, occlude_min=0.5, occlude_max=0.5,
                  occluded_weight=0.0)
    out = augment_faces(x, _gen(4), pts, vis, None, cfg)
    assert torch.equal(out.points, pts) and (~out.visible).any() and out.visible.any()
    px = torch.floor(pts + 0.5).long()
    rgb = out.images[torch.arange(8).view(8, 1), :, px[..., 1], px[..., 0]]  # (B, K, C)
    fill = rgb[~out.visible]
    # under the box: the flat fill colour of the sample; elsewhere the random image
    for i in range(8):
        hidden = rgb[i][~out.visible[i]]
        if len(hidden):
            assert (hidden == hidden[0]).all()
    kept = rgb[out.visible]
    assert not (kept.unsqueeze(1) == fill.unsqueeze(0)).all(-1).any()
    weights = augment_faces(x, _gen(4), pts, torch.ones(pts.shape[:2]), None,
                            replace(cfg, occluded_weight=0.25)).visible
    assert torch.equal(weights == 0.25, ~out.visible)


def test_labeled_flips_need_a_valid_mirror():
    x, pts = _faces()
    with pytest.raises(ValueError, match="mirror permutation"):
        augment_faces(x, _gen(0), pts)
    with pytest.raises(ValueError, match="68 points"):
        augment_faces(x, _gen(0), pts, None, MIRROR[:60])
    augment_faces(x, _gen(0), pts, None, None, replace(FaceAugmentConfig(), p_flip=0.0))
