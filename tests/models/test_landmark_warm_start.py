"""Growing a dense landmark model by a real 68 head: the new channels start as copies
of the dense set's iBug vertices, the old ones are unchanged, and the warm-start file
a syn+real run starts from is built only when the layouts call for it."""

import pytest
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.predictor import OutputLayout
from models.registry import create_model, load_model
from synthloop.errors import UsageError
from synthloop.landmarks.warm_start import warm_start_checkpoint

TINY = {"width": 8, "depths": (1, 1, 1, 1), "head_channels": 8, "input_size": 48}


def _net(k=100, seed=0):
    torch.manual_seed(seed)
    net = create_model("landmark_resnet_s", num_points=k, **TINY).eval()
    with torch.no_grad():
        net.head_weight.normal_(0, 0.5)  # away from the flat start, so copies are visible
    return net


def test_grown_channels_copy_the_chosen_rows_and_keep_the_rest():
    net = _net()
    grown = net.grown(torch.arange(68)).eval()
    assert grown.num_points == 168 and grown.stride == net.stride
    x = torch.randint(0, 255, (2, 3, 48, 48), dtype=torch.uint8)
    with torch.no_grad():
        a, b = net(x).coords, grown(x).coords
    assert torch.allclose(b[:, :100], a, atol=1e-5)
    assert torch.allclose(b[:, 100:], a[:, :68], atol=1e-5)


def test_growing_across_the_dense_stride_boundary_is_refused():
    with pytest.raises(ValueError, match="stride"):
        _net(k=200).grown(torch.arange(68))  # 200 points: stride 4; 268: stride 8


def _checkpoint(tmp_path, net):
    cfg = {"model": "landmark_resnet_s", "task": "landmarks",
           "model_kwargs": {**TINY, "num_points": net.num_points}}
    return save_checkpoint(tmp_path / "pre" / "last.pt", net, None, None, 30, cfg)


def test_a_syn_real_layout_starts_from_the_grown_copy(tmp_path):
    net = _net()
    pre = _checkpoint(tmp_path, net)
    path = warm_start_checkpoint(pre, OutputLayout("dense100", 100, real_head=True), tmp_path)
    assert path == tmp_path / "init_grown.pt"
    ck = load_checkpoint(path)
    assert ck["model_config"]["num_points"] == 168 and ck["train_config"]["model_kwargs"]["num_points"] == 168
    assert torch.equal(ck["model_state"]["head_weight"][100:], net.head_weight[:68].detach())
    assert load_model(path).num_points == 168
    # the same layout needs no copy
    assert warm_start_checkpoint(pre, OutputLayout("dense100", 100), tmp_path) == pre


def test_a_model_of_other_points_is_refused_with_the_file_named(tmp_path):
    pre = _checkpoint(tmp_path, _net(k=80))
    with pytest.raises(UsageError, match="80 points"):
        warm_start_checkpoint(pre, OutputLayout("dense100", 100, real_head=True), tmp_path)


def test_narrowed_model_at_the_same_stride_predicts_the_chosen_rows():
    net = _net(k=100)
    narrow = net.narrowed(torch.arange(68)).eval()
    assert narrow.num_points == 68 and narrow.stride == net.stride == 4
    x = torch.randint(0, 255, (2, 3, 48, 48), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(narrow(x).coords, net(x).coords[:, :68], atol=1e-4)


def test_narrowing_a_stride_8_model_keeps_its_fpn_levels_and_adds_stage_1_at_zero():
    net = _net(k=300)
    narrow = net.narrowed(torch.arange(68))
    assert (net.stride, narrow.stride) == (8, 4)
    assert not narrow.lateral[0].weight.any() and not narrow.lateral[0].bias.any()
    for mine, theirs in zip(narrow.lateral[1:], net.lateral, strict=True):  # stages 2-4
        assert torch.equal(mine.weight, theirs.weight) and torch.equal(mine.bias, theirs.bias)
    for name, value in net.state_dict().items():
        if not name.startswith(("lateral.", "head_weight")):
            assert torch.equal(narrow.state_dict()[name], value), name
    assert torch.equal(narrow.head_weight, net.head_weight[:68])


def test_a_68_layout_from_a_dense_model_starts_from_the_narrowed_copy(tmp_path):
    net = _net(k=300)
    pre = _checkpoint(tmp_path, net)
    path = warm_start_checkpoint(pre, OutputLayout("points68", 68), tmp_path)
    assert path == tmp_path / "init_narrowed.pt"
    narrow = load_model(path)
    assert narrow.num_points == 68 and narrow.stride == 4
    assert torch.equal(narrow.head_weight, net.head_weight[:68])
