"""RSD: the subspace distance against hand-computed principal angles, its invariances
(scale, a common rotation), finite gradients on rank-deficient ReLU features, and a
descent that lowers it."""

import math

import pytest
import torch

from models.registry import create_method
from models.rsd import subspace_distance as _distance

FLOOR = math.sqrt(1e-6)  # each angle's sine is floored there


def subspace_distance(f_s, f_t, **kw):
    """Exact (no ridge) unless a test asks: these inputs are all of full rank."""
    return float(_distance(f_s, f_t, **{"ridge": 0.0, **kw}))


def _rotation(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    return q.float()


def test_one_direction_each_gives_the_sine_of_the_angle_between_them():
    a = 0.7
    f_s = torch.tensor([[2.0, 0.0, 0.0]])
    f_t = torch.tensor([[math.cos(a), math.sin(a), 0.0]]) * 5.0
    assert subspace_distance(f_s, f_t) == pytest.approx(math.sin(a), abs=1e-6)


def test_planes_sharing_one_direction_by_hand():
    # source spans e1, e2; target spans e1 and e2 tilted by b toward e3: angles 0 and b
    b = 0.4
    f_s = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, -2.0, 0.0, 0.0]])
    f_t = torch.tensor([[3.0, 0.0, 0.0, 0.0], [0.0, math.cos(b), math.sin(b), 0.0]])
    assert subspace_distance(f_s, f_t) == pytest.approx(math.sin(b) + FLOOR, abs=1e-5)


def test_invariant_to_scale_row_mixing_and_a_rotation_of_both_domains():
    g = torch.Generator().manual_seed(0)
    f_s, f_t = torch.randn(8, 32, generator=g), torch.randn(8, 32, generator=g)
    base = subspace_distance(f_s, f_t)
    assert 1 < base < 8  # eight angles, none 0 or 90 degrees for random 8-d subspaces of R^32
    rot = _rotation(32, 1)
    assert subspace_distance(f_s * 10, f_t * 0.1) == pytest.approx(base, rel=1e-4)
    assert subspace_distance(f_s @ rot, f_t @ rot) == pytest.approx(base, rel=1e-4)
    mix = torch.randn(8, 8, generator=g)
    assert subspace_distance(mix @ f_s, f_t) == pytest.approx(base, rel=1e-4)
    # the same span: no angle left, only the floor
    assert subspace_distance(f_s, mix @ f_s) == pytest.approx(8 * FLOOR, abs=1e-4)


def test_the_ridge_is_a_small_guard_on_full_rank_features():
    g = torch.Generator().manual_seed(2)
    f_s, f_t = torch.randn(8, 32, generator=g), torch.randn(8, 32, generator=g)
    assert float(_distance(f_s, f_t)) == pytest.approx(subspace_distance(f_s, f_t), rel=1e-3)


def test_rank_deficient_relu_features_give_finite_gradients():
    # dead units and repeated rows: the SVD's gradient would be infinite here
    g = torch.Generator().manual_seed(5)
    f_s = torch.relu(torch.randn(8, 32, generator=g))
    f_s[:, :20] = 0
    f_s[4:] = f_s[:4]
    f_s.requires_grad_(True)
    f_t = torch.relu(torch.randn(8, 32, generator=g)).requires_grad_(True)
    loss, _ = create_method("rsd", feature_dim=32).transfer_loss(None, f_s, f_t)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(f_s.grad).all() and torch.isfinite(f_t.grad).all()
    assert f_t.grad.abs().sum() > 0


def test_refuses_more_samples_than_features_and_negative_weights():
    with pytest.raises(ValueError, match="fewer samples than features"):
        _distance(torch.randn(16, 8), torch.randn(16, 8))
    with pytest.raises(ValueError, match="weight must be >= 0"):
        create_method("rsd", weight=-1.0)


def test_the_method_weighs_the_distance_and_gradient_descent_lowers_it():
    method = create_method("rsd", feature_dim=16, weight=0.5)
    assert method.needs_target and method.extra_parameters() == []
    g = torch.Generator().manual_seed(3)
    f_s = torch.randn(6, 16, generator=g)
    f_t = torch.randn(6, 16, generator=g).requires_grad_(True)
    loss, diag = method.transfer_loss(None, f_s, f_t)
    first = float(loss.detach())
    assert first == pytest.approx(0.5 * float(_distance(f_s, f_t.detach())), rel=1e-6)
    assert float(diag["mean_sine"]) == pytest.approx(first / 0.5 / 6, rel=1e-6)
    opt = torch.optim.SGD([f_t], lr=0.5)
    for _ in range(50):
        loss, _ = method.transfer_loss(None, f_s, f_t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
