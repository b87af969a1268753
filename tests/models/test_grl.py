"""Gradient reversal: identity forward, gradient times -coeff, no hidden state."""

import pytest
import torch

from models.grl import GradientReversal, grl


@pytest.mark.parametrize("coeff", [0.0, 0.3, 1.0, 2.5])
def test_forward_is_identity_and_gradient_is_reversed(coeff):
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64)

    (plain,) = torch.autograd.grad((x * w).sum(), x)  # gradient through the identity
    y = grl(x, coeff)
    assert torch.equal(y, x)
    (reversed_,) = torch.autograd.grad((y * w).sum(), x)
    assert torch.allclose(reversed_, -coeff * plain)


def test_module_takes_coeff_per_call_and_keeps_no_state():
    layer = GradientReversal()
    assert list(layer.parameters()) == [] and list(layer.buffers()) == []
    x = torch.ones(3, requires_grad=True)
    grads = []
    for _ in range(3):  # a WarmStart-style layer would drift between these calls
        (g,) = torch.autograd.grad(layer(x, 0.5).sum(), x)
        grads.append(g)
    assert all(torch.equal(g, torch.full((3,), -0.5)) for g in grads)
    (g,) = torch.autograd.grad(layer(x, torch.tensor(2.0)).sum(), x)  # 0-d tensor coeff
    assert torch.equal(g, torch.full((3,), -2.0))


def test_reversal_only_affects_what_lies_behind_it():
    a = torch.tensor([2.0], requires_grad=True)
    b = torch.tensor([3.0], requires_grad=True)
    (grl(a, 1.0) * b).sum().backward()
    assert a.grad.item() == -3.0  # reversed
    assert b.grad.item() == 2.0  # parameters after the layer see the ordinary gradient
