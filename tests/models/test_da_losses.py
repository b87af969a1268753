"""DANN and DALN objectives against hand-computed references, gradient signs included."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from models.da_losses import (
    DALNLoss,
    DANNLoss,
    DomainDiscriminator,
    nuclear_norm_gram,
)
from models.registry import create_method, list_methods


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# --------------------------------------------------------------------------- DANN


def _linear_disc() -> nn.Linear:
    d = nn.Linear(2, 1).double()
    with torch.no_grad():
        d.weight.copy_(torch.tensor([[1.0, -1.0]]))
        d.bias.fill_(0.5)
    return d


def test_dann_loss_equals_hand_computed_bce_and_accuracy():
    d = _linear_disc()
    f_s = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    f_t = torch.tensor([[2.0, 1.0]], dtype=torch.float64)
    # logits: source 1.5, -0.5; target 1.5
    bce1 = lambda x: math.log(1 + math.exp(-x))  # noqa: E731  BCE(x, label 1)
    bce0 = lambda x: math.log(1 + math.exp(x))  # noqa: E731  BCE(x, label 0)
    expected = 0.5 * ((bce1(1.5) + bce1(-0.5)) / 2 + bce0(1.5))

    loss, diag = DANNLoss(d)(f_s, f_t, coeff=0.7)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # source: 1 of 2 right; target: logit 1.5 says "source", 0 of 1 right
    assert diag["domain_acc"].item() == pytest.approx(0.25)
    assert not diag["domain_acc"].requires_grad


def test_dann_gradients_discriminator_plain_features_reversed():
    coeff = 0.7
    d = _linear_disc()
    f_s = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    f_t = torch.tensor([[2.0, 1.0]], dtype=torch.float64, requires_grad=True)
    loss, _ = DANNLoss(d)(f_s, f_t, coeff)
    loss.backward()
    w = torch.tensor([1.0, -1.0], dtype=torch.float64)
    # dL/dlogit: 0.5 * (sigmoid(x) - 1) / N_s for source, 0.5 * sigmoid(x) / N_t for target
    gs = [0.5 * (_sigmoid(1.5) - 1) / 2, 0.5 * (_sigmoid(-0.5) - 1) / 2]
    gt = 0.5 * _sigmoid(1.5)
    assert torch.allclose(f_s.grad, -coeff * torch.stack([gs[0] * w, gs[1] * w]))
    assert torch.allclose(f_t.grad, -coeff * gt * w[None])
    # the discriminator descends its own loss: no reversal before its parameters
    w_grad = gs[0] * f_s[0] + gs[1] * f_s[1] + gt * f_t[0]
    assert torch.allclose(d.weight.grad[0], w_grad.detach())
    assert d.bias.grad.item() == pytest.approx(gs[0] + gs[1] + gt)


def test_domain_discriminator_shape_and_training_signal():
    torch.manual_seed(0)
    disc = DomainDiscriminator(8, hidden=16)
    assert disc(torch.randn(5, 8)).shape == (5, 1)
    loss_fn = DANNLoss(disc)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    f_s, f_t = torch.randn(32, 8) + 2.0, torch.randn(32, 8) - 2.0  # separable domains
    for _ in range(30):
        loss, diag = loss_fn(f_s, f_t, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert diag["domain_acc"].item() > 0.95


# --------------------------------------------------------------------------- nuclear norm


def _nuc2x2(p: torch.Tensor) -> torch.Tensor:
    """Closed form for 2x2: sigma1 + sigma2 = sqrt(||P||_F^2 + 2|det P|)."""
    det = p[..., 0, 0] * p[..., 1, 1] - p[..., 0, 1] * p[..., 1, 0]
    return torch.sqrt(p.square().sum((-1, -2)) + 2 * det.abs())


def test_nuclear_norm_gram_hand_computed_2x2():
    p = torch.tensor([[3.0, 0.0], [4.0, 5.0]])
    # ||P||_F^2 = 50, det = 15 -> sqrt(80)
    assert nuclear_norm_gram(p).item() == pytest.approx(math.sqrt(80.0), rel=1e-6)
    assert nuclear_norm_gram(torch.eye(2)).item() == pytest.approx(2.0)


@pytest.mark.parametrize("shape", [(6, 30), (40, 5), (7, 7), (3, 8, 20)])
def test_nuclear_norm_gram_matches_torch(shape):
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(3 * torch.randn(*shape, generator=g), dim=-1)
    assert torch.allclose(nuclear_norm_gram(p), torch.linalg.matrix_norm(p, "nuc"), rtol=1e-5, atol=1e-5)


def test_nuclear_norm_gram_gradient_matches_svd_and_is_finite_when_rank_deficient():
    g = torch.Generator().manual_seed(2)
    p = torch.randn(5, 9, dtype=torch.float64, generator=g, requires_grad=True)
    (ours,) = torch.autograd.grad(nuclear_norm_gram(p), p)
    (ref,) = torch.autograd.grad(torch.linalg.matrix_norm(p, "nuc"), p)  # = U V^T
    assert torch.allclose(ours, ref, atol=1e-8)

    # identical rows (rank 1, like a collapsed softmax batch): SVD's gradient is ill-posed here
    q = torch.softmax(torch.randn(1, 6, generator=g), -1).repeat(8, 1).requires_grad_(True)
    (gq,) = torch.autograd.grad(nuclear_norm_gram(q), q)
    assert torch.isfinite(gq).all()


# --------------------------------------------------------------------------- DALN


def _two_heads():
    """Two 2-bin heads with fixed weights, as a head_fn returning a list of logits."""
    w1 = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]], dtype=torch.float64, requires_grad=True)
    w2 = torch.tensor([[0.3, 0.3, 2.0], [-1.0, 0.5, 0.0]], dtype=torch.float64, requires_grad=True)
    return (w1, w2), (lambda f: [f @ w1.T, f @ w2.T])


F_S = [[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]]
F_T = [[0.2, 0.1, 0.0], [-0.3, 0.4, 0.1]]


def _nwd_reference(head_fn, f_s, f_t):
    """sum_h (||softmax(C_h f_s)||_* - ||softmax(C_h f_t)||_*) / B_t via the 2x2 closed form."""
    total = 0.0
    for ys, yt in zip(head_fn(f_s), head_fn(f_t), strict=True):
        total = total + (_nuc2x2(torch.softmax(ys, 1)) - _nuc2x2(torch.softmax(yt, 1))) / f_t.shape[0]
    return total


def test_daln_loss_equals_hand_computed_reference():
    (_, head_fn) = _two_heads()
    f_s = torch.tensor(F_S, dtype=torch.float64)
    f_t = torch.tensor(F_T, dtype=torch.float64)
    expected = _nwd_reference(head_fn, f_s, f_t).item()
    loss, diag = DALNLoss()(head_fn, f_s, f_t, coeff=1.0)
    assert loss.item() == pytest.approx(-expected, rel=1e-5)
    assert diag["discrepancy"].item() == pytest.approx(expected, rel=1e-5)
    assert expected != 0.0


def test_daln_gradient_signs_head_maximises_features_minimise():
    coeff = 0.4
    (w1, w2), head_fn = _two_heads()
    f_s = torch.tensor(F_S, dtype=torch.float64, requires_grad=True)
    f_t = torch.tensor(F_T, dtype=torch.float64, requires_grad=True)
    ref = _nwd_reference(head_fn, f_s, f_t)
    g_ref = torch.autograd.grad(ref, (w1, w2, f_s, f_t))

    loss, _ = DALNLoss()(head_fn, f_s, f_t, coeff)
    loss.backward()
    # head: d(loss)/dw = -dNWD/dw, so a descent step on the loss *raises* NWD
    assert torch.allclose(w1.grad, -g_ref[0], atol=1e-6)
    assert torch.allclose(w2.grad, -g_ref[1], atol=1e-6)
    # features: the reversal flips the sign again, so a descent step *lowers* NWD
    assert torch.allclose(f_s.grad, coeff * g_ref[2], atol=1e-6)
    assert torch.allclose(f_t.grad, coeff * g_ref[3], atol=1e-6)

    # and behaviourally: one small descent step each way
    with torch.no_grad():
        before = ref.item()
        w_step = _nwd_reference(lambda f: [f @ (w1 - 1e-2 * w1.grad).T, f @ (w2 - 1e-2 * w2.grad).T],
                                f_s, f_t).item()
        f_step = _nwd_reference(head_fn, f_s - 1e-2 * f_s.grad, f_t - 1e-2 * f_t.grad).item()
    assert w_step > before > f_step


# --------------------------------------------------------------------------- methods


class _TinyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc_p, self.fc_y = nn.Linear(8, 5), nn.Linear(8, 4)

    def head(self, f):
        class Out:
            logits = [self.fc_p(f), self.fc_y(f)]
        return Out()


@pytest.mark.parametrize("name", list_methods())
def test_registered_methods_share_one_interface(name):
    torch.manual_seed(0)
    method = create_method(name, feature_dim=8)
    model = _TinyModel()
    f_s = torch.randn(6, 8, requires_grad=True)
    f_t = torch.randn(4, 8, requires_grad=True)
    # what the training step passes: the source half's labels, the outputs of both halves
    pitchyaw = torch.deg2rad(torch.randn(10, 2) * 10)
    outputs = SimpleNamespace(pitchyaw=pitchyaw)
    loss, diag = method.transfer_loss(model, f_s, f_t, 0.5, labels={"pitchyaw": pitchyaw[:6]},
                                      outputs=outputs)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(not v.requires_grad for v in diag.values())
    extra = method.extra_parameters()
    if name == "source_only":
        assert loss.item() == 0.0 and extra == [] and not method.needs_target
        return
    loss.backward()
    assert f_s.grad is not None and f_s.grad.abs().sum() > 0
    assert f_t.grad is not None and f_t.grad.abs().sum() > 0
    if name in ("dann", "iwdan"):
        assert extra and all(p.grad is not None for p in extra)
    if name == "daln":
        assert extra == [] and model.fc_p.weight.grad is not None


def test_dann_method_needs_feature_dim():
    with pytest.raises(ValueError):
        create_method("dann")
