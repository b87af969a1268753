"""Label transfer dense -> 68: baseline semantics, learning a toy mapping, determinism,
self-describing save/load."""

import pytest
import torch

from models.checkpoint import load_checkpoint
from models.label_transfer import (
    LabelTransfer,
    apply_label_transfer,
    fit_label_transfer,
    nearest_dense_index,
    normalise_points,
    save_label_transfer,
)
from models.registry import load_model, model_task

D, M = 40, 68


def _toy(n=256, seed=0):
    """Dense sets: a random template under per-sample similarity + jitter. Targets: fixed
    affine combinations of 3 dense points each (rows sum to 1, so they move with the
    face), plus a fixed offset in face units: close to, but not at, any dense point."""
    g2 = torch.Generator().manual_seed(123)  # face template and mapping: fixed across splits
    template = torch.rand(D, 2, generator=g2) * 2 - 1
    idx = torch.randint(0, D, (M, 3), generator=g2)
    w = torch.softmax(torch.randn(M, 3, generator=g2), -1)
    offset = 0.15 * torch.randn(M, 2, generator=g2)
    g = torch.Generator().manual_seed(seed)
    scale = 20 + 20 * torch.rand(n, 1, 1, generator=g)
    shift = 40 + 40 * torch.rand(n, 1, 2, generator=g)
    dense = template + 0.05 * torch.randn(n, D, 2, generator=g)
    dense = dense * scale + shift
    _, _, s = normalise_points(dense)
    real = (w.unsqueeze(0).unsqueeze(-1) * dense[:, idx]).sum(2) + s * offset
    return dense, real


def test_untrained_model_is_the_baseline():
    dense, _ = _toy(8)
    net = LabelTransfer(num_dense=D, num_out=M, hidden=16)
    idx = torch.arange(M) % D
    net.set_base_index(idx)
    assert torch.allclose(net(dense), dense[:, idx], atol=1e-5)
    # an affine baseline is equivariant: shifting and scaling the face moves the output alike
    w = torch.softmax(torch.randn(M, D), -1)
    net.set_base(w)
    moved = dense * 1.7 + torch.tensor([5.0, -3.0])
    assert torch.allclose(net(moved), net(dense) * 1.7 + torch.tensor([5.0, -3.0]), atol=1e-3)
    with pytest.raises(ValueError, match="sum to 1"):
        net.set_base(torch.ones(M, D))
    with pytest.raises(ValueError, match=f"\\(N, {D}, 2\\)"):
        net(dense[:, :5])


def test_nearest_dense_index_finds_the_generating_points():
    dense, _ = _toy(64)
    want = torch.randint(0, D, (M,), generator=torch.Generator().manual_seed(5))
    assert torch.equal(nearest_dense_index(dense, dense[:, want] + 0.01), want)


def test_fit_reduces_error_by_a_large_factor_on_held_out_data():
    dense, real = _toy(384, seed=0)
    fit = fit_label_transfer(dense, real, steps=1500, seed=0, hidden=128, lr=3e-3, batch_size=64)
    assert fit.base_index is not None and fit.base_index.shape == (M,)
    assert fit.train_error < fit.baseline_error / 10, (fit.baseline_error, fit.train_error)
    test_dense, test_real = _toy(128, seed=1)
    base_err = (fit.model.baseline(test_dense) - test_real).norm(dim=-1).mean()
    err = (apply_label_transfer(fit.model, test_dense) - test_real).norm(dim=-1).mean()
    assert err < base_err / 5, (base_err.item(), err.item())
    assert fit.history[0][0] == 0 and fit.history[-1][1] < fit.history[0][1]


def test_fit_is_deterministic_given_the_seed_and_masks_labels():
    dense, real = _toy(64)
    vis = torch.ones(64, M)
    vis[:, 7] = 0
    real = real.clone()
    real[:, 7] = float("nan")  # a point never labeled: must not poison anything
    a = fit_label_transfer(dense, real, steps=30, seed=3, hidden=32, visible=vis)
    b = fit_label_transfer(dense, real, steps=30, seed=3, hidden=32, visible=vis)
    c = fit_label_transfer(dense, real, steps=30, seed=4, hidden=32, visible=vis)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    assert all(torch.isfinite(v).all() for v in sa.values())


def test_save_and_load_are_self_describing(tmp_path):
    dense, real = _toy(64)
    fit = fit_label_transfer(dense, real, steps=20, seed=0, hidden=32)
    path = save_label_transfer(tmp_path / "lt.pt", fit, {"dense_set": "toy40"})
    ck = load_checkpoint(path)
    assert ck["task"] == "label_transfer" and ck["extra"]["dense_set"] == "toy40"
    assert ck["metrics"]["train_error_px"] == pytest.approx(fit.train_error)
    net = load_model(path)
    assert isinstance(net, LabelTransfer) and model_task("label_transfer") == "label_transfer"
    assert torch.equal(net(dense), apply_label_transfer(fit.model, dense))
    assert torch.equal(net.base, fit.model.base)  # the fixed baseline travels in the weights
