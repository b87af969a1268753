"""`synthloop generate` end to end, start-up included: eye batches rendered in the command's
own process and fanned out over 1 and 2 Dask worker processes, and face batches.

    python -m benchmarks.bench_generate_e2e [--n 200000] [--faces 2048] [--seeds 0 1 2] [--quick]

Each row runs the real command in a fresh process (interpreter start, imports, the
renderer's load or compile, rendering, shards, checksums, metadata, the atomic rename)
and times it from start to exit; seeds are interleaved across the configurations so that
a busy spell of this shared machine hits them alike. img/s per core divides by the CPU
seconds the command used (user + system, its children included). The Dask fan-out's
per-core efficiency is rate(2 workers) / (2 x rate(1 worker)), for eyes and for faces
(face batches in shards of 512, so that two workers have shards to share).

Targets (issue 15): >= 6,000 img/s for 200,000 eyes on 2 cores; fan-out efficiency >= 85%.
Prints a table and writes benchmarks/results/generate_e2e.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, print_table, save


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_generate(args: list[str], out: Path) -> dict:
    """One `synthloop generate` in a fresh process: wall and CPU seconds."""
    shutil.rmtree(out, ignore_errors=True)
    cpu0, t0 = _children_cpu(), time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "synthloop.cli", "generate", *args, "--out", str(out)],
                       capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if r.returncode != 0:
        sys.exit(f"generate {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "cpu_s": cpu, "compiled_now": "compiling the eye renderer" in r.stderr,
            "face_model": _face_model(r.stderr)}


def _face_model(stderr: str) -> str | None:
    """The face model a face batch was rendered with, as the command reports it (the
    built-in head renders ~2x faster than ICT-FaceKit: a row must say which it timed)."""
    lines = [ln.split(":", 1)[1].strip() for ln in stderr.splitlines() if ln.startswith("face model:")]
    return lines[-1] if lines else None


FACES = ["--task", "landmarks", "--shard-size", "512"]


def _efficiency(runs: dict[str, list[dict]], what: str) -> tuple[float, list[float]]:
    """rate(2 workers) / (2 x rate(1 worker)) per seed, and the median: a ratio from
    interleaved runs holds on a shared machine where absolute rates drift."""
    one, two = runs[f"{what}, Dask 1 worker (--workers 1)"], runs[f"{what}, Dask 2 workers (--workers 2)"]
    ratios = [r2["img_s"] / (2 * r1["img_s"]) for r1, r2 in zip(one, two, strict=True)]
    return statistics.median(ratios), ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="eyes per batch (default 200,000)")
    ap.add_argument("--faces", type=int, default=2048, help="faces per batch (default 2,048)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true", help="a smoke run: 6,000 eyes, 8 faces, one seed")
    ap.add_argument("--name", default="generate_e2e")
    a = ap.parse_args()
    if a.quick:
        a.n, a.faces, a.seeds, a.name = 6000, 8, [0], f"{a.name}_quick"
    configs = {
        "eyes, in-process (--workers 0)": (a.n, ["--task", "gaze", "--workers", "0"]),
        "eyes, Dask 1 worker (--workers 1)": (a.n, ["--task", "gaze", "--workers", "1"]),
        "eyes, Dask 2 workers (--workers 2)": (a.n, ["--task", "gaze", "--workers", "2"]),
        "faces, in-process (--workers 0)": (a.faces, FACES + ["--workers", "0"]),
        "faces, Dask 1 worker (--workers 1)": (a.faces, FACES + ["--workers", "1"]),
        "faces, Dask 2 workers (--workers 2)": (a.faces, FACES + ["--workers", "2"]),
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    runs: dict[str, list[dict]] = {k: [] for k in configs}
    try:
        # first eye batches compile the renderer into the kernel cache, for the command's
        # threads and for a worker's one, if this machine has not yet (reported, not
        # counted: every later process only loads it)
        warm = [run_generate(["--task", "gaze", "-n", str(min(a.n, 30_000)), "--seed", "99",
                              "--workers", w], tmp / "warm") for w in ("0", "1")]
        for seed in a.seeds:
            for name, (n, args) in configs.items():
                rec = run_generate([*args, "-n", str(n), "--seed", str(seed)], tmp / "out")
                rec.update(n=n, seed=seed, img_s=n / rec["wall_s"], img_s_per_core=n / rec["cpu_s"])
                runs[name].append(rec)
                print(f"  {name:<36} seed {seed}: {rec['wall_s']:6.1f} s  {rec['img_s']:8,.0f} img/s",
                      flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for name, recs in runs.items():
        rows.append({"config": name, "n": recs[0]["n"],
                     "wall_s_median": round(statistics.median(r["wall_s"] for r in recs), 1),
                     "img_s_median": round(statistics.median(r["img_s"] for r in recs)),
                     "img_s_min": round(min(r["img_s"] for r in recs)),
                     "img_s_max": round(max(r["img_s"] for r in recs)),
                     "img_s_per_core_median": round(statistics.median(r["img_s_per_core"] for r in recs)),
                     "runs": len(recs), "face_model": recs[0]["face_model"]})
    by = {r["config"]: r for r in rows}
    efficiency, ratios = _efficiency(runs, "eyes")
    face_efficiency, face_ratios = _efficiency(runs, "faces")
    print()
    print_table(rows, ["config", "n", "wall_s_median", "img_s_median", "img_s_min", "img_s_max",
                       "img_s_per_core_median", "runs"])
    best = max(by[c]["img_s_median"] for c in by if c.startswith("eyes"))
    print(f"\nbest eyes end to end: {best:,} img/s (target >= 6,000 on 2 cores); Dask fan-out "
          f"per-core efficiency 1 -> 2 workers: {efficiency:.1%} (target >= 85%), faces "
          f"{face_efficiency:.1%}; "
          f"renderer compiled in the warm-up: {[w['compiled_now'] for w in warm]}; face model: "
          f"{by['faces, in-process (--workers 0)']['face_model']}")
    out = save(a.name, {"machine": machine(), "cores": os.cpu_count(), "rows": rows,
                        "runs": runs, "fanout_efficiency": efficiency,
                        "fanout_efficiency_per_seed": ratios,
                        "face_fanout_efficiency": face_efficiency,
                        "face_fanout_efficiency_per_seed": face_ratios, "warmup": warm,
                        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
