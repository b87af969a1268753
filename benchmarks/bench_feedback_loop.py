"""Closed loop vs open loop at equal compute, on a labeled target domain.

    python -m benchmarks.bench_feedback_loop [--seeds 0 1 2] [--rounds 3] [--quick]
    python -m benchmarks.bench_feedback_loop --real DIR      # labeled real eyes (labels.csv)
    python -m benchmarks.bench_feedback_loop --real DIR --distribution FILE.json  # start elsewhere
    python -m benchmarks.bench_feedback_loop --task landmarks --real ../shared/data/real/lfpw-train
    python -m benchmarks.bench_feedback_loop --real DIR --refine-method mean-patch  # both arms refine
    python -m benchmarks.bench_feedback_loop --real DIR --update labels  # closed: labels only
    python -m benchmarks.bench_feedback_loop --real DIR --round-start scratch  # fresh weights a round

Both arms run the same flow (``feedback-loop``) with the same number of rounds, synthetic
samples per round and training steps per round; the open loop keeps the initial
distribution, the closed loop lets the error analysis re-weight it. The target defaults to
the built-in *simulated* shifted domain ``sim-shifted-v2`` (gaze and head pose skewed
down and to one side, darker and noisier images, another camera pipeline; labels with
gaze and head pose; see ``synth/targets.py``); ``--target-version v1`` runs the milder
MPIIGaze-like skew (results then go to ``feedback_loop_v1.json``). The loop splits it into an
analysis part and a held-out part; the table reports the held-out error per round (mean
and spread over seeds) and the closed loop's gain over the open loop after the last round.

On the simulated target a third arm, the *oracle*, runs the open loop from the target's
own scene distribution (which the loop never sees): the best any re-weighting of the
factors could do at this budget, so the closed loop's gain can be read against it.

Every loop is an MLflow parent run with one child run per round (experiment
synthloop-gaze) and has its rows in the lineage catalog. A finished loop is read back
from the catalog, not rerun. Writes benchmarks/results/feedback_loop.json and the plot
benchmarks/results/feedback_loop.png.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import machine, print_table, results_dir, save
from synth.targets import target_name
from synthloop.gaze.spec import LOOP_TARGET_VERSION
from synthloop.loop.config import (
    REFINE_METHOD_NAMES,
    ROUND_START_CHOICES,
    TRANSFER_FIT_NAMES,
    UPDATE_NAMES,
    resolve_round_start,
)
from synthloop.refine_methods import MEAN_PATCH_STRENGTH, POSE_MEAN_PATCH_STRENGTH
from synthloop.taskspec import get_task


def _run(params) -> tuple[dict, float]:
    from flows.feedback_loop import feedback_loop

    t0 = time.perf_counter()
    state = feedback_loop(params, return_state=True)
    res = state.result()  # raises what the flow raised
    return res, time.perf_counter() - t0


def _plot(rows: list[dict], rounds: int, path: Path, title: str, unit: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for mode, colour in (("open", "#999999"), ("closed", "#c44e52"), ("oracle", "#55a868")):
        per_seed = [r["errors"] for r in rows if r["mode"] == mode]
        if not per_seed:
            continue
        for e in per_seed:
            ax.plot(range(len(e)), e, color=colour, alpha=0.3, lw=1)
        m = np.mean(np.array([e[:rounds] for e in per_seed]), 0)
        ax.plot(range(rounds), m, "o-", color=colour, lw=2, label=f"{mode} loop (mean)")
    ax.set_xlabel("round")
    ax.set_ylabel(f"held-out target error ({unit})")
    ax.set_xticks(range(rounds))
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=["gaze", "landmarks"], default="gaze")
    ap.add_argument("--transfer-fit", choices=TRANSFER_FIT_NAMES, default=TRANSFER_FIT_NAMES[0],
                    help="landmarks: how the label transfer is fitted")
    ap.add_argument("--transfer-steps", type=int, default=None,
                    help="landmarks: label-transfer steps of the mlp fit")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n-per-round", type=int, default=8000)
    ap.add_argument("--steps-per-round", type=int, default=600)
    ap.add_argument("--real", help="labeled target (labels.csv); default: the built-in simulation")
    ap.add_argument("--distribution", help="scene distribution JSON both arms start from "
                    "(default: the task's default distribution)")
    ap.add_argument("--target-n", type=int, default=3000, help="size of the simulated target")
    ap.add_argument("--target-version", default=LOOP_TARGET_VERSION, choices=["v1", "v2"],
                    help="simulated target version (synth/targets.py; the loop's default: v2)")
    ap.add_argument("--refine-method", choices=REFINE_METHOD_NAMES,
                    help="refine every round's batch toward the analysis part in both arms "
                         "(mean-patch; simgan takes --refine-steps)")
    ap.add_argument("--refine-steps", type=int, default=0, help="SimGAN refiner steps a round")
    ap.add_argument("--refine-strength", type=float,
                    help="mean-patch / pose-mean-patch: how far toward the analysis part's mean "
                         f"image (default: the method's, {MEAN_PATCH_STRENGTH:g} / "
                         f"{POSE_MEAN_PATCH_STRENGTH:g})")
    ap.add_argument("--mirror-eye", choices=["L", "R"],
                    help="gaze, both arms: the real eyes of this side mirrored onto the other's")
    ap.add_argument("--update", choices=UPDATE_NAMES, default=UPDATE_NAMES[0],
                    help="what the closed arm's update moves (synthloop loop --update)")
    ap.add_argument("--round-start", choices=ROUND_START_CHOICES, default=ROUND_START_CHOICES[0],
                    help="both arms: where each round's training starts (synthloop loop "
                         "--round-start)")
    ap.add_argument("--quick", action="store_true", help="tiny budget: a smoke run, not a result")
    ap.add_argument("--name", help="results file name (default: from the task and target)")
    a = ap.parse_args(argv)
    a.round_start = resolve_round_start(a.task, a.round_start)  # recorded as what it meant
    if a.quick:
        a.seeds, a.rounds, a.n_per_round, a.steps_per_round, a.target_n = [0], 2, 512, 20, 200

    import torch

    torch.set_num_threads(int(os.environ.get("SYNTHLOOP_BENCH_THREADS", min(2, os.cpu_count() or 1))))
    from synthloop.cli.common import prefect_api
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    if a.task == "landmarks" and not a.real:
        print("--task landmarks needs --real (images + .pts, e.g. ../shared/data/real/lfpw-train)",
              file=sys.stderr)
        return 2
    if a.real:
        real, kind = a.real, "real"
    else:
        from synth.targets import write_simulated_target

        real = settings.root / "targets" / f"bench-{target_name(a.target_version)}-n{a.target_n}-s7"
        if not (real / "labels.csv").is_file():
            write_simulated_target(real, a.target_n, 7, labeled=True, label_shift=True,
                                   version=a.target_version)
        real, kind = str(real), "simulated"
    from flows.feedback_loop import LoopParams

    start = None
    if a.distribution:
        from synth.distribution import read_distribution

        try:  # a bad file fails here, naming itself, not inside a flow run
            read_distribution(a.distribution)
        except ValueError as e:
            print(e, file=sys.stderr)
            return 2
        start = str(Path(a.distribution).resolve())
    arms = [("open", True, start), ("closed", False, start)]
    if kind == "simulated":
        from synth.targets import shifted_eye_distribution

        oracle = Path(real).parent / f"oracle-{Path(real).name}.json"
        oracle.write_text(shifted_eye_distribution(version=a.target_version).dumps())
        arms.append(("oracle", True, str(oracle)))
    rows = []
    with prefect_api(settings):  # the loop's Prefect server, stopped with us however we end
        for seed in a.seeds:
            for mode, open_loop, dist_path in arms:
                p = LoopParams(task=a.task, real=real, rounds=a.rounds, seed=seed,
                               open_loop=open_loop, transfer_steps=a.transfer_steps,
                               transfer_fit=a.transfer_fit,
                               n_per_round=a.n_per_round, steps_per_round=a.steps_per_round,
                               patience=None, distribution_path=dist_path,
                               refine_steps=a.refine_steps,
                               refine_method=a.refine_method or "simgan",
                               refine_strength=a.refine_strength or 0.0,
                               mirror_eye=a.mirror_eye or "none", update=a.update,
                               round_start=a.round_start)
                res, dt = _run(p)
                errors = [r["real_error"] for r in res["rounds"]]
                rows.append({"mode": mode, "seed": seed, "errors": errors,
                             "loop_id": res["loop_id"], "seconds": round(dt, 1),
                             "distributions": [r["distribution_id"] for r in res["rounds"]]})
                print(f"seed {seed} {rows[-1]['mode']:>6}: " + "  ".join(f"{e:.2f}" for e in errors)
                      + f"  ({dt:.0f} s)", file=sys.stderr)

    table = []
    for mode, _, _ in arms:
        per = [r["errors"] for r in rows if r["mode"] == mode]
        row = {"mode": mode}
        for k in range(a.rounds):
            vals = [e[k] for e in per]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            row[f"round {k}"] = f"{statistics.mean(vals):.2f} ± {sd:.2f}"
        table.append(row)
    last = a.rounds - 1
    open_last = statistics.mean(r["errors"][last] for r in rows if r["mode"] == "open")
    closed_last = statistics.mean(r["errors"][last] for r in rows if r["mode"] == "closed")
    gain = 100.0 * (open_last - closed_last) / open_last
    print_table(table, ["mode", *[f"round {k}" for k in range(a.rounds)]])
    oracle_rows = [r["errors"][last] for r in rows if r["mode"] == "oracle"]
    oracle_last = statistics.mean(oracle_rows) if oracle_rows else None
    if oracle_last is not None:
        print(f"oracle (open loop on the target's own scene distribution): {oracle_last:.2f} deg, "
              f"{100 * (open_last - oracle_last) / open_last:.1f}% below the open loop")
    print(f"\nafter {a.rounds} rounds the closed loop's held-out error is {abs(gain):.1f}% "
          f"{'lower' if gain >= 0 else 'higher'} than "
          f"the open loop's ({closed_last:.2f} vs {open_last:.2f}; {kind} target, "
          f"{len(a.seeds)} seed(s), {a.n_per_round} samples and {a.steps_per_round} steps per round)")
    unit = get_task(a.task).error_unit
    target_label = Path(real).name if kind == "real" else target_name(a.target_version)
    print(f"(errors in {unit})")
    name = ("feedback_loop" if a.task == "gaze" else f"feedback_loop_{a.task}") \
        + (f"_{a.target_version}" if kind == "simulated" and a.target_version != LOOP_TARGET_VERSION
           else "") \
        + (f"_{Path(real).resolve().name}" if kind == "real" and a.task == "gaze" else "") \
        + ("_quick" if a.quick else "")
    name = a.name or name
    out_dir = results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{name}.png"
    out = save(name, {"machine": machine(), "args": vars(a), "target": real, "target_kind": kind,
                      "rows": rows, "table": table, "gain_pct_last_round": gain,
                      "closed_last": closed_last, "open_last": open_last,
                      "oracle_last": oracle_last, "plot": str(png)})
    # the results are on disk before the plot, so a plotting error loses no run
    _plot(rows, a.rounds, png,
          f"closed vs open loop, {kind} target {target_label} ({len(a.seeds)} seeds)", unit)
    print(f"wrote {out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
