"""Minimum functionality and determinism of training steps (CPU, a few seconds)."""

import pytest
import torch

from models.gaze_loss import angular_error_deg, gaze_loss
from models.registry import create_method, create_model, list_methods


def _batch(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 36, 60), generator=g, dtype=torch.uint8)
    y = (torch.rand(n, 2, generator=g) - 0.5) * 0.8  # pitch, yaw in +-0.4 rad (+-23 deg)
    return x, y


def test_overfits_16_samples():
    """Minimum functionality: a model that cannot memorise 16 samples has a bug."""
    torch.manual_seed(0)
    model = create_model("gaze_resnet_s")
    x, y = _batch(16, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(100):
        losses = gaze_loss(model(x), y, model.bins)
        first = first or {k: v.item() for k, v in losses.items()}
        opt.zero_grad(set_to_none=True)
        losses["gaze"].backward()
        opt.step()
    model.eval()  # running BN statistics, as at inference
    with torch.no_grad():
        out = model(x)
        final = {k: v.item() for k, v in gaze_loss(out, y, model.bins).items()}
        err = angular_error_deg(out.pitchyaw, y).item()
    assert final["gaze"] < 0.2 * first["gaze"], (first, final)
    # the degree-squared regression term dominates the total; the bins must be learnt too
    assert final["ce_pitch"] + final["ce_yaw"] < 0.5 * (first["ce_pitch"] + first["ce_yaw"])
    assert err < 2.0, err  # from ~15 degrees at initialisation


def _run_steps(method_name: str, seed: int, steps: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = create_model("gaze_resnet_s")
    method = create_method(method_name, feature_dim=model.feature_dim)
    opt = torch.optim.SGD([*model.parameters(), *method.extra_parameters()], lr=0.01, momentum=0.9)
    x_s, y_s = _batch(8, seed=2)
    x_t, _ = _batch(8, seed=3)
    for step in range(steps):
        out = model(torch.cat([x_s, x_t]))  # one pass over both domains, then split
        f_s, f_t = out.features.chunk(2)
        src = type(out)(*(t[:8] for t in out))
        transfer, _ = method.transfer_loss(model, f_s, f_t, coeff=0.1 * (step + 1),
                                           labels={"pitchyaw": y_s}, outputs=out)
        loss = gaze_loss(src, y_s, model.bins)["gaze"] + transfer
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {**{f"model.{k}": v.clone() for k, v in model.state_dict().items()},
            **{f"method.{k}": v.clone() for k, v in method.state_dict().items()}}


@pytest.mark.parametrize("method_name", list_methods())
def test_same_seed_same_weights(method_name):
    a = _run_steps(method_name, seed=0)
    b = _run_steps(method_name, seed=0)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    c = _run_steps(method_name, seed=1)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the seed matters
