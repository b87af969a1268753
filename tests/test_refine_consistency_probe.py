"""The gaze probe a refiner keeps still (``synthloop refine --consistency``): degrees,
frozen, differentiable in its input, and moved to the refiner's device."""

from __future__ import annotations

import math

import torch

from models.checkpoint import save_checkpoint
from models.registry import create_model
from synthloop.gaze.refining import load_consistency_probe


def test_the_probe_answers_in_degrees_and_passes_gradients_only_to_the_image(tmp_path):
    torch.manual_seed(0)
    net = create_model("gaze_resnet_s", widths=(8,), depths=(1,), feature_dim=16).eval()
    save_checkpoint(tmp_path / "last.pt", net, None, None, 1, {}, model_name="gaze_resnet_s")
    probe = load_consistency_probe(tmp_path / "last.pt")
    x = torch.rand(3, 1, 36, 60, requires_grad=True)
    out = probe(x)
    with torch.no_grad():
        want = net(x).pitchyaw * (180.0 / math.pi)
    assert out.shape == (3, 2) and torch.allclose(out, want, atol=1e-5)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in probe.parameters()) and not probe.training
    assert isinstance(probe, torch.nn.Module)  # train_refiner moves it with .to(device)
