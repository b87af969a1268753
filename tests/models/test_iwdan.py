"""IWDAN: BBSE weights against hand computations, the weighted loss against a hand
computation and against DANN at weight 1, the online estimate recovering a known label
shift, and exact resume of its state."""

import math

import numpy as np
import pytest
import torch

from models.da_losses import DANNLoss, DomainDiscriminator
from models.gaze_net import GazeOutput
from models.iwdan import GazeClasses, IWDANLoss, IWDANMethod, bbse_weights


def test_gaze_classes_grid_by_hand():
    classes = GazeClasses(pitch_deg=30, yaw_deg=36, n_pitch=6, n_yaw=6)  # 10 x 12 deg cells
    deg = torch.tensor([[0.0, 0.0], [-29.0, -35.0], [29.0, 35.0], [-90.0, 90.0], [5.0, -13.0]])
    got = classes(torch.deg2rad(deg)).tolist()
    # pitch 0 -> cell 3, yaw 0 -> cell 3: 3 * 6 + 3; beyond the range -> end cells
    assert got == [21, 0, 35, 0 * 6 + 5, 3 * 6 + 1]


def test_bbse_recovers_the_ratio_with_a_perfect_classifier():
    p_s = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    p_t = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    w = bbse_weights(torch.diag(p_s), p_t, ridge=0.0)
    np.testing.assert_allclose(w.numpy(), (p_t / p_s).numpy(), rtol=1e-6)
    assert float((p_s * w.double()).sum()) == pytest.approx(1.0, rel=1e-6)


def test_bbse_undoes_a_known_confusion():
    # a classifier that confuses classes 0 and 1 in 20 % of cases; source uniform
    p_s = np.array([1 / 3, 1 / 3, 1 / 3])
    cond = np.array([[0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 1.0]])  # P(pred=i | y=j)
    w_true = np.array([1.8, 0.6, 0.6])  # p_T = w * p_S = (0.6, 0.2, 0.2)
    c = cond * p_s[None]
    mu = c @ w_true
    w = bbse_weights(torch.from_numpy(c), torch.from_numpy(mu), ridge=0.0).double().numpy()
    np.testing.assert_allclose(w, w_true, rtol=1e-5)


def test_bbse_caps_and_zeroes_unseen_classes():
    c = torch.diag(torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))
    w = bbse_weights(c, torch.tensor([0.99, 0.01, 0.0], dtype=torch.float64), ridge=0.0,
                     max_weight=1.5)
    assert float(w[2]) == 0.0  # no source sample of class 2: nothing to weight
    assert float(w[0]) <= 1.5 / (0.5 * 1.5 + 0.5 * 0.02) + 1e-6  # clipped, then rescaled
    assert float((c.sum(0) * w.double()).sum()) == pytest.approx(1.0)


def test_weighted_loss_by_hand_and_equal_to_dann_at_weight_one():
    torch.manual_seed(0)
    disc = DomainDiscriminator(4, 8).eval()  # eval: BatchNorm uses fixed statistics
    f_s, f_t = torch.randn(3, 4), torch.randn(2, 4)
    w = torch.tensor([2.0, 0.5, 0.5])
    loss, _ = IWDANLoss(disc)(f_s, f_t, w)
    d = disc(torch.cat([f_s, f_t])).reshape(-1).detach()
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731  BCE with logits: -log s(d) = sp(-d)
    src = [wi * sp(-float(di)) for wi, di in zip(w.tolist(), d[:3], strict=True)]
    tgt = [sp(float(di)) for di in d[3:]]
    assert float(loss.detach()) == pytest.approx(0.5 * (sum(src) / 3 + sum(tgt) / 2), rel=1e-5)
    ones, _ = IWDANLoss(disc)(f_s, f_t, torch.ones(3))
    dann, _ = DANNLoss(disc)(f_s, f_t)
    assert float(ones.detach()) == pytest.approx(float(dann.detach()), rel=1e-6)


def _out(pitchyaw: torch.Tensor) -> GazeOutput:
    n = len(pitchyaw)
    return GazeOutput(torch.zeros(n, 4), torch.zeros(n, 2), torch.zeros(n, 2), pitchyaw)


def _stream(n_steps: int, seed: int = 0):
    """Batches of a perfect classifier: the source spread over two pitch cells equally,
    the target 80 / 20."""
    rng = np.random.default_rng(seed)
    up, down = np.radians([[12.0, 0.0]]), np.radians([[-12.0, 0.0]])
    for _ in range(n_steps):
        y_s = np.concatenate([np.repeat(up, 8, 0), np.repeat(down, 8, 0)])
        y_t = np.where(rng.random((16, 1)) < 0.8, up, down)
        yield (torch.tensor(y_s, dtype=torch.float32),
               _out(torch.tensor(np.concatenate([y_s, y_t]), dtype=torch.float32)))


def _feed(method: IWDANMethod, batches) -> None:
    for y_s, outputs in batches:
        method.transfer_loss(None, torch.zeros(16, 4), torch.zeros(16, 4), 1.0,
                             labels={"pitchyaw": y_s}, outputs=outputs)


def _new() -> IWDANMethod:
    return IWDANMethod(4, 8, GazeClasses(30, 36, 6, 6), momentum=0.9, warmup=20, solve_every=5)


def test_online_weights_recover_a_label_shift():
    method = _new()
    assert torch.equal(method.weights, torch.ones(36))  # DANN until the warm-up ends
    _feed(method, _stream(60))
    classes = GazeClasses(30, 36, 6, 6)
    c_up, c_down = classes(torch.deg2rad(torch.tensor([[12.0, 0.0], [-12.0, 0.0]]))).tolist()
    assert float(method.weights[c_up]) == pytest.approx(1.6, abs=0.15)
    assert float(method.weights[c_down]) == pytest.approx(0.4, abs=0.15)


def test_online_state_resumes_exactly():
    batches = list(_stream(60))
    full = _new()
    _feed(full, batches)
    first = _new()
    _feed(first, batches[:33])
    resumed = _new()
    resumed.load_state_dict(first.state_dict())  # what a checkpoint carries
    _feed(resumed, batches[33:])
    for name in ("confusion", "target_pred", "weights", "seen"):
        assert torch.equal(getattr(resumed, name), getattr(full, name)), name


def test_iwdan_refuses_non_gaze_models():
    from models.train import TrainConfig

    with pytest.raises(ValueError, match="does not serve the 'landmarks' task"):
        TrainConfig(task="landmarks", model="hourglass_s", method="iwdan", select="source_error")
    method = IWDANMethod(4)
    with pytest.raises(ValueError, match="gaze models only"):
        method.transfer_loss(None, torch.randn(2, 4), torch.randn(2, 4), 1.0)
