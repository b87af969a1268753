"""Heatmap ops and the landmark loss: pixel-centre convention, sub-pixel soft-argmax,
Gaussian round trip, heatmap KL, masks for invisible/missing points, NME by hand."""

import math
from types import SimpleNamespace

import pytest
import torch

from models.heatmaps import (
    cell_centres,
    gaussian_heatmaps,
    heatmap_kl,
    max_spatial_entropy,
    soft_argmax,
    spatial_entropy,
)
from models.landmark_losses import landmark_loss, nme, point_weights

STRIDE = 4.0  # 128 px crop -> 32 x 32 heatmap


def _points(n=5, k=7, seed=0, lo=20.0, hi=108.0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(n, k, 2, generator=g, dtype=torch.float64)


def test_cell_centres_follow_the_stated_convention():
    # cell i covers input pixels [4i, 4i + 4): centres of pixels 4i..4i+3 average to 4i + 1.5
    c = cell_centres(32, STRIDE, dtype=torch.float64)
    assert c[0].item() == 1.5 and c[1].item() == 5.5 and c[-1].item() == 125.5
    assert torch.allclose(c, torch.arange(32, dtype=torch.float64) * 4 + 1.5)
    # stride 1: a heatmap at input resolution has its cell centres at the pixel indices
    assert torch.equal(cell_centres(5, 1.0), torch.arange(5, dtype=torch.float32))


def test_soft_argmax_of_a_one_hot_map_is_the_cell_centre_in_x_y_order():
    logits = torch.full((1, 1, 32, 32), -1e4)
    logits[0, 0, 3, 10] = 0.0  # row 3, column 10
    coords, probs = soft_argmax(logits, STRIDE)
    assert coords.shape == (1, 1, 2) and probs.shape == (1, 1, 32 * 32)
    assert coords[0, 0].tolist() == [10 * 4 + 1.5, 3 * 4 + 1.5]  # (x, y)
    assert probs.sum(-1).item() == pytest.approx(1.0)


@pytest.mark.parametrize("sigma", [0.8, 1.5])
def test_soft_argmax_recovers_a_known_peak_to_sub_pixel_accuracy(sigma):
    """Logits = log of a Gaussian at a continuous point: the expectation is the point."""
    pts = _points().float()
    s2 = 2 * (sigma * STRIDE) ** 2
    c = cell_centres(32, STRIDE)
    logits = -((c.view(1, 1, 1, 32) - pts[..., :1, None]) ** 2
               + (c.view(1, 1, 32, 1) - pts[..., 1:, None]) ** 2) / s2
    coords, _ = soft_argmax(logits, STRIDE)
    err = (coords - pts).abs().max().item()
    assert err < 0.01, err  # input pixels
    # beta scales the logits: a map twice as wide with beta 2 is the same distribution
    coords2, _ = soft_argmax(logits / 2, STRIDE, beta=torch.tensor(2.0))
    assert (coords2 - coords).abs().max().item() < 1e-4


def test_gaussian_target_round_trip_and_peak():
    pts = _points(n=4, k=9, seed=1)
    g = gaussian_heatmaps(pts, (32, 32), STRIDE, sigma=1.0)
    assert g.shape == (4, 9, 32, 32) and g.max() <= 1.0
    coords, _ = soft_argmax(torch.log(g.clamp_min(1e-30)), STRIDE)  # softmax(log g) = g / sum g
    assert (coords.double() - pts).abs().max().item() < 1e-3
    # the brightest cell is the one holding the point: pixel-centre coordinate p lies in
    # pixel round(p), and cell i holds pixels 4i..4i+3, i.e. coordinates [4i - 0.5, 4i + 3.5)
    flat = g.flatten(2).argmax(-1)
    row, col = flat // 32, flat % 32
    assert torch.equal(col, ((pts[..., 0] + 0.5) // STRIDE).long())
    assert torch.equal(row, ((pts[..., 1] + 0.5) // STRIDE).long())
    # missing points give empty maps
    pts[0, 0] = float("nan")
    assert gaussian_heatmaps(pts, (32, 32), STRIDE)[0, 0].abs().sum() == 0


def test_heatmap_kl_is_zero_at_the_target_and_positive_elsewhere():
    pts = _points(n=2, k=3, seed=2)
    g = gaussian_heatmaps(pts, (32, 32), STRIDE, sigma=1.0)
    at_target = heatmap_kl(torch.log(g.clamp_min(1e-30)), pts, STRIDE, sigma=1.0)
    assert at_target.abs().max().item() < 1e-5
    flat = heatmap_kl(torch.zeros(2, 3, 32, 32), pts, STRIDE, sigma=1.0)
    assert (flat > 1.0).all()


def test_spatial_entropy_bounds():
    flat = torch.full((2, 3, 16), 1 / 16)
    assert torch.allclose(spatial_entropy(flat), torch.full((2, 3), math.log(16)))
    peak = torch.zeros(1, 16)
    peak[0, 3] = 1.0
    assert spatial_entropy(peak).item() == 0.0
    assert max_spatial_entropy(32, 32) == pytest.approx(math.log(1024))


# --------------------------------------------------------------------------- loss


def _out(n=3, stacks=2, k=5, seed=0):
    """A LandmarkOutput-like object whose coordinates come from leaf heatmap logits."""
    g = torch.Generator().manual_seed(seed)
    heat = torch.randn(n, stacks, k, 32, 32, generator=g, requires_grad=True)
    coords, _ = soft_argmax(heat, STRIDE)
    return heat, SimpleNamespace(stack_coords=coords, heatmaps=heat, coords=coords[:, -1])


@pytest.mark.parametrize("coord", ["l1", "smooth_l1"])
@pytest.mark.parametrize("heatmap_weight", [0.0, 0.5])
def test_invisible_and_missing_points_get_zero_gradient(coord, heatmap_weight):
    heat, out = _out()
    pts = _points(3, 5, seed=3).float()
    visible = torch.ones(3, 5)
    visible[0, 1] = 0.0
    visible[2, 4] = 0.0
    pts[1, 2] = float("nan")  # a missing label, not even a number
    losses = landmark_loss(out, pts, visible, crop_size=128, stride=STRIDE, coord=coord,
                           heatmap_weight=heatmap_weight)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["landmarks"].backward()
    g = heat.grad
    for n, k in [(0, 1), (2, 4), (1, 2)]:
        assert torch.equal(g[n, :, k], torch.zeros_like(g[n, :, k])), (n, k)
    assert g[0, :, 0].abs().sum() > 0 and g[1, :, 3].abs().sum() > 0
    # moving a masked label changes nothing
    pts2 = pts.clone()
    pts2[0, 1] += 30.0
    again = landmark_loss(out, pts2, visible, crop_size=128, stride=STRIDE, coord=coord,
                          heatmap_weight=heatmap_weight)
    assert again["landmarks"].item() == pytest.approx(losses["landmarks"].item(), rel=1e-6)


def test_loss_equals_hand_computed_weighted_l1_with_stacks_averaged():
    heat, out = _out(n=2, stacks=3, k=4)
    pts = _points(2, 4, seed=4).float()
    w = torch.tensor([[1.0, 0.5, 0.0, 1.0], [1.0, 1.0, 1.0, 0.25]])
    losses = landmark_loss(out, pts, w, crop_size=128, stride=STRIDE, coord_weight=2.0)
    per_stack = []
    for s in range(3):
        e = ((out.stack_coords[:, s] - pts).abs() / 128).mean(-1)
        per_stack.append((e * w).sum() / w.sum())
    assert losses["coord"].item() == pytest.approx(per_stack[2].item(), rel=1e-6)
    assert losses["coord_inter"].item() == pytest.approx(((per_stack[0] + per_stack[1]) / 2).item(), rel=1e-6)
    assert losses["landmarks"].item() == pytest.approx(2.0 * sum(per_stack).item() / 3, rel=1e-6)
    assert "heatmap" not in losses
    with pytest.raises(ValueError, match="coord"):
        landmark_loss(out, pts, crop_size=128, stride=STRIDE, coord="l2")


def test_point_weights_treat_nan_as_missing():
    pts = torch.zeros(1, 3, 2)
    pts[0, 1, 0] = float("nan")
    w, clean = point_weights(pts, torch.tensor([[1.0, 1.0, 0.5]]))
    assert w.tolist() == [[1.0, 0.0, 0.5]] and torch.isfinite(clean).all()


# --------------------------------------------------------------------------- NME


def test_nme_inter_ocular_and_crop_by_hand():
    true = torch.zeros(2, 68, 2)
    true[:, 36] = torch.tensor([40.0, 60.0])
    true[:, 45] = torch.tensor([90.0, 60.0])  # inter-ocular distance 50
    pred = true.clone()
    pred[0, 0] += torch.tensor([3.0, 4.0])  # one point off by 5 px in sample 0
    per = nme(pred, true, norm="inter_ocular", reduction="none")
    assert per.tolist() == pytest.approx([100 * 5 / 68 / 50, 0.0])
    assert nme(pred, true, norm="inter_ocular").item() == pytest.approx(100 * 5 / 68 / 50 / 2)
    assert nme(pred, true, norm="crop", crop_size=128).item() == pytest.approx(100 * 5 / 68 / 128 / 2)
    # invisible points leave the mean
    vis = torch.ones(2, 68)
    vis[0, 0] = 0
    assert nme(pred, true, norm="inter_ocular", visible=vis).item() == 0.0
    with pytest.raises(ValueError, match="68"):
        nme(pred[:, :10], true[:, :10], norm="inter_ocular")
    with pytest.raises(ValueError, match="crop_size"):
        nme(pred, true, norm="crop")
