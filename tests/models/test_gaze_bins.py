"""L2CS bins, the gaze loss and the angular-error metric on hand-computed examples."""

import math

import pytest
import torch

from models.gaze_bins import PITCH_BINS, YAW_BINS, GazeBins
from models.gaze_loss import angular_error_deg, gaze_loss, gaze_vectors
from models.gaze_net import HeadOutput

RAD = math.pi / 180


def test_default_bins_cover_the_ranges_with_3_degree_bins():
    assert PITCH_BINS.lo_deg <= -45 and PITCH_BINS.hi_deg >= 45
    assert YAW_BINS.lo_deg <= -50 and YAW_BINS.hi_deg >= 50
    assert PITCH_BINS.width_deg == pytest.approx(3.0) and YAW_BINS.width_deg == pytest.approx(3.0)
    c = PITCH_BINS.centres()
    assert c.shape == (30,)
    assert c[0].item() == pytest.approx(-43.5 * RAD) and c[-1].item() == pytest.approx(43.5 * RAD)


def test_to_bin_edges_and_clamping():
    b = GazeBins(-6.0, 6.0, 4)  # bins [-6,-3) [-3,0) [0,3) [3,6]
    angles = torch.tensor([-7.0, -6.0, -3.1, -0.5, 0.0, 2.9, 5.9, 40.0]) * RAD
    assert b.to_bin(angles).tolist() == [0, 0, 0, 1, 2, 2, 3, 3]
    assert b.to_bin(b.centres()).tolist() == [0, 1, 2, 3]


def test_expectation_of_a_one_hot_logit_is_the_bin_centre():
    b = YAW_BINS
    for k in (0, 7, b.n_bins - 1):
        logits = torch.full((b.n_bins,), -30.0)
        logits[k] = 30.0
        assert b.expectation(logits).item() == pytest.approx(b.centres()[k].item(), abs=1e-6)
    # uniform logits: the mean of a symmetric range's centres is 0
    assert b.expectation(torch.zeros(3, b.n_bins)).abs().max().item() < 1e-6


def test_soft_targets_peak_at_the_true_bin():
    b = PITCH_BINS
    y = torch.tensor([-0.3, 0.01, 0.5])  # not on a bin edge, where two bins tie
    t = b.soft_targets(y)
    assert t.shape == (3, b.n_bins)
    assert torch.allclose(t.sum(-1), torch.ones(3))
    assert torch.equal(t.argmax(-1), b.to_bin(y))


def test_angular_error_hand_computed():
    zero = torch.zeros(1, 2)
    assert angular_error_deg(zero, zero).item() == 0.0
    yaw10 = torch.tensor([[0.0, 10 * RAD]])
    assert angular_error_deg(zero, yaw10).item() == pytest.approx(10.0, abs=1e-5)
    pitch10 = torch.tensor([[10 * RAD, 0.0]])
    assert angular_error_deg(pitch10, zero).item() == pytest.approx(10.0, abs=1e-5)
    # (30, 30) vs (0, 0): cos = cos 30 * cos 30 = 0.75, not the 42.4 of a naive L2 in angles
    both = torch.tensor([[30 * RAD, 30 * RAD]])
    assert angular_error_deg(both, zero).item() == pytest.approx(math.degrees(math.acos(0.75)))
    per = angular_error_deg(torch.cat([zero, zero]), torch.cat([yaw10, zero]), reduction="none")
    assert per.tolist() == pytest.approx([10.0, 0.0])
    assert angular_error_deg(torch.cat([zero, zero]), torch.cat([yaw10, zero])).item() == pytest.approx(5.0)


def test_gaze_vectors_follow_the_mpiigaze_convention():
    g = gaze_vectors(torch.tensor([[0.0, 0.0], [math.pi / 2, 0.0], [0.0, math.pi / 2]]))
    expected = torch.tensor([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])
    assert torch.allclose(g, expected, atol=1e-6)  # into the camera; up (y down); image left


def test_gaze_loss_matches_its_definition():
    torch.manual_seed(0)
    bins = (PITCH_BINS, YAW_BINS)
    pl, yl = torch.randn(5, 30), torch.randn(5, 34)
    pitchyaw = torch.stack([PITCH_BINS.expectation(pl), YAW_BINS.expectation(yl)], 1)
    out = HeadOutput(pl, yl, pitchyaw)
    target = torch.tensor([[0.1, -0.2], [0.0, 0.0], [-0.3, 0.4], [0.2, 0.1], [1.5, -1.5]])

    losses = gaze_loss(out, target, bins, alpha=0.5)
    assert set(losses) == {"gaze", "ce_pitch", "ce_yaw", "reg_pitch", "reg_yaw"}
    ce_p = torch.nn.functional.cross_entropy(pl, PITCH_BINS.to_bin(target[:, 0]))
    reg_y = (torch.rad2deg(pitchyaw[:, 1] - target[:, 1]) ** 2).mean()
    assert losses["ce_pitch"].item() == pytest.approx(ce_p.item())
    assert losses["reg_yaw"].item() == pytest.approx(reg_y.item(), rel=1e-5)
    total = losses["ce_pitch"] + losses["ce_yaw"] + 0.5 * (losses["reg_pitch"] + losses["reg_yaw"])
    assert losses["gaze"].item() == pytest.approx(total.item())
    l1 = gaze_loss(out, target, bins, reg="l1", soft_sigma_deg=2.0)
    assert l1["reg_pitch"].item() == pytest.approx(torch.rad2deg(pitchyaw[:, 0] - target[:, 0]).abs().mean().item(),
                                                   rel=1e-5)
