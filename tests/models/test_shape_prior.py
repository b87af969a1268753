"""The dense-point shape prior and the visibility probe: exact on shapes the prior spans,
hidden points recovered from visible ones, the prior's pull, and the probe's fit."""

import numpy as np
import pytest
import torch

from models.shape_prior import ShapePrior, constrain_points
from models.visibility_probe import VisibilityProbe, fit_visibility_probe, flip_pooled_features


def _low_rank_shapes(n: int, k: int = 12, rank: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` point sets of ``k`` points spanned by ``rank`` fixed directions around a mean."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.rand(k * 2, generator=g, dtype=torch.float64) * 50
    dirs = torch.linalg.qr(torch.randn(k * 2, rank, generator=g, dtype=torch.float64))[0]
    coeffs = torch.randn(n, rank, generator=g, dtype=torch.float64) * torch.tensor([8.0, 4.0, 2.0][:rank])
    return (mean + coeffs @ dirs.T).reshape(n, k, 2), dirs


def test_prior_spans_the_training_shapes_with_an_orthonormal_basis():
    shapes, dirs = _low_rank_shapes(200)
    prior = ShapePrior.fit(shapes, components=3)
    assert torch.allclose(prior.basis.T @ prior.basis, torch.eye(3, dtype=torch.float64), atol=1e-10)
    # the same subspace as the generating directions: projecting them changes nothing
    assert torch.allclose(prior.basis @ (prior.basis.T @ dirs), dirs, atol=1e-8)
    assert bool((prior.variance[:-1] >= prior.variance[1:]).all())


def test_hidden_points_are_recovered_from_the_visible_ones():
    shapes, _ = _low_rank_shapes(300)
    prior = ShapePrior.fit(shapes[:200], components=3)
    test = shapes[200:]
    heat = test.clone()
    hidden = torch.zeros(test.shape[:2], dtype=torch.bool)
    hidden[:, :4] = True
    heat[hidden] = 30.0  # where a peakless heatmap puts a hidden point
    vis = (~hidden).double()
    out = constrain_points(heat, vis, prior, sigma_px=0.1, floor=0.0)
    assert (out[:, :4] - test[:, :4]).norm(dim=-1).max() < 0.05  # was tens of pixels off
    assert torch.equal(out[:, 4:], heat[:, 4:].to(out.dtype))  # visible points keep their place


def test_a_weak_fit_falls_back_to_the_mean_shape_and_a_strong_one_to_the_projection():
    shapes, _ = _low_rank_shapes(200)
    prior = ShapePrior.fit(shapes, components=3)
    x = shapes[:5]
    ones = torch.ones(x.shape[:2], dtype=torch.float64)
    far = prior.fit_points(x, ones, sigma_px=1e6)
    assert torch.allclose(far, prior.mean.reshape(1, -1, 2).expand_as(far), atol=1e-3)
    near = prior.fit_points(x, ones, sigma_px=1e-4)
    assert torch.allclose(near, x, atol=1e-4)


def test_mirrored_sets_make_a_mirror_symmetric_mean():
    shapes, _ = _low_rank_shapes(50, k=4)
    mirror = [1, 0, 3, 2]
    prior = ShapePrior.fit(shapes, components=2, mirror=mirror, width=64)
    m = prior.mean.reshape(-1, 2)
    flipped = m[mirror].clone()
    flipped[:, 0] = 63 - flipped[:, 0]
    assert torch.allclose(m, flipped, atol=1e-9)


@pytest.mark.parametrize("bad, match", [
    (dict(points=torch.zeros(10, 4)), r"\(N, K, 2\)"),
    (dict(points=torch.full((10, 4, 2), float("nan"))), "NaN"),
    (dict(points=torch.rand(10, 4, 2), components=10), "components"),
    (dict(points=torch.rand(10, 4, 2), mirror=[0, 1, 2, 3]), "width"),
    (dict(points=torch.rand(10, 4, 2), mirror=[0, 0, 1, 2], width=8), "permutation"),
])
def test_fit_refuses_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        ShapePrior.fit(**{"components": 2, **bad})


def test_fit_points_refuses_mismatched_shapes():
    prior = ShapePrior.fit(torch.rand(20, 4, 2), components=2)
    with pytest.raises(ValueError, match="points must be"):
        prior.fit_points(torch.rand(3, 5, 2), torch.ones(3, 5), 1.0)
    with pytest.raises(ValueError, match="weights must be"):
        prior.fit_points(torch.rand(3, 4, 2), torch.ones(3, 5), 1.0)
    with pytest.raises(ValueError, match="sigma_px"):
        prior.fit_points(torch.rand(3, 4, 2), torch.ones(3, 4), 0.0)


def test_probe_learns_a_visibility_rule_and_is_deterministic():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(600, 6, generator=g) * 5 + 3  # standardised inside the probe
    # point 0 visible when the "head" turns one way, point 1 the other, point 2 always
    visible = torch.stack([feats[:, 0] > 3, feats[:, 0] <= 3, torch.ones(600, dtype=torch.bool)], 1)
    probe = fit_visibility_probe(feats[:500], visible[:500].float(), steps=400)
    acc = ((probe.visibility(feats[500:]) > 0.5) == visible[500:]).float().mean()
    assert acc > 0.95
    again = fit_visibility_probe(feats[:500], visible[:500].float(), steps=400)
    assert torch.equal(probe.visibility(feats[500:]), again.visibility(feats[500:]))


def test_probe_refuses_mismatched_rows():
    with pytest.raises(ValueError, match="one row per face"):
        fit_visibility_probe(torch.rand(10, 3), torch.ones(9, 2))


def test_flip_pooled_features_are_the_crop_and_its_mirror():
    from models.registry import create_model

    torch.manual_seed(0)
    net = create_model("landmark_resnet_s", num_points=68).eval()
    x = torch.randint(0, 255, (3, 3, 112, 112), dtype=torch.uint8)
    f = flip_pooled_features(net, x, chunk=2)
    assert f.shape == (3, 2 * net.feature_dim)
    with torch.no_grad():
        assert torch.allclose(f[:, net.feature_dim:], net(x.flip(-1)).features, atol=1e-5)
    assert isinstance(VisibilityProbe(4, 2), torch.nn.Module)


def test_constrain_points_keeps_dtype_and_shape():
    shapes, _ = _low_rank_shapes(100)
    prior = ShapePrior.fit(shapes, components=3)
    pts = shapes[:4].float()
    out = constrain_points(pts, torch.full(pts.shape[:2], 0.5), prior)
    assert out.dtype == torch.float32 and out.shape == pts.shape
    assert np.isfinite(out.numpy()).all()
