"""Every registered model: shapes, input dtypes, channels_last, self-describing config.

The device comes from ``TORCH_DEVICE`` (default cpu), so the same suite runs on a GPU box.
"""

import json
import os

import pytest
import torch

from models.registry import create_model, list_models

DEVICE = torch.device(os.environ.get("TORCH_DEVICE", "cpu"))
MODELS = list_models()



def _images(b: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 1, 36, 60), generator=g, dtype=torch.uint8).to(DEVICE)


def test_registry_is_not_empty():
    assert len(MODELS) >= 2


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_shapes(name):
    torch.manual_seed(0)
    model = create_model(name).to(DEVICE)
    x = _images(4).float() / 255
    out = model(x)
    p_bins, y_bins = model.bins
    assert out.features.shape == (4, model.feature_dim)
    assert out.pitch_logits.shape == (4, p_bins.n_bins)
    assert out.yaw_logits.shape == (4, y_bins.n_bins)
    assert out.pitchyaw.shape == (4, 2)
    assert all(torch.isfinite(t).all() for t in out)
    # expected angles lie inside the bin range
    assert out.pitchyaw[:, 0].abs().max() < p_bins.hi_deg * torch.pi / 180

    (out.pitch_logits.logsumexp(1).mean() + out.pitchyaw.square().sum()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["stem.0.weight"].abs().sum() > 0


@pytest.mark.parametrize("name", MODELS)
def test_uint8_input_is_scaled_inside(name):
    model = create_model(name).to(DEVICE).eval()
    x = _images(3)
    with torch.no_grad():
        a, b = model(x), model(x.float() / 255)
    assert torch.allclose(a.pitchyaw, b.pitchyaw, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_head_reuses_on_features(name):
    model = create_model(name).to(DEVICE).eval()
    with torch.no_grad():
        out = model(_images(3))
        again = model.head(out.features)
    assert torch.equal(again.pitch_logits, out.pitch_logits)
    assert torch.equal(again.pitchyaw, out.pitchyaw)
    assert len(again.logits) == 2


@pytest.mark.parametrize("name", MODELS)
def test_channels_last_matches_contiguous(name):
    torch.manual_seed(0)
    ref = create_model(name).to(DEVICE)
    cl = create_model(name, **ref.config).to(DEVICE).to(memory_format=torch.channels_last)
    cl.load_state_dict(ref.state_dict())
    assert cl.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = _images(8).float() / 255
    out_ref = ref(x)
    out_cl = cl(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out_ref.pitchyaw, out_cl.pitchyaw, atol=1e-4)
    out_ref.pitchyaw.sum().backward()
    out_cl.pitchyaw.sum().backward()
    g_ref, g_cl = ref.stem[0].weight.grad, cl.stem[0].weight.grad
    assert torch.allclose(g_ref, g_cl, atol=1e-4 * g_ref.abs().max().item())


@pytest.mark.parametrize("name", MODELS)
def test_config_rebuilds_the_model_through_json(name):
    model = create_model(name)
    cfg = json.loads(json.dumps(model.config))  # tuples come back as lists
    rebuilt = create_model(name, **cfg)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())  # strict: identical architecture
    small = create_model(name, feature_dim=32, pitch_bins=(-30.0, 30.0, 20))
    assert small.feature_dim == 32 and small.bins[0].n_bins == 20
    assert create_model(name, **small.config).config == small.config


def test_unknown_config_field_is_rejected():
    with pytest.raises(TypeError, match="depth"):
        create_model(MODELS[0], depth=3)


def test_expected_angles_stay_float32_under_bf16_autocast():
    """The bin expectation is the regression output: under autocast (the GPU path trains
    in bf16) it must still come out in float32, close to the full-precision answer."""
    import torch

    from models.gaze_net import GazeNet

    torch.manual_seed(0)
    net = GazeNet().eval()
    x = torch.rand(8, 1, 36, 60)
    with torch.no_grad():
        full = net(x).pitchyaw
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = net(x)
    assert half.pitch_logits.dtype == torch.bfloat16  # the network itself did run in bf16
    assert half.pitchyaw.dtype == torch.float32
    assert torch.allclose(half.pitchyaw, full, atol=0.02)  # radians; bf16 logits, fp32 expectation
