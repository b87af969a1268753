"""The mean-patch refiner: the difference of two mean images, added to every image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.data import ArraySource
from models.mean_patch import MeanPatchRefiner, fit_mean_patch, mean_image
from models.refined_source import RefinedSource
from models.simgan import load_refiner, refine_images
from realdata.errors import DataFormatError


def _pair(seed: int = 0, shape=(40, 6, 10)):
    rng = np.random.default_rng(seed)
    syn = rng.integers(60, 140, shape, dtype=np.uint8)
    ramp = np.linspace(-30, 30, shape[2])[None, None, :]  # real: brighter to the right
    real = np.clip(rng.integers(60, 140, shape) + 20 + ramp, 0, 255).astype(np.uint8)
    return syn, real


def test_refined_images_have_the_real_mean_at_full_strength():
    syn, real = _pair()
    net = fit_mean_patch(syn, real)
    out = refine_images(net, syn)
    # nothing clips here (60..140 moved by at most 20 + 30 + noise), so the means agree to
    # the rounding of each pixel
    assert np.abs(out.astype(float).mean(0) - real.astype(float).mean(0)).max() < 0.51
    assert out.dtype == np.uint8 and out.shape == syn.shape


def test_the_shift_is_the_same_for_every_image_and_scales_with_strength():
    syn, real = _pair(1)
    delta = real.astype(float).mean(0) - syn.astype(float).mean(0)
    half = refine_images(fit_mean_patch(syn, real, strength=0.5), syn).astype(float) - syn
    assert np.abs(half - 0.5 * delta[None]).max() <= 0.5 + 1e-6  # rounding only
    none = refine_images(fit_mean_patch(syn, real, strength=0.0), syn)
    assert np.array_equal(none, syn)


def test_colour_images_get_one_shift_per_channel():
    rng = np.random.default_rng(2)
    syn = rng.integers(50, 100, (12, 4, 5, 3), dtype=np.uint8)
    real = syn.copy()
    real[..., 0] += 30  # only the red channel differs
    net = fit_mean_patch(syn, real)
    assert tuple(net.delta.shape) == (3, 4, 5)
    d = net.delta.numpy() * 255
    assert np.allclose(d[0], 30, atol=1e-3) and np.allclose(d[1:], 0, atol=1e-3)
    assert np.array_equal(refine_images(net, syn), real)


def test_mean_image_is_channel_first_and_in_unit_range():
    x = np.full((7, 2, 3, 3), 51, np.uint8)
    x[..., 2] = 255
    m = mean_image(x, chunk=3)  # chunked sums give the same mean
    assert m.shape == (3, 2, 3) and np.allclose(m[0], 0.2) and np.allclose(m[2], 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        mean_image(np.zeros((0, 2, 3), np.uint8))


def test_images_of_another_size_are_refused_with_both_shapes():
    syn, real = _pair()
    with pytest.raises(ValueError, match=r"\(6, 10\).*\(6, 9\)"):
        fit_mean_patch(syn, real[:, :, :9])
    net = fit_mean_patch(syn, real)
    with pytest.raises(ValueError, match=r"fitted on \(1, 6, 10\)"):
        net(torch.zeros(2, 1, 6, 9, dtype=torch.uint8))


def test_a_saved_mean_patch_loads_as_a_refiner_and_refines_a_source_on_the_fly(tmp_path):
    syn, real = _pair(3)
    net = fit_mean_patch(syn, real, strength=0.7)
    path = save_checkpoint(tmp_path / "refiner.pt", net, None, None, 0, {"strength": 0.7},
                           model_name=net.model_name)
    back = load_refiner(path, channels=1)
    assert isinstance(back, MeanPatchRefiner) and back.cfg.strength == 0.7
    assert torch.equal(back.delta, net.delta)
    labels = np.zeros((len(syn), 2), np.float32)
    src = RefinedSource(ArraySource(syn, 8, 0, labels={"pitchyaw": labels}), back, "cpu")
    batch = src.gather(np.arange(5))
    assert np.array_equal(batch["image"].squeeze(1).numpy(), refine_images(net, syn[:5]))
    with pytest.raises(DataFormatError, match="refines 1-channel images; the batch has 3"):
        load_refiner(path, channels=3)
