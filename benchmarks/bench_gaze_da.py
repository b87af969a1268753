"""Source-only vs DANN vs DALN on the built-in shifted target (a simulation), same budget
and seeds, angular error on a LABELED held-out part of the target.

    python -m benchmarks.bench_gaze_da [--steps 2000] [--seeds 0 1 2] [--workers 2] [--quick]

The target's training part is used without labels (as real unlabeled eyes would be);
its test part, rendered with another seed, is only used to score. Every run is logged
to MLflow (experiment synthloop-gaze), so the three methods can be compared in the UI.
Prints a table (mean and spread over seeds) and writes benchmarks/results/gaze_da.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.common import machine, print_table, save

METHODS = ("source_only", "dann", "daln")


def _one(args: tuple) -> dict:
    method, seed, steps, source, target_train, target_test, out_root, n_source, batch_size, extra = args
    import torch

    torch.set_num_threads(1)
    from synthloop.gaze_jobs import evaluate_gaze_model, train_gaze
    from synthloop.settings import get_settings

    settings = get_settings()
    out = Path(out_root) / f"{method}-s{seed}"
    kind = Path(out_root).name.removeprefix("runs-")
    t0 = time.perf_counter()
    run = train_gaze(settings, method=method, target=target_train, steps=steps, seed=seed, out=str(out),
                     source=source, n_source=n_source, batch_size=batch_size, register=False,
                     run_name=f"bench-{kind}-{method}-s{seed}", log=lambda *_: None, train_overrides=extra)
    res = evaluate_gaze_model(str(out), target_test)
    return {"method": method, "seed": seed, "error_deg": res["mean_angular_error_deg"],
            "median_deg": res["median_angular_error_deg"], "run_id": run.run_id,
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--n-source", type=int, default=20_000)
    ap.add_argument("--n-target", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--trade-off", type=float, default=None)
    ap.add_argument("--appearance-only", action="store_true",
                    help="target shifts appearance only (gaze/head pose as the source)")
    ap.add_argument("--quick", action="store_true", help="tiny budget: a smoke run, not a result")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.seeds, args.n_source, args.n_target = 60, [0], 2048, 600

    from synth.targets import write_simulated_target
    from synthloop.gaze_jobs import prepare_source
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    work = settings.root / "bench-gaze-da"
    kind = "app" if args.appearance_only else "target"
    tgt_train = work / f"{kind}-train-n{args.n_target}"
    tgt_test = work / f"{kind}-test-n2000"
    shift = not args.appearance_only
    if not tgt_train.exists():
        write_simulated_target(tgt_train, args.n_target, seed=101, labeled=False, label_shift=shift)
    if not tgt_test.exists():
        write_simulated_target(tgt_test, 2000, seed=202, labeled=True, label_shift=shift)
    source = prepare_source(settings, source=None, n=args.n_source, seed=0, log=print)
    from synthloop import tracking

    # create/migrate the MLflow store once, before workers race to do it
    tracking.configure(settings.tracking_uri, "gaze", settings.artifact_root)
    extra = {} if args.trade_off is None else {"trade_off": args.trade_off}
    jobs = [(m, s, args.steps, str(source.path), str(tgt_train), str(tgt_test), str(work / f"runs-{kind}"),
             args.n_source, args.batch_size, extra) for s in args.seeds for m in args.methods]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as ex:
        rows = list(ex.map(_one, jobs))
    wall = time.perf_counter() - t0

    table = []
    base = None
    for m in args.methods:
        errs = [r["error_deg"] for r in rows if r["method"] == m]
        mean = statistics.fmean(errs)
        sd = statistics.stdev(errs) if len(errs) > 1 else 0.0
        if m == "source_only":
            base = mean
        table.append({"method": m, "mean_error_deg": round(mean, 2), "std_deg": round(sd, 2),
                      "per_seed": " ".join(f"{e:.2f}" for e in errs),
                      "vs_source_only": "" if base is None or m == "source_only"
                      else f"{100 * (mean - base) / base:+.1f}%"})
    print_table(table, ["method", "mean_error_deg", "std_deg", "per_seed", "vs_source_only"])
    print(f"\n{len(rows)} runs, {args.steps} steps each, batch {args.batch_size}+{args.batch_size}, "
          f"{wall / 60:.1f} min wall on {args.workers} workers; target = simulated "
          f"{'appearance-only' if args.appearance_only else 'label + appearance'} shift "
          f"({tgt_test}), NOT real data")
    path = save("gaze_da" + ("_appearance" if args.appearance_only else "") + ("_quick" if args.quick else ""), {
        "machine": machine(), "args": vars(args), "rows": rows, "table": table, "wall_s": wall,
        "target": "simulated (synth.targets.SIMULATED_TARGET_NAME)"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
