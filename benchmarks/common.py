"""Small helpers shared by the benchmarks: timing with medians, a table, a JSON record."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def median_rate(fn: Callable[[], int], repeats: int) -> dict:
    """Run ``fn`` (returns items done) ``repeats`` times; items/s as median, min, max."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        k = fn()
        rates.append(k / (time.perf_counter() - t0))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": len(rates)}


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name: ``platform.processor()`` is empty on most Linux hosts, and
    results measured on two different machines must say which each came from."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    from models.precision import cpu_has_native_bf16

    # the vector ISA and native bf16 decide CPU speeds more than the core count: the same
    # benchmark on an AVX2-only host and an AVX512-BF16 one differ by 2-10x
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu": cpu_name(),
            "cores": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": cpu_has_native_bf16()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def print_table(rows: list[dict], cols: list[str]) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths, strict=True)))


def results_dir() -> Path:
    """Where results go: ``SYNTHLOOP_BENCH_DIR`` (the smoke tests' temporary folder) or
    ``benchmarks/results``; created if missing, since plots are written there before (or
    without) :func:`save`."""
    out = Path(os.environ.get("SYNTHLOOP_BENCH_DIR", RESULTS))
    out.mkdir(parents=True, exist_ok=True)
    return out


def save(name: str, payload: dict) -> Path:
    out = results_dir() / f"{name}.json"
    out.write_text(json.dumps(payload, indent=2) + "\n")
    return out
