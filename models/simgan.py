"""Training a SimGAN refiner (Shrivastava et al., CVPR 2017) on unlabeled images: pure
torch, no tracking; :mod:`synthloop.refine` runs it as a command and logs it.

One step of :func:`train_refiner`:

1. ``refiner_updates`` refiner updates, each on a fresh synthetic batch: adversarial loss
   of the refined patches (labelled real) + ``self_reg`` x mean L1 to the synthetic input
   (+ ``consistency`` x mean L1 between a frozen label probe's answers on the refined and
   the synthetic batch, when a probe is given);
2. one discriminator update: a real batch against a fake batch that is half the current
   refiner's output and half the history of earlier refined images
   (:class:`models.history_buffer.ImageHistory`), then the newest refined images go into
   the history.

Before that, the paper's pre-training: ``pretrain_refiner`` steps of self-regularisation
alone (a no-op for the zero-initialised residual refiner, which starts as the identity,
kept for refiners that do not) and ``pretrain_discriminator`` discriminator steps
against the unrefined images, so the refiner's first adversarial gradients come from a
discriminator that already tells the domains apart.

Batches are drawn per step from ``(seed, step)`` (:class:`models.data.ArraySource`), models
are initialised under ``seed``: the same inputs and seed give the same refiner on the
same machine and thread count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.data import ArraySource
from models.ema import WeightEMA
from models.history_buffer import ImageHistory
from models.patch_discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from models.precision import use_bf16
from models.refiner import Refiner, RefinerConfig, to_uint8
from models.simgan_losses import (
    discriminator_loss,
    label_consistency_loss,
    refiner_adversarial_loss,
    self_regularisation_loss,
)

__all__ = ["RefinerTraining", "SimGANConfig", "load_refiner", "mean_abs_change", "refine_images",
           "train_refiner"]

_SYN, _REAL, _PRE, _SYN_D = 0, 1, 2, 3  # sampling streams: each its own seed offset


@dataclass(frozen=True)
class SimGANConfig:
    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-4
    self_reg: float = 10.0  # weight of mean |refined - synthetic| ([0, 1] pixels); 10 measured best of 0.3-10 (docs/refinement.md)
    refiner_updates: int = 2  # the paper's K_g per discriminator update (K_d = 1)
    pretrain_refiner: int = 0
    pretrain_discriminator: int = 200
    history: int = 2048  # refined images kept for the discriminator
    refiner_width: int = 32
    refiner_blocks: int = 4
    discriminator_width: int = 32
    seed: int = 0
    log_every: int = 50
    device: str = "cpu"
    # bf16 autocast for the convolutions and channels_last tensors, on a GPU or a CPU with
    # native bf16 (models.precision; float32 on others, where it is emulated and slower):
    # training steps 2.0x (eyes) and 3.1x (faces) faster on a 2-core AVX512-bf16 CPU
    # (benchmarks/bench_refiner_speed.py); losses, the residual sum and the optimiser
    # stay float32
    bf16: bool = False
    # the refiner handed back is an exponential moving average of its weights (decay per
    # refiner update) instead of the last online weights; None: the last weights. The
    # online refiner's output drifts with the adversarial game, so its last step is a draw
    # (measured: from near-identity to streaky texture across seeds, docs/refinement.md)
    ema: float | None = None
    # weight of the label-consistency term, per unit of the probe's output (for eyes:
    # degrees of gaze); 0 leaves it out. Needs ``train_refiner(probe=...)``
    consistency: float = 0.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "refiner_updates", "history", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"SimGANConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("SimGANConfig.batch_size must be >= 2 (half of it is history)")
        if min(self.self_reg, self.consistency, self.pretrain_refiner,
               self.pretrain_discriminator) < 0:
            raise ValueError("self_reg, consistency and the pre-training steps must be >= 0")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ValueError(f"SimGANConfig.ema must be in (0, 1) or None, got {self.ema}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _precision(device: torch.device, bf16: bool) -> Callable[[], Any]:
    """A factory of contexts: bf16 autocast when on, nothing otherwise."""
    if bf16:
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


@dataclass
class RefinerTraining:
    refiner: Refiner
    discriminator: PatchDiscriminator
    config: SimGANConfig
    log: list[dict[str, float]] = field(default_factory=list)  # one record per log_every steps


def _channels(images: np.ndarray) -> int:
    if images.ndim == 3:
        return 1
    if images.ndim == 4 and images.shape[-1] == 3:
        return 3
    raise ValueError(f"images must be (N, H, W) grayscale or (N, H, W, 3) RGB uint8, got "
                     f"shape {images.shape}")


def _check_pair(synthetic: np.ndarray, real: np.ndarray) -> int:
    for name, a in (("synthetic", synthetic), ("real", real)):
        if a.dtype != np.uint8:
            raise TypeError(f"{name} images must be uint8, got {a.dtype}")
        if len(a) == 0:
            raise ValueError(f"no {name} images to train the refiner on")
    if synthetic.shape[1:] != real.shape[1:]:
        raise ValueError(f"synthetic images are {synthetic.shape[1:]} but real images are "
                         f"{real.shape[1:]}: the refiner keeps the size, so both must match")
    return _channels(synthetic)


def train_refiner(synthetic: np.ndarray, real: np.ndarray, cfg: SimGANConfig,
                  on_log: Callable[[dict[str, float]], None] | None = None,
                  probe: Callable[[Tensor], Tensor] | None = None) -> RefinerTraining:
    """Train a refiner from ``synthetic`` toward ``real`` (uint8, same shape per image;
    labels play no part). ``on_log(record)`` is called every ``log_every`` steps with
    the step's losses and the discriminator's accuracy on real and refined patches.
    ``probe`` (needed when ``cfg.consistency > 0``): a frozen function of a float image
    batch ``(B, C, H, W)`` in [0, 1] whose answer the refiner must keep
    (:func:`models.simgan_losses.label_consistency_loss`); it runs in float32, and a
    module is moved to ``cfg.device`` first."""
    channels = _check_pair(synthetic, real)
    if cfg.consistency > 0 and probe is None:
        raise ValueError("SimGANConfig.consistency > 0 needs a label probe (train_refiner(probe=...))")
    if cfg.consistency == 0:
        probe = None
    dev = torch.device(cfg.device)
    if isinstance(probe, torch.nn.Module):
        probe = probe.to(dev).eval()
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        refiner = Refiner(RefinerConfig(channels, cfg.refiner_width, cfg.refiner_blocks)).to(dev)
        disc = PatchDiscriminator(PatchDiscriminatorConfig(channels, cfg.discriminator_width)).to(dev)
    bf16 = use_bf16(dev, cfg.bf16, "SimGAN refiner")
    layout = torch.channels_last if bf16 else torch.contiguous_format
    refiner, disc = refiner.to(memory_format=layout), disc.to(memory_format=layout)
    precision = _precision(dev, bf16)
    opt_r = torch.optim.Adam(refiner.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    syn = ArraySource(synthetic, cfg.batch_size, cfg.seed * 4 + _SYN)
    syn_d = ArraySource(synthetic, cfg.batch_size, cfg.seed * 4 + _SYN_D)
    real_src = ArraySource(real, cfg.batch_size, cfg.seed * 4 + _REAL)
    pre = ArraySource(synthetic, cfg.batch_size, cfg.seed * 4 + _PRE)
    history = ImageHistory(cfg.history, seed=cfg.seed)
    out = RefinerTraining(refiner, disc, cfg)

    def draw(src: ArraySource, k: int) -> Tensor:
        return src.batch(k)["image"].to(dev).float().div_(255.0).contiguous(memory_format=layout)

    for k in range(cfg.pretrain_refiner):
        x = draw(pre, k)
        with precision():
            refined = refiner(x)
        loss = self_regularisation_loss(refined.float(), x, 1.0)
        opt_r.zero_grad(set_to_none=True)
        loss.backward()
        opt_r.step()
    for k in range(cfg.pretrain_discriminator):
        _discriminator_step(disc, opt_d, refiner, draw(real_src, k), draw(syn_d, k), history,
                            precision)
    average = WeightEMA(refiner, cfg.ema) if cfg.ema is not None else None
    base = cfg.pretrain_discriminator  # the main phase continues the real/syn_d streams
    for step in range(cfg.steps):
        adv = reg = con = 0.0
        for j in range(cfg.refiner_updates):
            x = draw(syn, step * cfg.refiner_updates + j)
            with precision():
                refined = refiner(x).float()
                logits = disc(refined).float()
            l_adv = refiner_adversarial_loss(logits)
            l_reg = self_regularisation_loss(refined, x, cfg.self_reg)
            loss = l_adv + l_reg
            if probe is not None:
                with torch.no_grad():
                    before = probe(x.float())
                l_con = label_consistency_loss(probe(refined), before, cfg.consistency)
                loss = loss + l_con
                con += l_con.item()
            opt_r.zero_grad(set_to_none=True)
            loss.backward()
            opt_r.step()
            if average is not None:
                average.update(refiner, step * cfg.refiner_updates + j)
            adv, reg = adv + l_adv.item(), reg + l_reg.item()
        d = _discriminator_step(disc, opt_d, refiner, draw(real_src, base + step),
                                draw(syn_d, base + step), history, precision)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            rec = {"step": step + 1, "loss_refiner_adv": adv / cfg.refiner_updates,
                   "loss_self_reg": reg / cfg.refiner_updates, **d}
            if probe is not None:
                rec["loss_consistency"] = con / cfg.refiner_updates
            out.log.append(rec)
            if on_log is not None:
                on_log(rec)
    if average is not None:
        out.refiner = average.model
    out.refiner.to(memory_format=torch.contiguous_format).eval()  # refines like any refiner
    disc.to(memory_format=torch.contiguous_format).eval()
    return out


def _discriminator_step(disc, opt, refiner, real: Tensor, syn: Tensor, history: ImageHistory,
                        precision: Callable[[], Any]) -> dict[str, float]:
    with torch.no_grad(), precision():
        refined = refiner(syn).float()
    fake = history.mix(refined)
    with precision():
        real_logits, fake_logits = disc(real).float(), disc(fake).float()
    loss = discriminator_loss(real_logits, fake_logits)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    history.push(refined)
    return {"loss_discriminator": loss.item(),
            "d_acc_real": (real_logits > 0).float().mean().item(),
            "d_acc_refined": (fake_logits < 0).float().mean().item()}


def load_refiner(path, channels: int | None = None) -> torch.nn.Module:
    """The refiner in ``path`` (a refiner.pt: SimGAN's or a mean patch, one of
    :data:`models.refiners.REFINER_TYPES`), in eval mode, checked to take
    ``channels``-channel images when given; anything else is a DataFormatError naming the
    file. Weights only: a checkpoint never runs code."""
    from pathlib import Path

    from models.refiners import REFINER_TYPES
    from models.registry import load_model
    from realdata.errors import DataFormatError

    net = load_model(path)
    if not isinstance(net, REFINER_TYPES):
        raise DataFormatError(Path(path), f"holds a {type(net).__name__}, not a refiner")
    if channels is not None and net.cfg.channels != channels:
        raise DataFormatError(Path(path), f"refines {net.cfg.channels}-channel images; the batch "
                              f"has {channels}")
    return net.eval()


@torch.no_grad()
def refine_images(refiner: Refiner, images: np.ndarray, chunk: int = 512,
                  condition: np.ndarray | None = None) -> np.ndarray:
    """Refine uint8 images ``(N, H, W)`` or ``(N, H, W, 3)``; returns uint8 of the same
    shape (rounded, clipped to [0, 255]). ``condition``: the ``(N, ...)`` per-image values a
    conditioned refiner reads (:func:`models.refiners.conditioned_on`), which it needs."""
    from models.refiners import conditioned_on

    _channels(images)
    column = conditioned_on(refiner)
    if column is not None and (condition is None or len(condition) != len(images)):
        raise ValueError(f"this refiner needs each image's {column!r} beside the "
                         f"{len(images)} images")
    if column is None and condition is not None:
        raise ValueError("this refiner takes images alone, not a per-image condition")
    dev = next(refiner.parameters()).device
    was_training = refiner.training
    refiner.eval()
    out = np.empty_like(images)
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + chunk]))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        y = to_uint8(refiner(x.to(dev)) if column is None
                     else refiner(x.to(dev), np.asarray(condition[i:i + chunk])))
        y = y[:, 0] if images.ndim == 3 else y.permute(0, 2, 3, 1)
        out[i:i + chunk] = y.cpu().numpy()
    refiner.train(was_training)
    return out


def mean_abs_change(before: np.ndarray, after: np.ndarray, chunk: int = 4096) -> float:
    """Mean absolute difference of two uint8 image arrays, in gray levels (0-255): how
    much a refiner changed its images."""
    if before.shape != after.shape:
        raise ValueError(f"shapes differ: {before.shape} vs {after.shape}")
    total = sum(float(np.abs(before[i:i + chunk].astype(np.int16) - after[i:i + chunk]).sum())
                for i in range(0, len(before), chunk))
    return total / max(before.size, 1)
