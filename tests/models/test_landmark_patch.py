"""The face-aligned mean patch (models.landmark_patch): the canonical means, the refiner
it makes, and its checkpoint."""

import numpy as np
import pytest
import torch

from models.landmark_patch import (
    LandmarkPatchConfig,
    LandmarkPatchRefiner,
    canonical_mean,
    fit_landmark_patch,
)


def _faces(n, grey, rng, size=48, jitter=1.5):
    """Flat grey squares with 68 points on a jittered ellipse-and-grid face layout."""
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ring = np.stack([24 + 14 * np.cos(t), 24 + 16 * np.sin(t)], 1)
    inner = np.stack(np.meshgrid(np.linspace(16, 32, 7), np.linspace(14, 34, 4)), -1).reshape(-1, 2)
    base = np.concatenate([ring, inner])  # 68 points
    pts = base[None] + rng.normal(0, jitter, size=(n, 68, 2))
    images = np.full((n, size, size, 3), grey, np.uint8)
    return images, pts


def test_a_patch_of_zero_is_the_identity_and_strength_scales_the_move():
    rng = np.random.default_rng(0)
    syn, sp = _faces(6, 80, rng)
    real, rp = _faces(5, 120, rng)
    vis = np.ones((6, 68), bool)
    net = fit_landmark_patch(syn, sp, vis, real, rp, strength=1.0, fade_px=0.0)
    cond = torch.from_numpy(np.concatenate([sp, vis[..., None]], -1))
    x = torch.from_numpy(syn).permute(0, 3, 1, 2)
    move = (net(x, cond) - x.float() / 255)[:, 0]
    deep = move.abs() > 0
    assert deep.float().mean() > 0.2
    # flat faces: inside, the move is the grey difference; softened toward the outline
    assert float(move.max()) == pytest.approx(40 / 255, abs=1 / 255)
    assert (move[deep] > 39 / 255).float().mean() > 0.3  # a small face: much of it is edge
    half = LandmarkPatchRefiner(LandmarkPatchConfig(**{**net.config, "strength": 0.5}))
    half.load_state_dict(net.state_dict())
    assert torch.allclose(half.residual(x.float() / 255, cond), 0.5 * net.residual(x.float() / 255, cond),
                          atol=1e-6)
    zero = LandmarkPatchRefiner(LandmarkPatchConfig(**net.config))  # delta all zero
    assert torch.equal(zero(x, cond), x.float() / 255)


def test_equal_sets_give_no_difference_and_hidden_faces_stay_as_they_were():
    rng = np.random.default_rng(1)
    syn, sp = _faces(4, 90, rng)
    net = fit_landmark_patch(syn, sp, np.ones((4, 68), bool), syn, sp)
    assert float(net.delta.abs().max()) < 1e-5
    real, rp = _faces(4, 150, rng)
    net = fit_landmark_patch(syn, sp, np.ones((4, 68), bool), real, rp)
    hidden = torch.from_numpy(np.concatenate([sp, np.zeros((4, 68, 1))], -1))
    x = torch.from_numpy(syn).permute(0, 3, 1, 2)
    assert torch.equal(net(x, hidden), x.float() / 255)


def test_the_difference_fades_to_nothing_at_the_outline():
    rng = np.random.default_rng(2)
    syn, sp = _faces(6, 80, rng)
    real, rp = _faces(6, 140, rng)
    net = fit_landmark_patch(syn, sp, np.ones((6, 68), bool), real, rp, fade_px=6.0)
    d = net.delta[0].numpy()
    covered = d != 0
    ys, xs = np.nonzero(covered)
    edge = np.abs(d[ys, xs]).min()
    assert edge < 0.35 * np.abs(d).max()  # the outline's pixels barely move


def test_triangles_with_a_hidden_point_do_not_feed_the_synthetic_mean():
    rng = np.random.default_rng(3)
    syn, sp = _faces(3, 60, rng)
    syn[0] = 250  # one face painted white, all its points hidden
    vis = np.ones((3, 68), bool)
    vis[0] = False
    shape = sp.mean(0)
    from models.face_warp import triangulate

    mean, count = canonical_mean(syn, sp, vis, shape, triangulate(shape))
    assert count.max() == 2
    assert np.abs(mean[:, count > 0] - 60 / 255).max() < 1e-3


def test_bad_inputs_are_refused_with_the_reason():
    rng = np.random.default_rng(4)
    syn, sp = _faces(3, 60, rng)
    real, rp = _faces(3, 90, rng, size=40)
    with pytest.raises(ValueError, match="one \\(H, W, C\\) size"):
        fit_landmark_patch(syn, sp, np.ones((3, 68), bool), real, rp)
    with pytest.raises(ValueError, match="real points"):
        fit_landmark_patch(syn, sp, np.ones((3, 68), bool), syn, rp[:, :60])
    bad = rp.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="finite"):
        fit_landmark_patch(syn, sp, np.ones((3, 68), bool), syn, bad)
    with pytest.raises(ValueError, match="shape must hold"):
        LandmarkPatchConfig(shape=(1.0, 2.0), triangles=(0, 1, 2))
    net = fit_landmark_patch(syn, sp, np.ones((3, 68), bool), syn, sp)
    with pytest.raises(ValueError, match="points and visibility"):
        net(torch.zeros(3, 3, 48, 48), torch.zeros(3, 68, 2))


def test_the_checkpoint_round_trip_keeps_the_refiner(tmp_path):
    from models.checkpoint import save_checkpoint
    from models.simgan import load_refiner, refine_images

    rng = np.random.default_rng(5)
    syn, sp = _faces(4, 70, rng)
    real, rp = _faces(4, 130, rng)
    vis = np.ones((4, 68), bool)
    net = fit_landmark_patch(syn, sp, vis, real, rp, strength=0.7)
    path = save_checkpoint(tmp_path / "refiner.pt", net, None, None, 0, {}, model_name=net.model_name)
    back = load_refiner(path, channels=3)
    cond = np.concatenate([sp, vis[..., None]], -1)
    assert np.array_equal(refine_images(back, syn, condition=cond), refine_images(net, syn, condition=cond))
    with pytest.raises(ValueError, match="points68_visible"):
        refine_images(back, syn)
