"""The Wing loss (models.landmark_losses.wing) against the paper's formula by hand, its
continuity where the two pieces meet, and its use as the landmark task's coordinate loss."""

import math
from types import SimpleNamespace

import pytest
import torch

from models.landmark_losses import landmark_loss, wing


def test_wing_matches_the_formula_by_hand():
    w, eps = 10.0, 2.0
    c = w - w * math.log(1 + w / eps)
    d = torch.tensor([0.0, 1.0, -3.0, 9.99, 10.0, -25.0], dtype=torch.float64)
    want = [0.0, w * math.log(1 + 0.5), w * math.log(1 + 1.5), w * math.log(1 + 9.99 / 2),
            10.0 - c, 25.0 - c]
    assert wing(d, w, eps).tolist() == pytest.approx(want, rel=1e-12)


def test_wing_is_continuous_and_steeper_than_l1_near_zero():
    w, eps = 0.08, 0.016
    below, above = wing(torch.tensor([w - 1e-9]), w, eps), wing(torch.tensor([w + 1e-9]), w, eps)
    assert below.item() == pytest.approx(above.item(), abs=1e-6)
    d = torch.tensor([0.004], requires_grad=True)
    wing(d, w, eps).sum().backward()
    assert d.grad.item() == pytest.approx(w / (eps + 0.004))  # 4x L1's slope of 1


def test_the_landmark_loss_takes_wing_in_crop_units():
    true = torch.tensor([[[10.0, 20.0], [30.0, 40.0]]])
    pred = true + torch.tensor([[[1.28, 0.0], [0.0, -2.56]]])  # 0.01 and 0.02 of a 128 px crop
    out = SimpleNamespace(stack_coords=pred.unsqueeze(1))
    got = landmark_loss(out, true, crop_size=128.0, stride=4.0, coord="wing", wing_w=0.08,
                        wing_eps=0.016)["coord"]
    d = torch.tensor([[0.01, 0.0], [0.0, 0.02]])
    assert got.item() == pytest.approx(wing(d, 0.08, 0.016).mean(-1).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="wing"):
        landmark_loss(out, true, crop_size=128.0, stride=4.0, coord="l2")
