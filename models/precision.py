"""Whether bf16 pays on this machine's CPU.

bf16 autocast (with channels_last) made the landmark CNNs ~2x and the SimGAN refiner
2-3x faster on a CPU with AVX512-BF16; on a CPU without native bf16 (AVX2 only) PyTorch
emulates it and the same landmark training step took 11x longer than in float32
(8.3 s vs 0.75 s for 32 faces on one core, ``benchmarks/bench_landmark_step.py``). So a
recipe's request for bf16 on the CPU is honoured only where the CPU has it.
``SYNTHLOOP_CPU_BF16=1`` / ``0`` overrides the detection (tests, odd hardware).
"""

from __future__ import annotations

import functools
import logging
import os

import torch

log = logging.getLogger(__name__)

ENV_VAR = "SYNTHLOOP_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX on this CPU (as PyTorch detects them), unless overridden."""
    forced = os.environ.get(ENV_VAR)
    if forced in ("0", "1"):
        return forced == "1"
    return _detected()


@functools.cache
def _detected() -> bool:
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def use_bf16(device: torch.device, asked: bool, what: str) -> bool:
    """``asked`` for bf16 on ``device``: yes on a GPU, on a CPU only with native bf16 (a
    one-line log otherwise, naming ``what`` is then trained in float32)."""
    if not asked:
        return False
    if device.type != "cpu" or cpu_has_native_bf16():
        return True
    log.warning("%s: this CPU has no native bf16 (AVX512-BF16 or AMX), training in float32 "
                "(emulated bf16 was 11x slower); %s=1 forces bf16", what, ENV_VAR)
    return False
