"""Training throughput of one train_step (augmentation included), per DA method, in
images per second (source + target), on CPU threads and on CUDA when present.

    python -m benchmarks.bench_train_throughput [--steps 30] [--batch 64]

Prints a table and writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from benchmarks.common import machine, print_table, save
from models.train import TrainConfig, build, make_optimizer, train_step


def measure(method: str, device: str, threads: int, batch: int, steps: int, model: str) -> dict:
    torch.set_num_threads(threads)
    cfg = TrainConfig(model=model, method=method, steps=10_000, batch_size=batch, device=device, seed=0)
    net, meth = build(cfg)
    net, meth = net.to(device), meth.to(device)
    if device == "cuda":
        net = net.to(memory_format=torch.channels_last)
    opt = make_optimizer(net, meth, cfg)
    rng = np.random.default_rng(0)
    xs = torch.from_numpy(rng.integers(0, 255, (batch, 1, 36, 60), dtype=np.uint8)).to(device)
    ys = torch.from_numpy(rng.uniform(-0.5, 0.5, (batch, 2)).astype(np.float32)).to(device)
    xt = torch.from_numpy(rng.integers(0, 255, (batch, 1, 36, 60), dtype=np.uint8)).to(device)
    bs, bt = {"image": xs, "pitchyaw": ys}, ({"image": xt} if meth.needs_target else None)
    for k in range(3):  # warm-up (allocator, autotuning)
        train_step(net, meth, opt, bs, bt, k, cfg)
    times = []
    for k in range(steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_step(net, meth, opt, bs, bt, 3 + k, cfg)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    per_step = statistics.median(times)
    images = batch * (2 if bt is not None else 1)
    return {"method": method, "model": model, "device": device, "threads": threads, "batch": batch,
            "ms_per_step": round(per_step * 1000, 1), "images_per_s": round(images / per_step),
            "source_images_per_s": round(batch / per_step)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--model", default="gaze_resnet_s")
    ap.add_argument("--quick", action="store_true", help="5 steps, results to *_quick.json")
    args = ap.parse_args()
    if args.quick:
        args.steps = 5
    rows = []
    for threads in sorted({1, torch.get_num_threads()}):
        for m in ("source_only", "dann", "daln"):
            rows.append(measure(m, "cpu", threads, args.batch, args.steps, args.model))
    if torch.cuda.is_available():
        for m in ("source_only", "dann", "daln"):
            rows.append(measure(m, "cuda", torch.get_num_threads(), 256, args.steps, args.model))
    print_table(rows, ["method", "model", "device", "threads", "batch", "ms_per_step", "images_per_s",
                       "source_images_per_s"])
    name = "train_throughput" + ("_quick" if args.quick else "")
    print(f"wrote {save(name, {'machine': machine(), 'rows': rows})}")


if __name__ == "__main__":
    main()
