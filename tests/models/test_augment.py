"""Batched augmentation: shapes, ranges, determinism, and no label-changing geometry."""

import pytest
import torch

from models.augment import AugmentConfig, augment, translate
from synth.camera import camera_operators, gaussian_blur


def _images(b=16, c=1, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, 36, 60), generator=g, dtype=torch.uint8).to(device)


def _gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize("c", [1, 3])
def test_shape_dtype_range(c):
    x = _images(c=c)
    y = augment(x, _gen(0))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.allclose(y, x.float() / 255)  # it did something


def test_seed_deterministic_and_seed_sensitive():
    x = _images()
    a, b = augment(x, _gen(5)), augment(x, _gen(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, augment(x, _gen(6)))


def test_off_is_identity():
    x = _images()
    y = augment(x, _gen(0), AugmentConfig.off())
    torch.testing.assert_close(y, x.float() / 255, atol=1e-6, rtol=0)


def test_never_flips_left_right():
    """A patch bright on the left stays bright on the left under the strongest settings:
    a flip would negate yaw without relabelling."""
    x = torch.zeros(64, 1, 36, 60, dtype=torch.uint8)
    x[..., :20] = 220
    x[..., 40:] = 30
    strong = AugmentConfig(p_shift=1, p_blur=1, p_stretch=1, p_gamma=1, p_contrast=1,
                           p_brightness=1, p_noise=1)
    for seed in range(5):
        y = augment(x, _gen(seed), strong)
        left, right = y[..., :20].mean(dim=(1, 2, 3)), y[..., 40:].mean(dim=(1, 2, 3))
        assert bool((left > right + 0.2).all())


def test_translate_is_an_exact_shift_with_edge_replication():
    x = torch.arange(36 * 60, dtype=torch.float32).view(1, 1, 36, 60).repeat(2, 1, 1, 1)
    y = translate(x, torch.tensor([1, -2]), torch.tensor([-2, 0]), max_shift=2)
    # sample 0: down 1, left 2 -> out[r, c] = x[r - 1, c + 2] in the interior
    assert torch.equal(y[0, 0, 1:, :-2], x[0, 0, :-1, 2:])
    assert torch.equal(y[0, 0, 0, :-2], x[0, 0, 0, 2:])  # top row replicated
    # sample 1: up 2 -> out[r, c] = x[r + 2, c]
    assert torch.equal(y[1, 0, :-2], x[1, 0, 2:])
    assert torch.equal(y[1, 0, -1], x[1, 0, -1])


def test_blur_sigma_zero_is_identity_and_preserves_constant_images():
    """The blur augmentation uses (shares the implementation of the camera's)."""
    ops = camera_operators(36, 60, "cpu")
    x = torch.rand(3, 1, 36, 60)
    torch.testing.assert_close(gaussian_blur(x, torch.zeros(3), ops), x)
    c = torch.full((2, 1, 36, 60), 0.4)
    torch.testing.assert_close(gaussian_blur(c, torch.tensor([0.5, 1.5]), ops), c)
    assert gaussian_blur(x, torch.full((3,), 1.0), ops).std() < x.std()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_contract():
    x = _images(device="cuda")
    a, b = augment(x, _gen(3, "cuda")), augment(x, _gen(3, "cuda"))
    assert a.device.type == "cuda" and a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and float(a.min()) >= 0 and float(a.max()) <= 1
