"""Face-generation throughput at 128x128 RGB on ONE CPU core: the renderer alone with
ICT-FaceKit (when ../shared has it) and with the built-in head, and end to end to disk.

    python -m benchmarks.bench_face_generation [--quick]

Target: >= 300 img/s on one core at 128x128 (the unoptimised prototype in
notes/render.md reached ~90). One core means: torch.set_num_threads(1), single-threaded
numba kernels, and one BLAS thread (set before numpy loads, below). Each row is the
median of 5 runs of 256 images after a warm-up (which includes numba compilation or
loading it from the cache). The machine may be shared: each row also reports the rate
by the process's CPU time and the load average, to tell contention from slowness.
Prints a table and writes benchmarks/results/face_generation.json.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy/torch load their BLAS

import argparse  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import machine, print_table, save  # noqa: E402
from synth.face_distribution import default_face_distribution  # noqa: E402
from synth.face_fallback import fallback_face_model  # noqa: E402
from synth.face_generator import FaceGenerator, sample_face_scenes  # noqa: E402
from synth.face_loading import DEFAULT_PATH, load_face_model  # noqa: E402
from synth.generate_faces import generate_face_batch  # noqa: E402


def rates(fn, repeats: int) -> dict:
    """Run ``fn`` (returns items done) ``repeats`` times: items/s by wall clock (median,
    min, max) and by process CPU time (median)."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        k = fn()
        wall.append(k / (time.perf_counter() - t0))
        cpu.append(k / max(time.process_time() - c0, 1e-9))
    return {"median": statistics.median(wall), "min": min(wall), "max": max(wall),
            "cpu_median": statistics.median(cpu), "runs": repeats}


def renderer_rate(model, size: int, n: int, repeats: int) -> dict:
    gen = FaceGenerator(default_face_distribution(size), model=model)
    scenes = sample_face_scenes(gen.dist, n, seed=0)
    t0 = time.perf_counter()
    next(iter(gen.iter_chunks(gen.chunk, 0, scenes={k: v[: gen.chunk] for k, v in scenes.items()})))
    warmup = time.perf_counter() - t0

    def run() -> int:
        for _ in gen.iter_chunks(n, 0, scenes=scenes):
            pass
        return n

    r = rates(run, repeats)
    r["warmup_s"] = warmup
    return r


def end_to_end_rate(model, n: int, repeats: int) -> dict:
    tmp = Path(tempfile.mkdtemp())

    def run() -> int:
        out = tmp / "b"
        shutil.rmtree(out, ignore_errors=True)
        generate_face_batch(out, n=n, seed=0, model=model)
        return n

    try:
        return rates(run, repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and repeats (smoke run)")
    args = ap.parse_args()
    n, reps = (64, 3) if args.quick else (256, 5)
    torch.set_num_threads(1)
    models = [("fallback", fallback_face_model())]
    if DEFAULT_PATH.is_file():
        models.insert(0, ("ict-facekit", load_face_model(DEFAULT_PATH)))
    rows = []

    def add(config, model_name, size, r):
        rows.append({"config": config, "model": model_name, "size": size, "threads": 1,
                     "img_s_median": round(r["median"]), "img_s_min": round(r["min"]),
                     "img_s_max": round(r["max"]), "img_s_cpu_time": round(r["cpu_median"]),
                     "warmup_s": round(r.get("warmup_s", 0.0), 1), "runs": r["runs"],
                     "load_avg_1m": round(os.getloadavg()[0], 2)})

    for name, model in models:
        add("renderer", name, 128, renderer_rate(model, 128, n, reps))
    if not args.quick:
        add("renderer", models[0][0], 256, renderer_rate(models[0][1], 256, n // 2, reps))
    add("generate_face_batch to disk", models[0][0], 128,
        end_to_end_rate(models[0][1], n, max(2, reps // 2)))

    cols = ["config", "model", "size", "threads", "img_s_median", "img_s_min", "img_s_max",
            "img_s_cpu_time", "warmup_s", "runs", "load_avg_1m"]
    print_table(rows, cols)
    first = rows[0]  # ICT-FaceKit when present: the target is about the real model
    print(f"\none-core median at 128x128 with {first['model']}: {first['img_s_median']:,} img/s "
          f"(target >= 300; by CPU time {first['img_s_cpu_time']:,})")
    path = save("face_generation" + ("_quick" if args.quick else ""),
                {"machine": machine(), "n": n, "rows": rows, "numpy": np.__version__,
                 "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
