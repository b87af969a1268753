"""Piecewise-affine warps between face shapes (models.face_warp)."""

import numpy as np
import pytest
import torch

from models.face_warp import piecewise_affine_grid, triangulate, warp_images


def _shape(rng, n=12, size=32):
    return rng.uniform(6, size - 6, size=(n, 2))


def _signed(points, tri):
    a, b, c = (points[tri[:, i]] for i in range(3))
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def test_triangles_are_listed_with_one_orientation():
    pts = _shape(np.random.default_rng(0))
    tri = triangulate(pts)
    assert tri.shape[1] == 3 and len(tri) >= len(pts) - 2
    assert (_signed(pts, tri) > 0).all()


def test_triangulate_refuses_non_finite_or_collapsed_points():
    pts = _shape(np.random.default_rng(0))
    pts[3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        triangulate(pts)
    with pytest.raises(ValueError, match="span no area"):
        triangulate(np.full((68, 2), 56.0))


def test_the_same_shape_on_both_sides_is_the_identity_inside_the_hull():
    rng = np.random.default_rng(1)
    pts = _shape(rng)
    tri = torch.from_numpy(triangulate(pts))
    p = torch.from_numpy(pts)[None]
    grid, mask = piecewise_affine_grid(p, p, tri, 32, 32)
    img = torch.rand(1, 3, 32, 32)
    out = warp_images(img, grid, mask)
    inside = mask[0] > 0
    assert inside.float().mean() > 0.1
    assert torch.allclose(out[0][:, inside], img[0][:, inside], atol=1e-4)
    assert (out[0][:, ~inside] == 0).all()


def test_a_global_affine_between_the_shapes_is_what_every_covered_pixel_follows():
    rng = np.random.default_rng(2)
    dst = _shape(rng)
    a, t = np.array([[0.8, 0.2], [-0.1, 0.9]]), np.array([3.0, -1.5])
    src = dst @ a.T + t
    grid, mask = piecewise_affine_grid(torch.from_numpy(dst)[None], torch.from_numpy(src),
                                       torch.from_numpy(triangulate(dst)), 32, 32)
    ys, xs = np.nonzero(mask[0].numpy())
    want = np.stack([xs, ys], 1) @ a.T + t  # source pixels
    got = grid[0].numpy()[ys, xs]
    got = np.stack([((got[:, 0] + 1) * 32 - 1) / 2, ((got[:, 1] + 1) * 32 - 1) / 2], 1)
    assert np.abs(got - want).max() < 1e-3


def test_a_triangle_that_folds_over_covers_nothing_and_unusable_ones_neither():
    dst = np.array([[4.0, 4.0], [28.0, 4.0], [4.0, 28.0], [28.0, 28.0], [16.0, 16.0]])
    tri = triangulate(dst)
    src = dst.copy()
    src[4] = [16.0, 2.0]  # the centre pulled past the top edge: the top triangle flips
    grid, mask = piecewise_affine_grid(torch.from_numpy(dst)[None], torch.from_numpy(src),
                                       torch.from_numpy(tri), 32, 32)
    flipped = _signed(src, tri) <= 0
    assert flipped.sum() == 1 and 0 < mask.mean() < 1  # only the unflipped triangle covers
    none = torch.zeros(1, len(tri), dtype=torch.bool)
    _, m0 = piecewise_affine_grid(torch.from_numpy(dst)[None], torch.from_numpy(dst),
                                  torch.from_numpy(tri), 32, 32, usable=none)
    assert (m0 == 0).all()


def test_one_shared_destination_shape_gives_what_the_general_path_gives():
    rng = np.random.default_rng(3)
    dst = _shape(rng)
    tri = torch.from_numpy(triangulate(dst))
    src = torch.from_numpy(dst[None] + rng.normal(0, 2.5, size=(3, len(dst), 2)))
    usable = torch.from_numpy(rng.random((3, len(tri))) > 0.2)
    fast = piecewise_affine_grid(torch.from_numpy(dst), src, tri, 32, 32, usable=usable)
    slow = piecewise_affine_grid(torch.from_numpy(dst).expand(3, -1, -1), src, tri, 32, 32,
                                 usable=usable)
    assert torch.equal(fast[1], slow[1]) and fast[1].sum() > 0
    assert torch.allclose(fast[0] * fast[1][..., None], slow[0] * slow[1][..., None], atol=1e-6)


def test_a_strided_grid_matches_the_exact_one_inside_the_triangles():
    rng = np.random.default_rng(4)
    src = _shape(rng, n=16, size=64)
    tri = torch.from_numpy(triangulate(src))
    dst = torch.from_numpy(src[None] + rng.normal(0, 1.5, size=(2, len(src), 2)))
    exact = piecewise_affine_grid(dst, torch.from_numpy(src), tri, 64, 64)
    coarse = piecewise_affine_grid(dst, torch.from_numpy(src), tri, 64, 64, stride=4)
    assert coarse[0].shape == exact[0].shape and coarse[1].shape == exact[1].shape
    deep = (exact[1] > 0) & (coarse[1] > 0.999)
    assert deep.float().mean() > 0.1
    px = (coarse[0] - exact[0])[deep] * 32  # normalised units -> pixels (64 px wide)
    # off where a block straddles two triangles' maps, most of all at skinny triangles
    assert px.abs().mean() < 0.25 and torch.quantile(px.abs(), 0.95) < 0.6 and px.abs().max() < 3
    assert (coarse[1][exact[1] == 0] < 1).all()  # soft at the outline, never fully on outside
