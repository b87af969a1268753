"""Source-only vs DANN vs DALN on the built-in shifted target (a simulation), same budget
and seeds, angular error on a LABELED held-out part of the target.

    python -m benchmarks.bench_gaze_da [--steps 2000] [--seeds 0 1 2] [--workers 2] [--quick]
    python -m benchmarks.bench_gaze_da --real ../shared/data/real/mpiigaze-eyes-unlabeled

With ``--real DIR`` (unlabeled real eyes) there are no errors to report: the folder is
split into an adaptation part and a held-out part (manifests only, nothing copied), and
the table reports the domain gap on the held-out real eyes (MMD and Frechet distance
between the model's features on synthetic and real eyes, mean prediction entropy).

The target's training part is used without labels (as real unlabeled eyes would be);
its test part, rendered with another seed, is only used to score. Every run is logged
to MLflow (experiment synthloop-gaze), so the three methods can be compared in the UI.
Prints a table (mean and spread over seeds) and writes benchmarks/results/gaze_da.json.
"""

from __future__ import annotations

import argparse
import json
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
    from synthloop.gaze.evaluate import evaluate_gaze_model
    from synthloop.gaze.train import train_gaze
    from synthloop.settings import get_settings

    settings = get_settings()
    out = Path(out_root) / f"{method}-s{seed}"
    kind = Path(out_root).name.removeprefix("runs-")
    t0 = time.perf_counter()
    marker = out / "bench_run.json"  # a finished run is evaluated again, not retrained
    if marker.is_file():
        done = json.loads(marker.read_text())
        run_id, seconds = done["run_id"], done["seconds"]
    else:
        run = train_gaze(settings, method=method, target=target_train, steps=steps, seed=seed,
                         out=str(out), source=source, n_source=n_source, batch_size=batch_size,
                         register=False, run_name=f"bench-{kind}-{method}-s{seed}",
                         log=lambda *_: None, train_overrides=extra)
        run_id, seconds = run.run_id, time.perf_counter() - t0
        marker.write_text(json.dumps({"run_id": run_id, "seconds": seconds, "steps": steps}))
    res = evaluate_gaze_model(str(out), target_test)
    row = {"method": method, "seed": seed, "run_id": run_id, "train_seconds": seconds}
    if res.get("labeled"):
        row.update(error_deg=res["mean_angular_error_deg"], median_deg=res["median_angular_error_deg"])
    else:
        row.update({k: res[k] for k in ("mmd_rbf", "frechet_distance", "mean_prediction_entropy")})
    return row


def _split_real(real: Path, work: Path, holdout: int = 400) -> tuple[Path, Path]:
    """Two manifests over the real folder's images (absolute paths; nothing is copied)."""
    import csv

    rows = list(csv.DictReader((real / "manifest.csv").open()))
    paths = [str((real / r["image"]).resolve()) for r in rows]
    parts = {"real-adapt": paths[:-holdout], "real-heldout": paths[-holdout:]}
    for name, ps in parts.items():
        d = work / name
        d.mkdir(parents=True, exist_ok=True)
        with (d / "manifest.csv").open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["image"])
            w.writerows([p] for p in ps)
    return work / "real-adapt", work / "real-heldout"


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
    ap.add_argument("--real", type=Path, help="unlabeled real eyes (manifest.csv): report domain gap")
    ap.add_argument("--quick", action="store_true", help="tiny budget: a smoke run, not a result")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.seeds, args.n_source, args.n_target = 60, [0], 2048, 600

    from synth.targets import write_simulated_target
    from synthloop.batches import prepare_training_batch
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    work = settings.root / "bench-gaze-da"
    kind = "real" if args.real else ("app" if args.appearance_only else "target")
    tgt_train = work / f"{kind}-train-n{args.n_target}"
    tgt_test = work / f"{kind}-test-n2000"
    shift = not args.appearance_only
    if args.real:
        tgt_train, tgt_test = _split_real(args.real, work)
    if not tgt_train.exists():
        write_simulated_target(tgt_train, args.n_target, seed=101, labeled=False, label_shift=shift)
    if not tgt_test.exists():
        write_simulated_target(tgt_test, 2000, seed=202, labeled=True, label_shift=shift)
    source = prepare_training_batch(settings, "gaze", source=None, n=args.n_source, seed=0,
                                    log=print)
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

    labeled = "error_deg" in rows[0]
    metrics = ["error_deg"] if labeled else ["mmd_rbf", "frechet_distance", "mean_prediction_entropy"]
    table = []
    base: dict[str, float] = {}
    for m in args.methods:
        row: dict = {"method": m}
        for key in metrics:
            vals = [r[key] for r in rows if r["method"] == m]
            mean = statistics.fmean(vals)
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            if m == "source_only":
                base[key] = mean
            row[key] = f"{mean:.3f} +- {sd:.3f}"
            if key in base and m != "source_only":
                row[key] += f" ({100 * (mean - base[key]) / base[key]:+.1f}%)"
        row["per_seed"] = " ".join(f"{r[metrics[0]]:.2f}" for r in rows if r["method"] == m)
        table.append(row)
    print_table(table, ["method", *metrics, "per_seed"])
    what = (f"real unlabeled eyes ({args.real}), held-out part" if args.real else
            f"simulated {'appearance-only' if args.appearance_only else 'label + appearance'} shift "
            f"({tgt_test}), NOT real data")
    print(f"\n{len(rows)} runs, {args.steps} steps each, batch {args.batch_size}+{args.batch_size}, "
          f"{wall / 60:.1f} min wall on {args.workers} workers; target = {what}")
    suffix = "_real" if args.real else ("_appearance" if args.appearance_only else "")
    path = save("gaze_da" + suffix + ("_quick" if args.quick else ""), {
        "machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": rows, "table": table, "wall_s": wall,
        "target": what})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
