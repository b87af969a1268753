"""Pure schedules at known points."""

import math

import pytest

from models.schedules import grl_coeff, lr_inverse_decay, warmup_cosine


def test_grl_coeff_endpoints_and_known_value():
    assert grl_coeff(0, 1000) == 0.0
    assert grl_coeff(10**9, 1000) == pytest.approx(1.0, abs=1e-4)
    assert grl_coeff(-5, 1000) == 0.0  # progress is clipped
    # DANN paper: 2/(1+e^-1) - 1 = tanh(0.5) at p = 0.1
    assert grl_coeff(100, 1000) == pytest.approx(math.tanh(0.5))
    assert grl_coeff(0, 10, lo=0.2, hi=0.6) == pytest.approx(0.2)
    assert grl_coeff(10, 10, lo=0.2, hi=0.6) == pytest.approx(0.6, abs=1e-4)


def test_grl_coeff_is_monotone():
    vals = [grl_coeff(s, 200, alpha=5.0) for s in range(0, 260, 5)]
    assert all(b >= a for a, b in zip(vals, vals[1:], strict=False))
    assert vals[1] > vals[0]


def test_grl_coeff_rejects_empty_schedule():
    with pytest.raises(ValueError):
        grl_coeff(0, 0)


def test_lr_inverse_decay():
    assert lr_inverse_decay(0, 0.01) == 0.01
    assert lr_inverse_decay(1000, 0.01) == pytest.approx(0.01 * 2**-0.75)
    vals = [lr_inverse_decay(s, 1.0) for s in range(0, 5000, 100)]
    assert all(b < a for a, b in zip(vals, vals[1:], strict=False))


def test_warmup_cosine():
    base, warm, n = 1e-3, 10, 110
    assert warmup_cosine(0, n, base, warm) == pytest.approx(base / 11)
    assert warmup_cosine(warm, n, base, warm) == pytest.approx(base)
    assert warmup_cosine(warm + 50, n, base, warm) == pytest.approx(base / 2)
    assert warmup_cosine(n, n, base, warm, min_lr=1e-5) == pytest.approx(1e-5)
    assert warmup_cosine(10 * n, n, base, warm) == 0.0
    up = [warmup_cosine(s, n, base, warm) for s in range(warm + 1)]
    down = [warmup_cosine(s, n, base, warm) for s in range(warm, n + 1)]
    assert all(b > a for a, b in zip(up, up[1:], strict=False))
    assert all(b <= a for a, b in zip(down, down[1:], strict=False))
