"""Commands that run the feedback loop: loop, and demo (a small loop on embedded defaults)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from models.names import METHODS
from synthloop.cli.common import EXIT_OK, positive_int, prefect_api, settings_with_home
from synthloop.loop.config import LOOP_DEFAULTS
from synthloop.taskspec import TASK_NAMES


def cmd_loop(a: argparse.Namespace) -> int:
    """The feedback loop through its Prefect flow (embedded server unless PREFECT_API_URL)."""
    return _run_loop(
        task=a.task, real=a.real, rounds=a.rounds, seed=a.seed, open_loop=a.open_loop,
        n_per_round=a.n_per_round, steps_per_round=a.steps_per_round, method=a.method,
        patience=None if a.no_early_stop else a.patience, min_improvement=a.min_improvement,
        holdout_frac=a.holdout_frac, as_json=a.json)


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
    code = _run_loop(task="gaze", real=str(real) if real else None, rounds=a.rounds, seed=a.seed,
                     open_loop=False,
                     n_per_round=a.n, steps_per_round=a.steps, method=d["method"],
                     patience=d["patience"], min_improvement=d["min_improvement"],
                     holdout_frac=d["holdout_frac"], as_json=False)
    from catalog.engine import redact

    settings = get_settings()
    home = settings.root
    print(f"plots      {home / 'loops'}/<loop id>/round-*/{{slice_errors,distribution_change}}.png")
    print(f"catalog    {redact(settings.catalog)}")
    print(f"home       {home}  (override with SYNTHLOOP_HOME; `synthloop ui` opens the dashboards)")
    return code


def _run_loop(*, task: str, real: str | None, as_json: bool, seed: int, open_loop: bool,
              **loop: Any) -> int:
    from catalog.engine import redact
    from synthloop.taskspec import get_task

    settings = settings_with_home()
    real = get_task(task).loop_real_data(settings, real)
    from flows.feedback_loop import LoopParams, feedback_loop
    from synthloop.loop.real import load_real

    params = LoopParams(task=task, real=real, seed=seed, open_loop=open_loop, **loop)
    load_real(params.config())  # bad real data fails here, in one line, before any server starts
    with prefect_api(settings):
        state = feedback_loop(params, return_state=True)
    res = state.result()  # re-raises what the flow raised (a data error names its file)
    mode = "open" if open_loop else "closed"
    if as_json:
        sys.stdout.flush()
        print(json.dumps({"task": task, "mode": mode, **res}, default=str), flush=True)
        return EXIT_OK
    print()
    print(f"loop {res['loop_id']} ({mode} loop, seed {seed}) on {real}")
    for r in res["rounds"]:
        print(f"  round {r['round']}: held-out real error {r['real_error']:.3f}  "
              f"distribution {r['distribution_id']}  batch {r['batch_id']}")
    print(f"stopped: {res['stopped']}")
    print(f"files: {settings.root / 'loops' / res['loop_id']}   MLflow: {redact(settings.tracking_uri)}")
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    d = LOOP_DEFAULTS
    demo = sub.add_parser("demo", help="the main job: a small feedback loop on real labeled eyes "
                          "(../shared) or the built-in simulated target (embedded stores)")
    demo.add_argument("-n", type=positive_int, default=3000, help="synthetic samples per round")
    demo.add_argument("--steps", type=positive_int, default=300, help="training steps per round")
    demo.add_argument("--rounds", type=positive_int, default=d["rounds"])
    demo.add_argument("--seed", type=int, default=d["seed"])
    demo.add_argument("--simulated", action="store_true", help="use the built-in simulated "
                      "target even where real labeled eyes are beside the project")
    demo.set_defaults(func=cmd_demo)

    lp = sub.add_parser("loop", help="run the feedback loop: generate, validate, train, evaluate "
                        "on real, analyse, update the distribution")
    lp.add_argument("--task", choices=TASK_NAMES, default="gaze")
    lp.add_argument("--real", help="labeled real data: labels.csv (gaze; default: the built-in "
                    "simulated target, written under the project home) or images with .pts files "
                    "(landmarks; required)")
    lp.add_argument("--rounds", type=positive_int, default=d["rounds"])
    lp.add_argument("--seed", type=int, default=d["seed"])
    lp.add_argument("--open-loop", action="store_true", help="keep the initial distribution (baseline)")
    lp.add_argument("--n-per-round", type=positive_int, default=d["n_per_round"],
                    help="synthetic samples per round")
    lp.add_argument("--steps-per-round", type=positive_int, default=d["steps_per_round"],
                    help="training steps per round")
    lp.add_argument("--method", choices=METHODS, default=d["method"])
    lp.add_argument("--patience", type=positive_int, default=d["patience"],
                    help="rounds without progress before stopping")
    lp.add_argument("--min-improvement", type=float, default=d["min_improvement"],
                    help="relative held-out gain that counts as progress")
    lp.add_argument("--no-early-stop", action="store_true", help="run every round (fixed budget)")
    lp.add_argument("--holdout-frac", type=float, default=d["holdout_frac"],
                    help="share of the real data held out (scored only, never analysed)")
    lp.add_argument("--json", action="store_true", help="last line of stdout: one JSON object")
    lp.set_defaults(func=cmd_loop)
