"""The closed-form label transfer: exact leave-one-out against brute force, recovery of a
linear convention gap, shrinkage to the mean offset when the dense set says nothing,
missing labels, equivariance, checkpoints, and the fit registry."""

import pytest
import torch

from models.label_transfer import apply_label_transfer, normalise_points, save_label_transfer
from models.label_transfer_ridge import LOG10_LAMBDAS, fit_label_transfer_ridge, ridge_loo
from models.registry import load_model
from models.transfer_fits import TRANSFER_FITS, fit_transfer
from tests.models.test_label_transfer import D, M, _toy


def _brute_force_loo(x, r, w, lam):
    """Refit without each sample (intercept unpenalised) and sum w_i * |residual_i|."""
    n, f = x.shape
    design = torch.cat([torch.ones(n, 1, dtype=x.dtype), x], 1)
    pen = torch.diag(torch.tensor([0.0] + [lam] * f, dtype=x.dtype))
    y = r.reshape(n, -1)
    total = torch.zeros((), dtype=x.dtype)
    for i in range(n):
        if w[i] == 0:
            continue
        keep = torch.arange(n) != i
        dw = design[keep] * w[keep, None]
        beta = torch.linalg.solve(design[keep].T @ dw + pen, dw.T @ y[keep])
        res = (y[i] - design[i] @ beta).reshape(-1, 2)
        total += w[i] * res.norm(dim=-1).sum()
    return total


def test_leave_one_out_is_exact_for_weighted_samples():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(14, 6, generator=g, dtype=torch.float64)
    r = torch.randn(14, 3, 2, generator=g, dtype=torch.float64) + x[:, :1, None]
    w = torch.rand(14, generator=g, dtype=torch.float64) + 0.2
    w[3] = 0.0  # an unlabeled face: neither fitted on nor scored
    lambdas = [1e-3, 0.5, 20.0]
    fast = ridge_loo(x, r, w, lambdas)
    slow = torch.stack([_brute_force_loo(x, r, w, lam) for lam in lambdas])
    assert torch.allclose(fast, slow, rtol=1e-8), (fast, slow)


def test_recovers_a_linear_convention_gap_on_held_out_faces():
    # _toy's targets are affine combinations of dense points plus an offset in face units:
    # exactly linear in the normalised dense set, so the closed form should find them
    dense, real = _toy(200, seed=0)
    fit = fit_label_transfer_ridge(dense, real)
    assert fit.params["method"] == "ridge" and fit.base_index.shape == (M,)
    test_dense, test_real = _toy(128, seed=1)
    base_err = (fit.model.baseline(test_dense) - test_real).norm(dim=-1).mean()
    err = (apply_label_transfer(fit.model, test_dense) - test_real).norm(dim=-1).mean()
    assert err < base_err / 20, (base_err.item(), err.item())
    assert fit.train_error < fit.baseline_error / 20


def test_shrinks_to_the_mean_offset_when_the_dense_set_carries_no_information():
    dense, real = _toy(60, seed=0)
    g = torch.Generator().manual_seed(9)
    base = dense[:, torch.arange(M) % D]
    _, _, scale = normalise_points(dense)
    offset = torch.tensor([0.05, -0.08])  # face units
    noise = 0.03 * torch.randn(base.shape, generator=g)  # unrelated to the dense set
    labels = base + scale * (offset + noise)
    fit = fit_label_transfer_ridge(dense, labels, base_index=torch.arange(M) % D)
    assert fit.params["lambda_log10"] == LOG10_LAMBDAS[-1] and fit.params["lambda_at_grid_edge"]
    curve = [e for _, e in fit.params["loo_curve"]]
    assert curve[-1] < curve[0]  # the least regularised fit is the worst one here
    # what is left is (nearly) the baseline moved by each point's mean offset, in face units
    moved = (apply_label_transfer(fit.model, dense) - base) / scale
    assert (moved - (offset + noise.mean(0))).abs().max() < 2e-3
    assert (moved - offset).abs().max() < 0.02


def test_follows_the_face_when_it_moves_and_scales():
    dense, real = _toy(80, seed=0)
    a = fit_label_transfer_ridge(dense, real)
    b = fit_label_transfer_ridge(dense * 2.0 + 7.0, real * 2.0 + 7.0)
    test, _ = _toy(16, seed=2)
    pa = apply_label_transfer(a.model, test)
    pb = apply_label_transfer(b.model, test * 2.0 + 7.0)
    assert torch.allclose(pb, pa * 2.0 + 7.0, atol=1e-3)
    assert a.params["lambda_log10"] == b.params["lambda_log10"]


def test_missing_labels_are_ignored_and_a_never_labeled_point_keeps_the_baseline():
    dense, real = _toy(90, seed=0)
    real = real.clone()
    real[:30, 5] = float("nan")  # point 5 labeled on 60 faces only
    real[:, 7] = float("nan")  # point 7 never labeled
    fit = fit_label_transfer_ridge(dense, real)
    out = apply_label_transfer(fit.model, dense)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[:, 7], fit.model.baseline(dense)[:, 7], atol=1e-4)
    err5 = (out[30:, 5] - real[30:, 5]).norm(dim=-1).mean()
    base5 = (fit.model.baseline(dense)[30:, 5] - real[30:, 5]).norm(dim=-1).mean()
    assert err5 < base5 / 5


def test_refuses_what_it_cannot_fit():
    dense, real = _toy(10)
    with pytest.raises(ValueError, match=">= 3 labeled faces"):
        fit_label_transfer_ridge(dense[:2], real[:2])
    with pytest.raises(ValueError, match=r"need \(N, D, 2\)"):
        fit_label_transfer_ridge(dense, real[:5])
    bad = dense.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        fit_label_transfer_ridge(bad, real)


def test_checkpoint_round_trip_and_the_fit_registry(tmp_path):
    dense, real = _toy(40)
    fit = fit_transfer(dense, real)  # the default: ridge
    assert fit.params["method"] == "ridge"
    net = load_model(save_label_transfer(tmp_path / "lt.pt", fit))
    assert torch.equal(net(dense), apply_label_transfer(fit.model, dense))
    again = fit_transfer(dense, real)
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in fit.model.state_dict().items())
    assert fit_transfer(dense, real, method="mlp", steps=3, seed=0).params["method"] == "mlp"
    with pytest.raises(ValueError, match="unknown label-transfer fit 'lasso'.*ridge, mlp"):
        fit_transfer(dense, real, method="lasso")


def test_the_loop_configuration_names_the_same_fits():
    from synthloop.loop.config import TRANSFER_FIT_NAMES, LoopConfig

    assert tuple(TRANSFER_FITS) == TRANSFER_FIT_NAMES
    lm = LoopConfig(task="landmarks", real="/faces")
    assert lm.transfer_fit == "ridge" and lm.to_dict()["transfer_fit"] == "ridge"
    assert LoopConfig(task="landmarks", real="/f", transfer_fit="mlp").to_dict()["transfer_fit"] == "mlp"
    gaze = LoopConfig(task="gaze", real="/eyes", transfer_fit="mlp")
    assert gaze.transfer_fit is None and "transfer_fit" not in gaze.to_dict()
    from synthloop.errors import UsageError

    with pytest.raises(UsageError, match="transfer_fit 'x'"):
        LoopConfig(task="landmarks", real="/f", transfer_fit="x")
