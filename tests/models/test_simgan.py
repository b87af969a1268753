"""The SimGAN parts: refiner, patch discriminator, losses, history buffer, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.history_buffer import ImageHistory
from models.patch_discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from models.refiner import Refiner, RefinerConfig
from models.registry import create_model, list_models, load_model
from models.simgan import SimGANConfig, mean_abs_change, refine_images, train_refiner
from models.simgan_losses import (
    discriminator_loss,
    label_consistency_loss,
    refiner_adversarial_loss,
    self_regularisation_loss,
)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


@pytest.mark.parametrize(("channels", "shape"), [(1, (36, 60)), (3, (32, 32))])
def test_untrained_refiner_is_the_identity(channels, shape):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (4, channels, *shape), dtype=torch.uint8)
    r = Refiner(RefinerConfig(channels=channels, width=8, blocks=2))
    assert torch.equal(r(x), x.float() / 255.0)
    images = x[:, 0].numpy() if channels == 1 else x.permute(0, 2, 3, 1).numpy()
    assert np.array_equal(refine_images(r, images, chunk=3), images)


def test_refiner_and_discriminator_are_registered_and_rebuild_from_config():
    assert {"simgan_refiner", "simgan_discriminator"} <= set(list_models(task="refiner"))
    r = create_model("simgan_refiner", channels=3, width=4, blocks=1)
    assert r.config == {"channels": 3, "width": 4, "blocks": 1}
    d = create_model("simgan_discriminator", **PatchDiscriminatorConfig(3, 4).__dict__)
    assert d(torch.zeros(2, 3, 128, 128)).shape == (2, 1, 32, 32)
    with pytest.raises(TypeError, match="widht"):
        create_model("simgan_refiner", widht=4)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        RefinerConfig(channels=2)


def test_discriminator_scores_every_patch():
    d = PatchDiscriminator(PatchDiscriminatorConfig(channels=1, width=4))
    assert d(torch.zeros(5, 1, 36, 60, dtype=torch.uint8)).shape == (5, 1, 9, 15)


def test_losses_match_hand_computation():
    real = torch.tensor([[[[2.0, -1.0]]]])  # BCE(x, 1) = softplus(-x)
    fake = torch.tensor([[[[0.5]]], [[[-3.0]]]])  # BCE(x, 0) = softplus(x)
    want_d = 0.5 * ((_softplus(-2.0) + _softplus(1.0)) / 2 + (_softplus(0.5) + _softplus(-3.0)) / 2)
    assert discriminator_loss(real, fake).item() == pytest.approx(want_d, rel=1e-6)
    assert refiner_adversarial_loss(fake).item() == pytest.approx(
        (_softplus(-0.5) + _softplus(3.0)) / 2, rel=1e-6)
    a, b = torch.tensor([0.1, 0.5, 0.9, 0.0]), torch.tensor([0.2, 0.5, 0.6, 0.4])
    assert self_regularisation_loss(a, b, 2.0).item() == pytest.approx(2.0 * (0.1 + 0 + 0.3 + 0.4) / 4)
    p_ref = torch.tensor([[1.0, -2.0], [0.5, 0.0]], requires_grad=True)
    p_syn = torch.tensor([[0.0, 1.0], [0.5, 2.0]], requires_grad=True)
    con = label_consistency_loss(p_ref, p_syn, 0.5)
    assert con.item() == pytest.approx(0.5 * (1 + 3 + 0 + 2) / 4)
    con.backward()
    assert p_syn.grad is None  # the synthetic answer is the target, not a thing to move
    assert torch.allclose(p_ref.grad, 0.5 / 4 * torch.tensor([[1.0, -1.0], [0.0, -1.0]]))


def _history_run(seed: int) -> ImageHistory:
    h = ImageHistory(capacity=6, seed=seed)
    for v in (1.0, 3.0, 4.0, 5.0):
        h.mix(torch.full((4, 1, 2, 2), 0.0))
        h.push(torch.full((4, 1, 2, 2), v))
    return h


def test_history_mixes_half_current_half_old_and_replaces_at_random():
    h = ImageHistory(capacity=6, seed=1)
    first = torch.full((4, 1, 2, 2), 1.0)
    assert h.mix(first) is first  # empty history: the current batch alone
    h.push(first)  # half a batch goes in
    assert len(h) == 2
    mixed = h.mix(torch.full((4, 1, 2, 2), 2.0))
    assert mixed[:2].eq(2.0).all() and mixed[2:].eq(1.0).all()
    for v in (3.0, 4.0):
        h.push(torch.full((4, 1, 2, 2), v))
    assert len(h) == 6 and sorted(h._images.flatten().unique().tolist()) == [1.0, 3.0, 4.0]
    h.push(torch.full((4, 1, 2, 2), 5.0))  # full: two random slots overwritten
    assert len(h) == 6 and int(h._images.eq(5.0).all(dim=(1, 2, 3)).sum()) == 2
    with pytest.raises(ValueError, match="capacity"):
        ImageHistory(0)


def test_history_sampling_is_deterministic_given_the_seed():
    runs = [_history_run(s) for s in (7, 7)]
    assert torch.equal(runs[0]._images, runs[1]._images)
    draws = [h.mix(torch.zeros(8, 1, 2, 2)) for h in runs]
    assert torch.equal(draws[0], draws[1])
    others = [_history_run(s)._images for s in range(8, 14)]
    assert any(not torch.equal(o, runs[0]._images) for o in others)


def _domains(n=96, seed=0):
    """Dark synthetic squares and bright, textured real ones (8x12 grayscale)."""
    rng = np.random.default_rng(seed)
    syn = rng.integers(50, 70, (n, 8, 12)).astype(np.uint8)
    real = (rng.integers(150, 200, (n, 8, 12))).astype(np.uint8)
    return syn, real


TINY = dict(batch_size=16, refiner_width=8, refiner_blocks=1, discriminator_width=4,
            pretrain_discriminator=5, history=64, log_every=10, lr=2e-3)


@pytest.mark.parametrize("bf16", [False, True])
def test_training_is_deterministic_given_the_seed(one_thread, bf16):
    syn, real = _domains()
    runs = [train_refiner(syn, real, SimGANConfig(steps=6, seed=s, bf16=bf16, **TINY))
            for s in (3, 3, 4)]
    same = [torch.equal(a, b) for a, b in zip(runs[0].refiner.state_dict().values(),
                                              runs[1].refiner.state_dict().values(), strict=True)]
    assert all(same) and runs[0].log == runs[1].log
    assert not torch.equal(runs[0].refiner.out.weight, runs[2].refiner.out.weight)


@pytest.mark.parametrize("bf16", [False, True])
def test_refiner_moves_synthetic_images_toward_the_real_domain(one_thread, bf16):
    syn, real = _domains()
    tr = train_refiner(syn, real, SimGANConfig(steps=150, self_reg=0.05, seed=0, bf16=bf16, **TINY))
    assert tr.refiner.out.weight.is_contiguous()  # handed back in the default layout
    refined = refine_images(tr.refiner, syn)
    gap_before = abs(float(real.mean()) - float(syn.mean()))
    gap_after = abs(float(real.mean()) - float(refined.mean()))
    assert gap_after < 0.5 * gap_before
    assert {"loss_refiner_adv", "loss_self_reg", "loss_discriminator", "d_acc_real",
            "d_acc_refined"} <= set(tr.log[-1]) and tr.log[-1]["step"] == 150


def test_strong_self_regularisation_keeps_the_refiner_close_to_its_input(one_thread):
    syn, real = _domains()
    tr = train_refiner(syn, real, SimGANConfig(steps=60, self_reg=50.0, seed=0, **TINY))
    assert mean_abs_change(syn, refine_images(tr.refiner, syn)) < 3.0


def _contrast(x: torch.Tensor) -> torch.Tensor:
    return x.std(dim=(1, 2, 3)).unsqueeze(1) * 255.0


def test_label_consistency_pins_what_the_probe_reads_and_nothing_else(one_thread):
    # the real domain is brighter and has more contrast; the probe reads the contrast
    # only, so with the consistency term the refiner may add light but not contrast
    syn, real = _domains()
    free = train_refiner(syn, real, SimGANConfig(steps=150, self_reg=0.05, seed=0, **TINY))
    pinned = train_refiner(syn, real, SimGANConfig(steps=150, self_reg=0.05, seed=0,
                                                   consistency=1.0, **TINY), probe=_contrast)
    assert "loss_consistency" in pinned.log[-1] and "loss_consistency" not in free.log[-1]
    out = {name: refine_images(t.refiner, syn).astype(float) for name, t in
           (("free", free), ("pinned", pinned))}
    shift = {k: float((v.mean(axis=(1, 2)) - syn.mean(axis=(1, 2))).mean()) for k, v in out.items()}
    contrast = {k: float((v.std(axis=(1, 2)) - syn.std(axis=(1, 2))).mean()) for k, v in out.items()}
    assert shift["free"] > 30 and shift["pinned"] > 30
    assert contrast["free"] > 3 and abs(contrast["pinned"]) < 0.3 * contrast["free"]


def test_consistency_needs_a_probe():
    syn, real = _domains()
    with pytest.raises(ValueError, match="needs a label probe"):
        train_refiner(syn, real, SimGANConfig(steps=1, consistency=1.0, **TINY))
    with pytest.raises(ValueError, match="consistency"):
        SimGANConfig(consistency=-1.0)


def test_the_weight_average_is_what_comes_back_when_asked_for(one_thread):
    syn, real = _domains()
    online = train_refiner(syn, real, SimGANConfig(steps=4, seed=1, **TINY)).refiner
    # a vanishing decay follows the online weights: the average is updated after every
    # refiner update and is the refiner handed back
    follow = train_refiner(syn, real, SimGANConfig(steps=4, seed=1, ema=1e-9, **TINY)).refiner
    slow = train_refiner(syn, real, SimGANConfig(steps=4, seed=1, ema=0.999, **TINY)).refiner
    for name, w in online.state_dict().items():
        assert torch.allclose(follow.state_dict()[name], w, atol=1e-6), name
    assert not torch.allclose(slow.out.weight, online.out.weight)
    assert not any(p.requires_grad for p in slow.parameters()) and not slow.training
    with pytest.raises(ValueError, match="ema must be in"):
        SimGANConfig(ema=1.0)


def test_mean_abs_change_is_in_gray_levels():
    a = np.zeros((3, 4, 5), np.uint8)
    b = a.copy()
    b[0, 0, 0], b[2, 3, 4] = 255, 3  # no uint8 wrap-around: |0 - 255| is 255
    assert mean_abs_change(a, b, chunk=2) == pytest.approx(258 / a.size)
    assert mean_abs_change(b, a) == mean_abs_change(a, b)
    with pytest.raises(ValueError, match="shapes differ"):
        mean_abs_change(a, b[:2])


def test_refiner_checkpoint_round_trips(tmp_path):
    from models.checkpoint import save_checkpoint

    r = Refiner(RefinerConfig(width=4, blocks=1))
    torch.nn.init.normal_(r.out.weight)
    save_checkpoint(tmp_path / "r.pt", r, None, None, 0, {}, model_name="simgan_refiner")
    back = load_model(tmp_path / "r.pt")
    x = torch.rand(2, 1, 8, 12)
    assert torch.equal(back(x), r(x))


def test_bad_inputs_say_what_is_wrong():
    syn, real = _domains()
    with pytest.raises(ValueError, match=r"synthetic images are \(8, 12\) but real images are \(8, 10\)"):
        train_refiner(syn, real[:, :, :10], SimGANConfig(steps=1, **TINY))
    with pytest.raises(TypeError, match="real images must be uint8"):
        train_refiner(syn, real.astype(np.float32), SimGANConfig(steps=1, **TINY))
    with pytest.raises(ValueError, match="no synthetic images"):
        train_refiner(syn[:0], real, SimGANConfig(steps=1, **TINY))
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        SimGANConfig(batch_size=1)
