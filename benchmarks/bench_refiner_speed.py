"""SimGAN refiner throughput: training steps and refining, float32 vs bf16 + channels_last
(``SimGANConfig.bf16``, ``synthloop refine --bf16``), for eyes and faces.

A training step is what :func:`models.simgan.train_refiner` runs per step: two refiner
updates and one discriminator update, each on ``--batch`` images (history mixing
included). Each configuration runs ``--steps`` steps after one warm-up step, ``--repeats``
times, the configurations interleaved so that a busy machine slows them alike; the row
shows the median, and the ratio to float32 of the same images. Refining (inference,
float32 as written to a batch) is timed the same way, in images per second.

    python -m benchmarks.bench_refiner_speed [--quick] [--threads 1] [--kinds eyes faces]

Prints a table and writes benchmarks/results/refiner_speed.json (``--quick``: tiny
models, one repeat, ``refiner_speed_quick.json``). On a GPU (``--device cuda``) the same
table is the GPU path's throughput.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from benchmarks.common import machine, print_table, save

KINDS = {"eyes": (36, 60), "faces": (128, 128, 3)}


def _images(kind: str, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *KINDS[kind]), dtype=np.uint8)


def _train_seconds(kind: str, bf16: bool, a) -> float:
    """Seconds per training step of one ``train_refiner`` call (warm-up step excluded)."""
    from models.simgan import SimGANConfig, train_refiner

    syn, real = _images(kind, 4 * a.batch, 0), _images(kind, 4 * a.batch, 1)
    cfg = dict(batch_size=a.batch, pretrain_discriminator=0, refiner_width=a.width,
               refiner_blocks=a.blocks, discriminator_width=a.width, bf16=bf16,
               device=a.device, log_every=10_000)
    train_refiner(syn, real, SimGANConfig(steps=1, **cfg))  # warm-up: kernels, allocator
    _sync(a.device)
    t0 = time.perf_counter()
    train_refiner(syn, real, SimGANConfig(steps=a.steps, **cfg))
    _sync(a.device)
    return (time.perf_counter() - t0) / a.steps


def _refine_rate(kind: str, a) -> float:
    from models.refiner import Refiner, RefinerConfig
    from models.simgan import refine_images

    channels = 3 if kind == "faces" else 1
    net = Refiner(RefinerConfig(channels, a.width, a.blocks)).to(a.device)
    images = _images(kind, 8 * a.batch, 2)
    refine_images(net, images[: a.batch])
    t0 = time.perf_counter()
    refine_images(net, images)
    _sync(a.device)
    return len(images) / (time.perf_counter() - t0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--threads", type=int,
                    default=int(os.environ.get("SYNTHLOOP_BENCH_THREADS", "1")))
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32, help="images per update")
    ap.add_argument("--width", type=int, default=32, help="refiner and discriminator width")
    ap.add_argument("--blocks", type=int, default=4, help="refiner ResNet blocks")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="a smoke run, not results")
    a = ap.parse_args(argv)
    if a.quick:
        a.steps, a.repeats, a.batch, a.width, a.blocks = 1, 1, 4, 4, 1
    torch.set_num_threads(a.threads)
    variants = [(kind, bf16) for kind in a.kinds for bf16 in (False, True)]
    seconds: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
    rates: dict[str, list[float]] = {k: [] for k in a.kinds}
    for r in range(a.repeats):
        for v in variants:
            seconds[v].append(_train_seconds(*v, a))
            print(f"  run {r + 1}/{a.repeats} {v[0]} {'bf16+cl' if v[1] else 'float32'}: "
                  f"{1000 * seconds[v][-1]:.0f} ms/step", flush=True)
        for kind in a.kinds:
            rates[kind].append(_refine_rate(kind, a))
    rows = []
    for kind, bf16 in variants:
        med = statistics.median(seconds[(kind, bf16)])
        base = statistics.median(seconds[(kind, False)])
        rows.append({"images": kind, "precision": "bf16+channels_last" if bf16 else "float32",
                     "ms_per_step": round(1000 * med, 1),
                     "min_ms": round(1000 * min(seconds[(kind, bf16)]), 1),
                     "max_ms": round(1000 * max(seconds[(kind, bf16)]), 1),
                     "train_img_s": round(3 * a.batch / med, 1),  # 2 refiner + 1 D updates
                     "speedup": round(base / med, 2),
                     "minutes_per_1000_steps": round(1000 * med / 60, 1),
                     "refine_img_s": round(statistics.median(rates[kind]), 1)})
    cols = ["images", "precision", "ms_per_step", "min_ms", "max_ms", "speedup",
            "minutes_per_1000_steps", "refine_img_s"]
    print_table(rows, cols)
    path = save("refiner_speed" + ("_quick" if a.quick else ""),
                {"machine": machine(), "threads": a.threads, "device": a.device,
                 "batch": a.batch, "width": a.width, "blocks": a.blocks, "steps": a.steps,
                 "repeats": a.repeats, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
