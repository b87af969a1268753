"""Time of ONE landmark training step on the CPU: forward, the soft-argmax coordinate loss
(:func:`models.landmark_losses.landmark_loss`, Wing by default), backward and an AdamW
step, on a batch of 32 face crops at each model's own size, for

- ``hourglass_s`` (128 px) and ``landmark_resnet_s`` (112 px),
- K = 68, 500 and 1001 points (the 68 head and the two dense heads),
- float32; float32 + channels_last (faster on an AVX2-only CPU, but not what training
  runs: docs/landmarks.md); bf16 autocast + channels_last (what ``TrainConfig.cpu_amp``
  turns on where the CPU has native bf16),
- 1 and 2 intra-op threads.

Each configuration: warm-up steps, then ``--repeats`` runs of ``--steps`` timed steps;
a run's time is its median step, the row shows the median, min and max over runs. The
issue's goal: <= 150 ms a step of 32 faces with the dense head on one core. Data loading
and augmentation are not in it (crops are cached once; the augmentation has its own cost).

    python -m benchmarks.bench_landmark_step [--quick] [--models landmark_resnet_s]
                                             [--points 68 1001] [--threads 1]

Prints a table and writes benchmarks/results/landmark_step.json (``--quick``: a batch of
8, two steps, one run, K = 68 and 500, one thread; ``landmark_step_quick.json``). The
machine should be otherwise idle: on a shared one, quote medians.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch

from benchmarks.common import machine, print_table, save
from models.landmark_losses import landmark_loss
from models.registry import create_model

GOAL_MS = 150.0
PRECISIONS = ("fp32", "fp32+cl", "bf16+cl")  # cl: channels_last
MODELS = ("hourglass_s", "landmark_resnet_s")
POINTS = (68, 500, 1001)


def _step_fn(name: str, k: int, precision: str, batch: int, loss: str, seed: int = 0):
    """A closure running one training step of a fresh model on a fixed batch, at
    ``precision`` (one of :data:`PRECISIONS`)."""
    bf16 = precision == "bf16+cl"
    torch.manual_seed(seed)
    model = create_model(name, num_points=k).train()
    size = model.input_size
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, 3, size, size), generator=g, dtype=torch.uint8)
    points = torch.rand(batch, k, 2, generator=g) * (0.6 * size) + 0.2 * size
    if precision != "fp32":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4},
                             {"params": rest, "weight_decay": 0.0}], lr=1e-3)

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            out = model(x)
            total = landmark_loss(out, points, crop_size=size, stride=model.stride,
                                  coord=loss)["landmarks"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        return float(total)

    return step, size


def measure(name: str, k: int, precision: str, threads: int, batch: int, steps: int,
            repeats: int, warmup: int, loss: str) -> dict:
    torch.set_num_threads(threads)
    step, size = _step_fn(name, k, precision, batch, loss)
    for _ in range(warmup):  # allocator, oneDNN primitive caches
        step()
    runs = []
    for _ in range(repeats):
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        runs.append(statistics.median(times) * 1000)
    ms = statistics.median(runs)
    return {"model": name, "input_px": size, "points": k,
            "precision": precision, "threads": threads, "batch": batch, "ms_median": round(ms, 1),
            "ms_min": round(min(runs), 1), "ms_max": round(max(runs), 1),
            "img_s": round(batch / ms * 1000), "runs_ms": [round(r, 1) for r in runs]}


def add_ratios(rows: list[dict]) -> None:
    """``speedup`` (fp32 ms / this ms, the other precisions' rows), ``vs_68`` (this ms / the same
    model's 68-point ms) and ``vs_hourglass`` (hourglass ms / this ms, resnet rows)."""
    key = {(r["model"], r["points"], r["precision"], r["threads"]): r["ms_median"] for r in rows}
    for r in rows:
        m, k, p, t = r["model"], r["points"], r["precision"], r["threads"]
        if p != "fp32" and (m, k, "fp32", t) in key:
            r["speedup"] = round(key[(m, k, "fp32", t)] / r["ms_median"], 2)
        if (m, 68, p, t) in key:
            r["vs_68"] = round(r["ms_median"] / key[(m, 68, p, t)], 2)
        if m != "hourglass_s" and ("hourglass_s", k, p, t) in key:
            r["vs_hourglass"] = round(key[("hourglass_s", k, p, t)] / r["ms_median"], 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--points", nargs="+", type=int, default=list(POINTS))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per run")
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--loss", default="wing", help="landmark_loss coord term (wing, l1, smooth_l1)")
    ap.add_argument("--quick", action="store_true", help="batch 8, 2 steps, 1 run, K 68/500, "
                    "1 thread; results to *_quick.json")
    args = ap.parse_args()
    if args.quick:
        args.batch, args.steps, args.repeats, args.warmup = 8, 2, 1, 1
        args.points, args.threads = [68, 500], [1]
    rows = []
    for threads in args.threads:
        for name in args.models:
            for k in args.points:
                for prec in args.precisions:
                    r = measure(name, k, prec, threads, args.batch, args.steps, args.repeats,
                                args.warmup, args.loss)
                    print(f"  {name} K={k} {r['precision']} {threads} thread(s): "
                          f"{r['ms_median']} ms", flush=True)
                    rows.append(r)
    add_ratios(rows)
    print_table(rows, ["model", "input_px", "points", "precision", "threads", "batch", "ms_median",
                       "ms_min", "ms_max", "img_s", "speedup", "vs_68", "vs_hourglass"])
    dense = [r for r in rows if r["model"] == "landmark_resnet_s" and r["points"] > 68
             and r["threads"] == 1 and r["precision"] == "bf16+cl" and r["batch"] == 32]
    if dense:
        worst = max(dense, key=lambda r: r["ms_median"])
        verdict = "meets" if worst["ms_median"] <= GOAL_MS else "misses"
        print(f"goal: dense head, 32 faces, one core <= {GOAL_MS:.0f} ms: landmark_resnet_s "
              f"{verdict} it ({worst['ms_median']} ms at K={worst['points']})")
    name = "landmark_step" + ("_quick" if args.quick else "")
    payload = {"machine": machine(), "load_avg_at_end": list(_loadavg()), "loss": args.loss,
               "goal_ms": GOAL_MS, "rows": rows}
    print(f"wrote {save(name, payload)}")


def _loadavg() -> tuple[float, ...]:
    """Other work on the machine at the end (a shared box slows every number)."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return ()


if __name__ == "__main__":
    main()
