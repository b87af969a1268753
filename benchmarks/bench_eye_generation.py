"""Eye-generation throughput at 36x60 grayscale: renderer alone (eager and torch.compile'd)
on ONE CPU core, on all cores, on CUDA when present, and end to end to disk.

    python benchmarks/bench_eye_generation.py [--quick]

Targets (issue 2): >= 5,000 img/s on one CPU core, >= 200,000 img/s on an H200.
Prints a table and writes benchmarks/results/eye_generation.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import machine, median_rate, print_table, save
from synth.eye_distribution import default_eye_distribution
from synth.eye_generator import EyeGenerator, sample_scenes
from synth.generate import generate_batch


def renderer_rate(device: str, compiled: bool, chunk: int, n: int, repeats: int) -> dict:
    dist = default_eye_distribution()
    gen = EyeGenerator(dist, device=device, chunk=chunk, compiled=compiled)
    scenes = sample_scenes(dist, n, seed=0)
    t0 = time.perf_counter()
    next(iter(gen.iter_chunks(chunk, 0, scenes={k: v[:chunk] for k, v in scenes.items()})))
    warmup = time.perf_counter() - t0  # includes compilation when compiled

    def run() -> int:
        for _ in gen.iter_chunks(n, 0, scenes=scenes):
            pass
        if device == "cuda":
            torch.cuda.synchronize()
        return n

    r = median_rate(run, repeats)
    r["warmup_s"] = warmup
    return r


def end_to_end_rate(n: int, repeats: int) -> dict:
    tmp = Path(tempfile.mkdtemp())

    def run() -> int:
        out = tmp / "b"
        shutil.rmtree(out, ignore_errors=True)
        generate_batch(out, n=n, seed=0, compiled=False)
        return n

    try:
        return median_rate(run, repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and repeats (smoke run)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile rows")
    args = ap.parse_args()
    n, reps = (1024, 3) if args.quick else (8192, 5)
    rows = []
    all_threads = torch.get_num_threads()

    def add(name, device, threads, compiled, chunk, r):
        rows.append({"config": name, "device": device, "threads": threads, "compiled": compiled,
                     "chunk": chunk, "img_s_median": round(r["median"]), "img_s_min": round(r["min"]),
                     "img_s_max": round(r["max"]), "warmup_s": round(r.get("warmup_s", 0.0), 1),
                     "runs": r["runs"]})

    for compiled in ([False] if args.no_compile else [False, True]):
        for threads in sorted({1, all_threads}):
            torch.set_num_threads(threads)
            chunk = 128 if not compiled else 512
            add("renderer", "cpu", threads, compiled, chunk,
                renderer_rate("cpu", compiled, chunk, n, reps))
    torch.set_num_threads(all_threads)
    if torch.cuda.is_available():
        big = 1 << 17
        for compiled in ([False] if args.no_compile else [False, True]):
            add("renderer", "cuda", all_threads, compiled, 1 << 15,
                renderer_rate("cuda", compiled, 1 << 15, big * 4, reps))
    add("generate_batch to disk", "cpu", all_threads, False, 128, end_to_end_rate(n, max(2, reps // 2)))

    cols = ["config", "device", "threads", "compiled", "chunk", "img_s_median", "img_s_min",
            "img_s_max", "warmup_s", "runs"]
    print_table(rows, cols)
    one_core = [r["img_s_median"] for r in rows if r["device"] == "cpu" and r["threads"] == 1]
    print(f"\nbest one-core median: {max(one_core):,} img/s (target >= 5,000)")
    gpu = [r["img_s_median"] for r in rows if r["device"] == "cuda"]
    if gpu:
        print(f"best GPU median: {max(gpu):,} img/s (target >= 200,000)")
    path = save("eye_generation" + ("_quick" if args.quick else ""), {"machine": machine(), "n": n, "rows": rows,
                                   "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
