"""Label-free validators on hand-made predictions: confident-diverse, collapsed, uniform."""

import math

import pytest
import torch

from models.validators import (
    bnm_score,
    information_maximization,
    prediction_entropy,
    snd_score,
    unsupervised_scores,
)

B = K = 8


def _diverse():  # each sample confidently in its own class
    return 12.0 * torch.eye(B, K)


def _collapsed():  # every sample confidently in class 0
    z = torch.zeros(B, K)
    z[:, 0] = 12.0
    return z


def _uniform():
    return torch.zeros(B, K)


def test_entropy_ranks_confident_below_uniform():
    assert prediction_entropy([_uniform()]) == pytest.approx(math.log(K))
    assert prediction_entropy([_diverse()]) < 0.01
    assert prediction_entropy([_collapsed()]) < 0.01  # blind to collapse, by definition


def test_im_rewards_confident_and_diverse_only():
    assert information_maximization(_diverse()) == pytest.approx(math.log(K), abs=0.01)
    assert abs(information_maximization(_collapsed())) < 0.01
    assert abs(information_maximization(_uniform())) < 1e-9


def test_bnm_ranks_diverse_over_collapsed_over_uniform():
    d, c, u = bnm_score(_diverse()), bnm_score(_collapsed()), bnm_score(_uniform())
    assert d == pytest.approx(1.0, abs=1e-3)
    assert c == pytest.approx(1 / math.sqrt(B), abs=1e-3)  # rank one, norm sqrt(B)
    assert u == pytest.approx(1 / B)  # P = 1/K everywhere: one singular value sqrt(B/K)
    assert d > c > u


def test_heads_are_averaged():
    a, b = _diverse(), _uniform()
    for fn in (prediction_entropy, information_maximization, bnm_score):
        assert fn([a, b]) == pytest.approx(0.5 * (fn([a]) + fn([b])))


def test_snd_prefers_dense_clusters_to_scattered_points():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 32, generator=g)
    clustered = centres.repeat_interleave(16, 0) + 0.05 * torch.randn(64, 32, generator=g)
    scattered = torch.randn(64, 32, generator=g)
    assert snd_score(clustered) > snd_score(scattered) + 0.5
    # the documented failure mode: identical features spread the softmax evenly
    assert snd_score(torch.ones(64, 32)) == pytest.approx(math.log(63))


def test_unsupervised_scores_keys_and_errors():
    s = unsupervised_scores([_diverse(), _uniform()], torch.randn(B, 16), prefix="t_")
    assert set(s) == {"t_entropy", "t_im", "t_bnm", "t_snd", "t_snd_features", "t_max_entropy"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in s.values())
    with pytest.raises(ValueError):
        prediction_entropy([])
    with pytest.raises(ValueError):
        snd_score(torch.randn(2, 4))
