"""Every registered landmark model: shapes, gradients, input dtypes, the reusable head,
self-describing config; and the registry's task tags.

The device comes from ``TORCH_DEVICE`` (default cpu), so the same suite runs on a GPU box.
"""

import json
import os

import pytest
import torch

from models.heatmaps import soft_argmax
from models.hourglass import HourglassNet, LandmarkOutput
from models.registry import create_model, list_models, model_task

DEVICE = torch.device(os.environ.get("TORCH_DEVICE", "cpu"))
MODELS = list_models("hourglass_*", task="landmarks")  # landmark_resnet_*: its own tests


def _faces(b: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, 128, 128), generator=g, dtype=torch.uint8).to(DEVICE)


def test_registry_tags_keep_tasks_apart():
    assert {"hourglass_s", "hourglass_m", "hourglass_l"} <= set(MODELS)
    assert not set(MODELS) & set(list_models())  # the default listing is the gaze models
    assert set(MODELS) | set(list_models()) <= set(list_models(task=None))
    assert model_task("hourglass_s") == "landmarks" and model_task("gaze_resnet_s") == "gaze"
    assert list_models("hourglass_*", task=None) == ["hourglass_l", "hourglass_m", "hourglass_s"]


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_shapes(name):
    torch.manual_seed(0)
    model = create_model(name).to(DEVICE)
    s, c, k = model.cfg.stacks, model.cfg.channels, model.num_points
    assert k == 68 and model.stride == 4.0 and model.heatmap_size == 32
    out = model(_faces(2).float() / 255)
    assert isinstance(out, LandmarkOutput)
    assert out.heatmaps.shape == (2, s, k, 32, 32)
    assert out.coords.shape == (2, k, 2)
    assert out.stack_coords.shape == (2, s, k, 2)
    assert out.features.shape == (2, model.feature_dim) and model.feature_dim == c
    assert out.spatial_probs.shape == (2, k, 32 * 32)
    assert out.head_features.shape == (2, c, 32, 32)
    assert all(torch.isfinite(t).all() for t in out)
    assert torch.allclose(out.spatial_probs.sum(-1), torch.ones(2, k, device=DEVICE), atol=1e-5)
    assert torch.equal(out.coords, out.stack_coords[:, -1])
    # soft-argmax stays inside the hull of the cell centres
    assert out.coords.min() >= 1.5 - 1e-4 and out.coords.max() <= 125.5 + 1e-4

    (out.stack_coords.sum() + out.features.square().sum()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    missing = [n for n, g in grads.items() if g is None or not torch.isfinite(g).all()]
    assert not missing, missing
    assert grads["stem.0.weight"].abs().sum() > 0 and grads["log_beta"].abs() > 0


@pytest.mark.parametrize("name", ["hourglass_s"])
def test_dense_points_and_small_configs(name):
    model = create_model(name, num_points=490, channels=16).to(DEVICE).eval()
    with torch.no_grad():
        out = model(_faces(2))
    assert out.coords.shape == (2, 490, 2) and out.heatmaps.shape[2] == 490
    one = create_model(name, stacks=1, channels=16, num_points=3, learn_beta=False, beta=2.0)
    assert "log_beta" not in dict(one.named_parameters())
    assert one.beta.item() == pytest.approx(2.0)
    assert one(_faces(1).cpu()).heatmaps.shape == (1, 1, 3, 32, 32)


@pytest.mark.parametrize("name", MODELS)
def test_uint8_input_is_scaled_inside(name):
    model = create_model(name, channels=16).to(DEVICE).eval()
    x = _faces(2)
    with torch.no_grad():
        a, b = model(x), model(x.float() / 255)
    assert torch.allclose(a.coords, b.coords, atol=1e-4)


def test_heatmap_head_reproduces_the_last_stack():
    torch.manual_seed(0)
    model = create_model("hourglass_s", channels=16, num_points=5).to(DEVICE).eval()
    with torch.no_grad():
        out = model(_faces(2))
        again = model.heatmap_head(out.head_features)
    assert torch.allclose(again, out.heatmaps[:, -1], atol=1e-6)
    # batch slicing of the NamedTuple (what the training loop does to split domains)
    src = type(out)(*(t[:1] for t in out))
    assert src.coords.shape == (1, 5, 2) and src.heatmaps.shape[0] == 1


def test_heatmap_logits_stay_float32_under_autocast():
    model = create_model("hourglass_s", channels=16, num_points=4).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(_faces(2).cpu())
        again = model.heatmap_head(out.head_features)
    assert out.head_features.dtype == torch.bfloat16  # the backbone did run in bf16
    assert out.heatmaps.dtype == again.dtype == out.coords.dtype == torch.float32
    # and the expectation itself was not rounded (autocast would run an `@` in bf16)
    ref, _ = soft_argmax(out.heatmaps[:, -1], model.stride)
    assert torch.allclose(out.coords, ref, atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_config_rebuilds_the_model_through_json(name):
    model = create_model(name, num_points=12)
    cfg = json.loads(json.dumps(model.config))
    rebuilt = create_model(name, **cfg)
    assert rebuilt.config == model.config and isinstance(rebuilt, HourglassNet)
    rebuilt.load_state_dict(model.state_dict())  # strict: identical architecture


def test_bad_configs_are_rejected():
    with pytest.raises(TypeError, match="depht"):
        create_model("hourglass_s", depht=3)
    with pytest.raises(ValueError, match="input_size"):
        create_model("hourglass_s", input_size=100)
    with pytest.raises(ValueError, match="channels"):
        create_model("hourglass_s", channels=30)
