"""Synthetic faces set into real photographs (models.real_context): the similarity fit,
the outline's distance field, the composite, and its checkpoint."""

import numpy as np
import pytest
import torch

from models.real_context import (
    RealContextConfig,
    RealContextRefiner,
    fit_real_context,
    hull_distance,
    similarity_fits,
)

SIZE = 48


def _shape(rng=None, jitter=0.0):
    """68 points on an ellipse-and-grid face layout, centred in a 48 px crop."""
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ring = np.stack([24 + 10 * np.cos(t), 24 + 12 * np.sin(t)], 1)
    inner = np.stack(np.meshgrid(np.linspace(19, 29, 7), np.linspace(17, 31, 4)), -1).reshape(-1, 2)
    pts = np.concatenate([ring, inner])
    return pts if rng is None else pts + rng.normal(0, jitter, pts.shape)


def _similar(pts, scale, angle, shift):
    c = pts.mean(0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (pts - c) @ rot.T * scale + c + np.asarray(shift)


def _cond(pts):
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 68, 2)
    return np.concatenate([pts, np.ones((*pts.shape[:2], 1))], -1)


def _photo(seed):
    """A textured real 'photograph', different everywhere, so where it shows is plain."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def test_the_similarity_fit_recovers_scale_rotation_and_a_perfect_residual():
    p = _shape()
    q = _similar(p, 0.8, 0.3, (3.0, -2.0))  # the real shape
    w, res = similarity_fits(torch.from_numpy(p[None]), torch.from_numpy(q[None]))
    # w carries the centred real shape onto the face: the inverse scale and rotation
    assert abs(w[0, 0]) == pytest.approx(1 / 0.8, rel=1e-9)
    assert float(torch.angle(w[0, 0])) == pytest.approx(-0.3, abs=1e-9)
    assert float(res[0, 0]) == pytest.approx(0.0, abs=1e-12)
    other = np.random.default_rng(0).normal(24, 8, (68, 2))  # no shape in common
    _, res2 = similarity_fits(torch.from_numpy(p[None]), torch.from_numpy(other[None]))
    assert float(res2[0, 0]) > 0.5


def test_the_hull_distance_is_negative_inside_and_the_distance_outside():
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], float)
    d = hull_distance(square, 40, 40)
    assert d[20, 20] == pytest.approx(-10.0)  # (y, x): the centre, 10 px from every edge
    assert d[20, 35] == pytest.approx(5.0)  # 5 px right of the right edge
    assert d[5, 20] == pytest.approx(5.0)
    assert (d[10:31, 10:31] <= 1e-9).all() and (d[:10] > 0).all()


def test_inside_the_outline_the_face_stays_and_around_it_the_photograph_shows():
    p = _shape()
    photo = _photo(1)
    net = fit_real_context(photo[None], p[None], margin_px=0.0, feather_px=0.0, colour=0.0)
    syn = np.full((1, SIZE, SIZE, 3), 90, np.uint8)
    x = torch.from_numpy(syn).permute(0, 3, 1, 2)
    out = net(x, _cond(p))[0]
    d = hull_distance(p, SIZE, SIZE)
    inside, outside = torch.from_numpy(d < 0), torch.from_numpy(d > 1e-6)  # (on an edge: 1e-15)
    assert torch.equal(out[:, inside], torch.full_like(out[:, inside], 90 / 255))
    # the same shape: the photograph comes through unmoved (grid on the pixel centres)
    real = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    assert torch.allclose(out[:, outside], real[:, outside], atol=1e-5)


def test_the_photograph_is_aligned_onto_the_face_by_the_points():
    p = _shape()
    q = _similar(p, 0.9, 0.0, (4.0, 0.0))  # the photograph's face: smaller, 4 px right
    photo = np.zeros((SIZE, SIZE, 3), np.uint8)
    qx, qy = np.round(q[0]).astype(int)  # point 0 of the ring: the face's right edge
    photo[qy - 1:qy + 2, qx + 4:qx + 7] = 255  # a mark 4-6 px right of it
    net = fit_real_context(photo[None], q[None], margin_px=0.0, feather_px=0.0, colour=0.0)
    out = net(torch.zeros(1, 3, SIZE, SIZE), _cond(p))[0, 0]
    ys, xs = np.nonzero(out.numpy() > 0.5)
    # in the face's frame the mark sits right of the face's own point 0, scaled by 1/0.9
    assert xs.min() > p[0, 0] + 3 and xs.max() < p[0, 0] + 9
    assert abs(ys.mean() - p[0, 1]) < 1.5


def test_colour_matching_moves_the_face_to_the_photographs_tone():
    p = _shape()
    photo = np.full((SIZE, SIZE, 3), (180, 120, 90), np.uint8)
    net = fit_real_context(photo[None], p[None], colour=1.0)
    x = torch.full((1, 3, SIZE, SIZE), 0.3)
    x[:, :, 20:28, 20:28] = 0.4  # some structure: its spread is kept (the photo has none)
    out = net(x, _cond(p))[0]
    inside = torch.from_numpy(hull_distance(p, SIZE, SIZE) < 0)  # where it matches
    means = out[:, inside].mean(1) * 255
    assert torch.allclose(means, torch.tensor([180.0, 120.0, 90.0]), atol=1.0)
    # the spread's gain is floored (0.8), so the structure stays visible
    assert float(out[0, 24, 24] - out[0, 18, 24]) > 0.05
    off = fit_real_context(photo[None], p[None], colour=0.0)
    assert torch.allclose(off(x, _cond(p))[:, :, inside], x[:, :, inside])


def test_shading_takes_the_photographs_low_frequencies_and_keeps_the_faces_edges():
    p = _shape()
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    ramp = (60 + 3 * xs).clip(0, 255)  # the photograph lit from the right: a smooth ramp
    photo = np.repeat(ramp[..., None], 3, -1).astype(np.uint8)
    x = torch.full((1, 3, SIZE, SIZE), 0.5)
    x[:, :, 22:26, 18:30] = 0.2  # an edge (a lid line) on an evenly lit face
    inside = torch.from_numpy(hull_distance(p, SIZE, SIZE) < 0)
    flat = fit_real_context(photo[None], p[None], colour=0.0)(x, _cond(p))
    assert torch.equal(flat[:, :, inside], x[:, :, inside])  # shading 0: as before
    out = fit_real_context(photo[None], p[None], colour=0.0, shading=1.0,
                           shading_sigma_px=3.0)(x, _cond(p))[0, 0]
    # the face is now darker on the photograph's dark side: most of the ramp's 33 grey
    # levels across these 11 px (the blur taken inside only flattens it near the outline)
    left, right = float(out[30:33, 18:20].mean()), float(out[30:33, 29:31].mean())
    assert 0.6 * 33 < (right - left) * 255 < 36
    # and the lid line is still most of its 0.3 below the skin just above and below it
    skin = (out[19:21, 20:28].mean() + out[26:28, 20:28].mean()) / 2
    assert 0.2 < float(skin - out[22:26, 20:28].mean()) < 0.35
    with pytest.raises(ValueError, match="shading must be in"):
        fit_real_context(photo[None], p[None], shading=1.5)


def test_a_face_no_photograph_fits_is_left_as_it_is():
    p = _shape()
    other = np.random.default_rng(3).normal(24, 8, (68, 2))
    net = fit_real_context(_photo(2)[None], other[None], max_residual=0.05)
    x = torch.rand(1, 3, SIZE, SIZE)
    assert torch.equal(net(x, _cond(p)), x)


def test_the_choice_depends_on_the_face_alone_and_spreads_over_photographs():
    rng = np.random.default_rng(4)
    bank_pts = np.stack([_shape(rng, 0.3) for _ in range(6)])
    photos = np.stack([_photo(10 + i) for i in range(6)])
    net = fit_real_context(photos, bank_pts, choices=6, max_residual=0.5)
    faces = np.stack([_shape(rng, 0.3) for _ in range(10)])
    x = torch.full((10, 3, SIZE, SIZE), 0.5)
    whole = net(x, _cond(faces))
    halves = torch.cat([net(x[:4], _cond(faces[:4])), net(x[4:], _cond(faces[4:]))])
    assert torch.equal(whole, halves)  # any chunking: the same answer
    corner = whole[:, :, :4, :4].reshape(10, -1)
    distinct = {tuple(c.round(decimals=3).tolist()) for c in corner}
    assert len(distinct) >= 3  # faces of one shape still get different photographs


def test_the_checkpoint_round_trip_keeps_the_photographs(tmp_path):
    from models.checkpoint import save_checkpoint
    from models.simgan import load_refiner

    rng = np.random.default_rng(5)
    bank_pts = np.stack([_shape(rng, 0.3) for _ in range(3)])
    net = fit_real_context(np.stack([_photo(i) for i in range(3)]), bank_pts)
    path = save_checkpoint(tmp_path / "refiner.pt", net, None, None, 0, net.config,
                           model_name=net.model_name)
    back = load_refiner(path, channels=3)
    assert isinstance(back, RealContextRefiner) and back.cfg == net.cfg
    x = torch.rand(2, 3, SIZE, SIZE)
    cond = _cond(np.stack([_shape(rng, 0.3) for _ in range(2)]))
    assert torch.equal(back(x, cond), net(x, cond))


def test_bad_input_is_refused_with_the_problem_named():
    p = _shape()
    with pytest.raises(ValueError, match=r"real points must be finite \(1, 68, 2\)"):
        fit_real_context(_photo(0)[None], p[None, :60])
    with pytest.raises(ValueError, match="expected real faces"):
        fit_real_context(_photo(0)[..., 0], p[None])
    with pytest.raises(ValueError, match="span no face"):
        fit_real_context(np.stack([_photo(0)] * 2), np.full((2, 68, 2), 24.0))
    net = fit_real_context(np.stack([_photo(0)] * 2), np.stack([p, np.full((68, 2), 24.0)]))
    assert net.cfg.bank_size == 1  # the face on one spot is left out
    with pytest.raises(ValueError, match="fitted on"):
        net(torch.zeros(1, 3, 32, 32), _cond(p))
    with pytest.raises(ValueError, match="68 points and visibility"):
        net(torch.zeros(2, 3, SIZE, SIZE), _cond(p))
    with pytest.raises(ValueError, match="colour must be in"):
        RealContextConfig(colour=2.0)
