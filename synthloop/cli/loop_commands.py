"""Commands that run the feedback loop: loop, and demo (a small loop on embedded defaults)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from models.names import METHODS
from synthloop.cli.common import EXIT_OK, positive_int, prefect_api, settings_with_home
from synthloop.cli.loop_summary import SummaryContext, next_steps, summary_lines
from synthloop.loop.config import (
    LOOP_DEFAULTS,
    REFINE_METHOD_NAMES,
    ROUND_START_CHOICES,
    UPDATE_NAMES,
)
from synthloop.refine_methods import MEAN_PATCH_STRENGTH, POSE_MEAN_PATCH_STRENGTH
from synthloop.taskspec import TASK_NAMES


def cmd_loop(a: argparse.Namespace) -> int:
    """The feedback loop through its Prefect flow (embedded server unless PREFECT_API_URL)."""
    return _run_loop(
        task=a.task, real=a.real, rounds=a.rounds, seed=a.seed, open_loop=a.open_loop,
        n_per_round=a.n_per_round, steps_per_round=a.steps_per_round, method=a.method,
        patience=None if a.no_early_stop else a.patience, min_improvement=a.min_improvement,
        holdout_frac=a.holdout_frac, refine_steps=a.refine_steps, refine_method=a.refine_method,
        refine_strength=a.refine_strength or 0.0, mirror_eye=a.mirror_eye or "none", update=a.update,
        round_start=a.round_start, distribution_path=a.distribution or "",
        fresh=a.fresh, as_json=a.json,
        verbose=a.verbose)


def _patch_strength(text: str) -> float:
    """A patch strength on the command line: in (0, 4] (the form's 0 means the default)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 4.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 4], got {text}")
    return value


def cmd_demo(a: argparse.Namespace) -> int:
    """The main job on embedded defaults: a small closed feedback loop (generate,
    validate, train, evaluate, analyse, update; 3 rounds) on real labeled eyes when they
    are beside the project, else on the built-in simulated target; it says which."""
    from synthloop.settings import get_settings
    from synthloop.taskspec import get_task

    d = LOOP_DEFAULTS
    real = None if a.simulated else get_task("gaze").bundled_real_data(get_settings())
    print(f"real data: {real} (real labeled eyes, split by person)" if real else
          "real data: none beside the project; running on the built-in simulated target (a "
          "simulation, not real data)", file=sys.stderr)
    print(f"{a.rounds} rounds of {a.n:,} synthetic eyes and {a.steps} training steps each "
          "(20 s to a minute a round on 2 cores)", file=sys.stderr)
    loop = dict(rounds=a.rounds, n_per_round=a.n, steps_per_round=a.steps, method=d["method"],
                patience=d["patience"], min_improvement=d["min_improvement"],
                holdout_frac=d["holdout_frac"])
    real_opt = f" --real {real}" if real else ""
    baseline = (f"synthloop loop --open-loop{real_opt} --seed {a.seed} --rounds {a.rounds} "
                f"--n-per-round {a.n} --steps-per-round {a.steps}",
                "the open-loop baseline on the same budget: what the re-weighting bought")
    return _run_loop(task="gaze", real=str(real) if real else None, seed=a.seed, open_loop=False,
                     fresh=a.fresh, as_json=False, verbose=a.verbose, also=[baseline], **loop)


def _run_loop(*, task: str, real: str | None, as_json: bool, seed: int, open_loop: bool,
              fresh: bool, verbose: bool, also: list[tuple[str, str]] = (), **loop: Any) -> int:
    from synthloop.cli.common import quiet_terminal_logs
    from synthloop.taskspec import get_task

    settings = settings_with_home()
    real = get_task(task).loop_real_data(settings, real)
    from flows.feedback_loop import LoopParams, feedback_loop
    from synthloop.loop.real import load_real
    from synthloop.loop.rounds import initial_distribution

    params = LoopParams(task=task, real=real, seed=seed, open_loop=open_loop, fresh=fresh, **loop)
    cfg = params.config()
    load_real(cfg)  # bad real data or a bad distribution file fails here, in one line,
    initial_distribution(cfg)  # before any server starts
    quiet_terminal_logs(verbose)
    with prefect_api(settings):
        state = feedback_loop(params, return_state=True)
    res = state.result()  # re-raises what the flow raised (a data error names its file)
    mode = "open" if open_loop else "closed"
    if as_json:
        sys.stdout.flush()
        print(json.dumps({"task": task, "mode": mode, **res}, default=str), flush=True)
        return EXIT_OK
    ctx = _summary_context(settings, task, mode, seed, real)
    print()
    print("\n".join(summary_lines(res, ctx) + next_steps(res, ctx, also)))
    return EXIT_OK


def _summary_context(settings: Any, task: str, mode: str, seed: int, real: str) -> SummaryContext:
    import mlflow

    from synthloop.mlflow_links import ui_base
    from synthloop.taskspec import get_task
    from synthloop.tracking import experiment_name

    exp = mlflow.get_experiment_by_name(experiment_name(task))
    return SummaryContext(task=task, mode=mode, seed=seed, real=real,
                          unit=get_task(task).error_unit, home=str(settings.root),
                          tracking=settings.tracking_uri, catalog=settings.catalog,
                          mlflow_ui=ui_base(settings.tracking_uri),
                          experiment_id=exp.experiment_id if exp else None)


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fresh", action="store_true", help="start a new loop even if one with these "
                   "settings finished earlier (default: show that one's results; an "
                   "interrupted one is resumed)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show every log line of the flow and its tasks (the dashboard has them all)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    d = LOOP_DEFAULTS
    demo = sub.add_parser("demo", help="the main job: a small feedback loop on real labeled eyes "
                          "(../shared) or the built-in simulated target (embedded stores)")
    demo.add_argument("-n", type=positive_int, default=3000, help="synthetic samples per round")
    demo.add_argument("--steps", type=positive_int, default=300, help="training steps per round")
    demo.add_argument("--rounds", type=positive_int, default=d["rounds"], help="rounds to run")
    demo.add_argument("--seed", type=int, default=d["seed"],
                      help="random seed; the same seed continues (or repeats) the same loop")
    demo.add_argument("--simulated", action="store_true", help="use the built-in simulated "
                      "target even where real labeled eyes are beside the project")
    _output_options(demo)
    demo.set_defaults(func=cmd_demo)

    lp = sub.add_parser("loop", help="run the feedback loop: generate, validate, train, evaluate "
                        "on real, analyse, update the distribution")
    lp.add_argument("--task", choices=TASK_NAMES, default="gaze",
                    help="gaze: eye patches; landmarks: face crops with 68 points")
    lp.add_argument("--real", help="labeled real data: labels.csv (gaze; default: the built-in "
                    "simulated target, written under the project home) or images with .pts files "
                    "(landmarks; required)")
    lp.add_argument("--rounds", type=positive_int, default=d["rounds"],
                    help="most rounds to run (early stopping may end the loop sooner)")
    lp.add_argument("--seed", type=int, default=d["seed"],
                    help="random seed; the same seed and options continue (or repeat) the same loop")
    lp.add_argument("--open-loop", action="store_true", help="keep the initial distribution (baseline)")
    lp.add_argument("--distribution", metavar="JSON",
                    help="the scene distribution to start from (synthloop distribution --out "
                         "writes one; e.g. benchmarks/distributions/eyes-columbia-gaze-corners.json)"
                         "; default: the task's built-in one")
    lp.add_argument("--n-per-round", type=positive_int, default=d["n_per_round"],
                    help="synthetic samples per round")
    lp.add_argument("--steps-per-round", type=positive_int, default=d["steps_per_round"],
                    help="training steps per round")
    lp.add_argument("--method", choices=METHODS, default=d["method"],
                    help="training method: source_only, or a domain adaptation method that also "
                    "uses the unlabeled analysis part of the real data")
    lp.add_argument("--patience", type=positive_int, default=d["patience"],
                    help="rounds without progress before stopping")
    lp.add_argument("--min-improvement", type=float, default=d["min_improvement"],
                    help="relative held-out gain that counts as progress")
    lp.add_argument("--no-early-stop", action="store_true", help="run every round (fixed budget)")
    lp.add_argument("--holdout-frac", type=float, default=d["holdout_frac"],
                    help="share of the real data held out (scored only, never analysed)")
    lp.add_argument("--refine-steps", type=int, default=0,
                    help="refine each round's batch toward the analysis part's real images "
                         "(SimGAN) for this many refiner steps before training; 0 = no refinement")
    lp.add_argument("--refine-method", choices=REFINE_METHOD_NAMES, default="simgan",
                    help="mean-patch: instead, move each round's batch by the analysis part's "
                         "mean image minus its own (seconds, no training; no --refine-steps); "
                         "pose-mean-patch: the same at each head pose of the real eyes (gaze; "
                         "meta.csv's head_pose_P_deg); landmark-patch, real-context (landmarks): "
                         "the mean patch in the face's own coordinates, or each synthetic face "
                         "set into an analysis photograph aligned by the 68 points, the real "
                         "faces' points placed by the previous round's model (round 0 trains "
                         "on the rendered batch)")
    lp.add_argument("--refine-strength", type=_patch_strength,
                    help="--refine-method mean-patch / pose-mean-patch / landmark-patch: how far "
                         "toward the analysis part's mean image (1: all the way; default "
                         f"{POSE_MEAN_PATCH_STRENGTH:g} for pose-mean-patch, "
                         f"{MEAN_PATCH_STRENGTH:g} for the others)")
    lp.add_argument("--mirror-eye", choices=["L", "R"],
                    help="gaze: mirror the real eyes of this side onto the other's, yaw negated "
                         "(meta.csv 'eye' column), for training, analysis and refinement; the "
                         "models record it and `synthloop evaluate` does the same")
    lp.add_argument("--update", choices=UPDATE_NAMES, default=UPDATE_NAMES[0],
                    help="what a closed loop's update moves: all = the label factors (by the "
                         "real errors) and the appearance factors (fitted to the real images' "
                         "statistics); labels = the label factors only, appearance as the "
                         "starting distribution draws it")
    lp.add_argument("--round-start", choices=ROUND_START_CHOICES, default=ROUND_START_CHOICES[0],
                    help="where each round's training starts: warm = the previous round's "
                         "weights; scratch = fresh weights, so each round's model reflects its "
                         "own distribution alone at the same budget; default = the task's "
                         "(gaze: scratch, landmarks: warm)")
    lp.add_argument("--json", action="store_true", help="last line of stdout: one JSON object")
    _output_options(lp)
    lp.set_defaults(func=cmd_loop)
