"""The default face distribution and how its factors become shape weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synth.distribution import SceneDistribution
from synth.face_distribution import (
    FACE_FACTORS,
    PRESET_NAMES,
    default_face_distribution,
    expression_coefficients,
    identity_coefficients,
)
from synth.face_fallback import EXPRESSIONS


def test_default_distribution_factors_and_ranges():
    d = default_face_distribution(96)
    assert d.factor_names == FACE_FACTORS and d.task == "landmarks"
    assert (d.image.height, d.image.width, d.image.channels) == (96, 96, 3)
    deg = {n: tuple(round(math.degrees(x)) for x in d.factor(n).support)
           for n in ("head_yaw", "head_pitch", "head_roll")}
    assert deg == {"head_yaw": (-75, 75), "head_pitch": (-35, 35), "head_roll": (-25, 25)}
    assert d.factor("expression_preset").values == tuple(float(i) for i in range(len(PRESET_NAMES)))
    for f in d.factors:
        assert f.doc or f.unit or f.name in ("light_intensity", "gamma", "contrast",
                                             "jpeg_quality", "background_brightness")
    assert d.id == default_face_distribution(96).id  # content-addressed
    assert SceneDistribution.loads(d.dumps()).id == d.id


def test_reweighting_keeps_support():
    d = default_face_distribution()
    f = d.factor("head_yaw")
    child = d.reweight("head_yaw", [5.0] + [1.0] * (f.n_bins - 1), reason="more profile faces")
    s = child.sample(np.random.default_rng(0), 4000)
    assert child.parent == d.id
    assert np.all(np.abs(s["head_yaw"]) <= math.radians(75) + 1e-9)
    assert np.mean(f.bin_index(s["head_yaw"]) == 0) > 3 * np.asarray(f.weights)[0]


def _factors(n: int, **fixed) -> dict[str, np.ndarray]:
    f = default_face_distribution().sample(np.random.default_rng(0), n)
    for k, v in fixed.items():
        f[k] = np.full(n, float(v))
    return f


def test_identity_coefficients():
    f = _factors(3000, identity_scale=0.5)
    w = identity_coefficients(f, 100, np.random.default_rng(1))
    assert w.shape == (3000, 100) and w.dtype == np.float32
    np.testing.assert_allclose(w[:, 0], f["identity_pc1"], rtol=1e-6)
    np.testing.assert_allclose(w[:, 2], f["identity_pc3"], rtol=1e-6)
    assert w[:, 3:].std() == pytest.approx(0.5, rel=0.03)
    assert identity_coefficients(f, 6, np.random.default_rng(1)).shape == (3000, 6)


def test_expression_coefficients_follow_presets():
    names = ("jawOpen", "mouthSmile_L", "mouthSmile_R", "eyeBlink_L", "eyeBlink_R",
             "eyeLookOut_R", "eyeLookIn_L", "browDown_L")
    quiet = dict(expression_jitter=0, expression_asymmetry=0, eye_blink=0, eye_gaze_yaw=0,
                 eye_gaze_pitch=0, expression_intensity=0.5)
    w = expression_coefficients(_factors(4, expression_preset=0, **quiet), names,
                                np.random.default_rng(0))
    assert np.all(w == 0)
    w = expression_coefficients(_factors(4, expression_preset=1, **quiet), names,
                                np.random.default_rng(0))
    np.testing.assert_allclose(w[:, 1:3], 0.45)  # smile 0.9 x intensity 0.5
    assert np.all(w[:, 0] == 0)
    blink = dict(quiet, eye_blink=0.8, eye_gaze_yaw=math.radians(15))
    w = expression_coefficients(_factors(4, expression_preset=2, **blink), names,
                                np.random.default_rng(0))
    np.testing.assert_allclose(w[:, 3:5], 0.8)
    np.testing.assert_allclose(w[:, 0], 0.3)  # open: jawOpen 0.6 x 0.5
    np.testing.assert_allclose(w[:, 5:7], 0.4)  # gaze toward the image's left
    full = _factors(500)
    w1 = expression_coefficients(full, names, np.random.default_rng(5))
    assert np.array_equal(w1, expression_coefficients(full, names, np.random.default_rng(5)))
    assert w1.min() >= 0 and w1.max() <= 1
    assert expression_coefficients(full, EXPRESSIONS, np.random.default_rng(5)).shape == (500, len(EXPRESSIONS))
