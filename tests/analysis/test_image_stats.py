"""Per-image statistics measure what they claim, on images with known answers."""

import io

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from analysis.image_stats import (
    IMAGE_STAT_NAMES,
    blockiness,
    brightness,
    contrast,
    hist_entropy,
    image_statistics_table,
    luma,
    noise_sigma,
    rim_lines,
    sharpness,
)


def smooth_images(n: int, seed: int = 0, h: int = 36, w: int = 60,
                  sigma: float = 6.0) -> np.ndarray:
    """Smooth random fields in about 0.3..0.7: nearly locally quadratic content."""
    p = gaussian_filter(np.random.default_rng(seed).normal(size=(n, h, w)), (0, sigma, sigma))
    return 0.5 + 0.1 * p / p.std(axis=(1, 2), keepdims=True)


def edge_images(n: int, seed: int = 0) -> np.ndarray:
    """Piecewise-constant rectangles: sharp edges, as eyelids and the limbus are."""
    rng = np.random.default_rng(seed)
    out = np.full((n, 36, 60), 0.5)
    for i in range(n):
        for _ in range(6):
            y0, x0 = rng.integers(0, 30), rng.integers(0, 54)
            out[i, y0:y0 + rng.integers(4, 20), x0:x0 + rng.integers(4, 30)] = rng.uniform(0.1, 0.9)
    return out


def test_table_has_every_statistic_per_image_and_matches_the_single_functions():
    x = (np.random.default_rng(0).random((7, 36, 60)) * 255).astype(np.uint8)
    t = image_statistics_table(x)
    assert tuple(t) == IMAGE_STAT_NAMES
    assert all(v.shape == (7,) and v.dtype == np.float64 for v in t.values())
    for fn in (brightness, contrast, noise_sigma, sharpness, blockiness, hist_entropy, rim_lines):
        np.testing.assert_allclose(t[fn.__name__], fn(x), rtol=1e-6)


def test_uint8_float_and_rgb_inputs_agree():
    g = (np.random.default_rng(1).random((3, 36, 60)) * 255).astype(np.uint8)
    as_float = image_statistics_table(g.astype(np.float64) / 255.0)
    as_rgb = image_statistics_table(np.repeat(g[..., None], 3, axis=-1))  # luma of grey = grey
    as_c1 = image_statistics_table(g[..., None])
    for k, v in image_statistics_table(g).items():
        np.testing.assert_allclose(as_float[k], v, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(as_rgb[k], v, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(as_c1[k], v, rtol=1e-6)
    rgb = np.zeros((1, 4, 4, 3), np.uint8)
    rgb[..., 1] = 255  # pure green: Rec. 601 luma 0.587
    assert luma(rgb)[0, 0, 0] == pytest.approx(0.587, abs=1e-6)
    assert luma(g[0]).shape == (1, 36, 60)


def test_brightness_and_contrast_on_known_images():
    x = np.zeros((2, 10, 10))
    x[0] = 0.25
    x[1, :, :5] = 0.2
    x[1, :, 5:] = 0.8
    np.testing.assert_allclose(brightness(x), [0.25, 0.5])
    np.testing.assert_allclose(contrast(x), [0.0, 0.3])


@pytest.mark.parametrize("sigma", [0.005, 0.01, 0.02, 0.05])
def test_immerkaer_recovers_a_known_noise_sigma_on_smooth_images(sigma):
    clean = smooth_images(50, seed=2)
    noisy = clean + sigma * np.random.default_rng(3).normal(size=clean.shape)
    est = noise_sigma(noisy)
    assert np.median(est) == pytest.approx(sigma, rel=0.10)
    assert np.all(np.abs(est / sigma - 1) < 0.2)
    assert np.all(noise_sigma(clean) < 0.0015)  # smooth content alone reads as ~no noise


def test_blur_lowers_sharpness_monotonically_with_or_without_noise():
    base = edge_images(40, seed=4)
    rng = np.random.default_rng(5)
    for noise in (0.0, 0.01):
        scores = []
        for s in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0):
            img = gaussian_filter(base, (0, s, s)) if s else base
            scores.append(np.mean(sharpness(img + noise * rng.normal(size=img.shape))))
        assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), (noise, scores)


def test_sharpness_ignores_gain_and_offset():
    x = gaussian_filter(edge_images(10, seed=6), (0, 1, 1))
    np.testing.assert_allclose(sharpness(0.4 * x + 0.3), sharpness(x), rtol=1e-3)


def _jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    out = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L")))
    return np.stack(out)


def test_jpeg_compression_raises_blockiness_and_more_for_lower_quality():
    rng = np.random.default_rng(7)
    x = smooth_images(30, seed=8, sigma=3.0) + 0.01 * rng.normal(size=(30, 36, 60))
    orig = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
    b0 = blockiness(orig)
    assert np.mean(b0) == pytest.approx(1.0, abs=0.05)  # no grid without JPEG
    b = {q: blockiness(_jpeg(orig, q)) for q in (10, 30, 75)}
    assert np.all(b[10] > b0) and np.all(b[30] > b0)
    assert np.mean(b[10]) > np.mean(b[30]) > np.mean(b[75]) > np.mean(b0)


def test_histogram_equalised_images_have_high_entropy():
    x = np.clip(smooth_images(20, seed=9), 0, 1)  # occupies ~25 of the 64 bins
    ranks = x.reshape(20, -1).argsort(1).argsort(1).reshape(x.shape)
    equalised = ranks / (ranks[0].size - 1)  # a perfectly flat histogram
    e0, e1 = hist_entropy(x), hist_entropy(equalised)
    np.testing.assert_allclose(e1, 6.0, atol=0.01)  # log2(64)
    assert np.all(e1 > e0 + 1.0)
    np.testing.assert_allclose(hist_entropy(np.full((1, 8, 8), 0.5)), [0.0])


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        image_statistics_table(np.zeros((2, 2, 60)))
    with pytest.raises(ValueError):
        image_statistics_table(np.zeros((2, 36, 60, 2)))
    with pytest.raises(ValueError):
        image_statistics_table(np.zeros((0, 36, 60)))


def test_large_batches_in_chunks_match_per_image_statistics():
    """A large batch is processed in chunks of 2048 images (flat memory); the chunk
    boundaries change no statistic. (Its speed is a benchmark's business, not a test's.)"""
    x = np.random.default_rng(10).integers(0, 256, (4500, 36, 60), dtype=np.uint8)  # 3 chunks
    t = image_statistics_table(x)
    assert set(t) == set(IMAGE_STAT_NAMES)
    assert all(v.shape == (4500,) and v.dtype == np.float64 for v in t.values())
    # split at 2500 (inside the second chunk): the same numbers, image by image
    a, b = image_statistics_table(x[:2500]), image_statistics_table(x[2500:])
    for k in IMAGE_STAT_NAMES:
        np.testing.assert_allclose(t[k], np.concatenate([a[k], b[k]]), rtol=1e-12, err_msg=k)
    for i in (0, 2047, 2048, 4499):  # either side of the first boundary, and the last
        one = image_statistics_table(x[i:i + 1])
        for k in IMAGE_STAT_NAMES:
            np.testing.assert_allclose(t[k][i], one[k][0], rtol=1e-12, err_msg=k)


def test_rim_lines_finds_a_dark_line_across_the_border_rows_only():
    flat = np.full((1, 36, 60), 0.6)
    top, middle, bottom, bright = (flat.copy() for _ in range(4))
    top[0, 3, :] = 0.2  # a frame rim across the top of the patch
    bottom[0, 33, 10:50] = 0.2  # across two thirds of the width, near the bottom
    middle[0, 18, :] = 0.2  # the same line through the eye's rows: not a rim
    bright[0, 3, :] = 0.95  # a bright line (a glare streak) is not a rim either
    assert rim_lines(flat)[0] == 0.0
    assert rim_lines(top)[0] == pytest.approx(0.4)
    assert rim_lines(bottom)[0] == pytest.approx(0.4 * 40 / 60)
    assert rim_lines(middle)[0] == 0.0 and rim_lines(bright)[0] == 0.0
    # thin lines score, a wide dark band (a brow, a shadow) does not
    band = flat.copy()
    band[0, 1:6, :] = 0.2
    assert rim_lines(band)[0] == 0.0
