"""Commands on models: train, evaluate, tune, pseudo-label."""

from __future__ import annotations

import argparse
import json

from models.names import METHODS
from synthloop.cli.common import EXIT_OK, at_least, decay, log, positive_int, settings_with_home
from synthloop.errors import UsageError
from synthloop.taskspec import TASK_NAMES
from synthloop.tuning.space import OBJECTIVE_NAMES


def cmd_train(a: argparse.Namespace) -> int:
    from synthloop.taskspec import TrainRequest, get_task

    spec = get_task(a.task)
    if a.real_fraction is not None and not a.real_labeled:
        raise UsageError("--real-fraction is the share of each batch from --real-labeled: "
                         "give --real-labeled too")
    given = {} if a.real_fraction is None else {"real_fraction": a.real_fraction}
    run = spec.train(settings_with_home(), TrainRequest(
        method=a.method, steps=a.steps, seed=a.seed, out=a.out, target=a.target,
        real_labeled=a.real_labeled, real_subjects=a.real_subjects, source=a.source,
        n_source=a.n_source, **given,
        batch_size=a.batch_size, lr=a.lr, trade_off=a.trade_off, model=a.model,
        device=a.device, register=not a.no_register, refiner=a.refiner,
        mirror_eye=a.mirror_eye, ema=a.ema), log=log)
    for key, value in spec.describe_run(run):
        print(f"{key}\t{value}")
    return EXIT_OK


def cmd_evaluate(a: argparse.Namespace) -> int:
    from synthloop.model_refs import connect_for_models
    from synthloop.taskspec import get_task

    connect_for_models([a.model])
    spec = get_task(a.task)
    res = spec.evaluate(a.model, a.data, tta_shift=a.tta_shift)
    if a.json:
        print(json.dumps(res, default=str))
    else:
        print("\n".join(spec.evaluation_lines(res)))
    return EXIT_OK


def cmd_pseudo_label(a: argparse.Namespace) -> int:
    from synthloop.gaze.pseudo_label import pseudo_label_eyes
    from synthloop.model_refs import connect_for_models

    connect_for_models(a.model)
    res = pseudo_label_eyes(a.model, a.data, a.out, tta_shift=a.tta_shift, log=log)
    if a.json:
        print(json.dumps(res), flush=True)
        return EXIT_OK
    n = len(res["teachers"])
    source = ("one model's answers" if n == 1 else
              f"the mean of {n} models, {res['teacher_spread_deg_mean']:.2f} deg from each on "
              "average")
    print(f"wrote {res['n']} pseudo-labeled eyes to {res['out']} (labels: {source})")
    print(f"train one model on them: synthloop train --method source_only --target {a.data} "
          f"--real-labeled {res['out']} ...")
    return EXIT_OK


def cmd_tune(a: argparse.Namespace) -> int:
    from synthloop.taskspec import get_task
    from synthloop.tuning.jobs import tune_gaze

    settings = settings_with_home()
    target = a.target or str(get_task("gaze").builtin_target(settings))
    res = tune_gaze(settings, method=a.method, target=target, trials=a.trials, steps=a.steps,
                    seed=a.seed, source=a.source, n_source=a.n_source, objective=a.objective,
                    batch_size=a.batch_size, mirror_eye=a.mirror_eye, log=log)
    if a.json:
        print(json.dumps(res, default=str), flush=True)
        return EXIT_OK
    print(f"study {res['study']} ({res['storage']}): {len(res['trials'])} trials, objective "
          f"{res['objective']} ({res['metric']}, {res['direction']})")
    for t in res["trials"]:
        value = "" if t["value"] is None else f"{t['value']:.4g}"
        print(f"  trial {t['number']:>3}  {t['state']:<8} {value:>10}  "
              + " ".join(f"{k}={v:.3g}" for k, v in t["params"].items()))
    if res["best"]:
        b = res["best"]
        print(f"best: trial {b['number']}, {res['metric']} {b['value']:.4g}: "
              + " ".join(f"{k}={v:.4g}" for k, v in b["params"].items()))
    print(f"mlflow parent run {res['mlflow_run_id']}; plot {res['plot']}")
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a gaze or landmark model on synthetic data "
                       "(MLflow-tracked)")
    t.add_argument("--task", choices=TASK_NAMES, default="gaze",
                   help="gaze: eye patches; landmarks: face crops with 68 points")
    t.add_argument("--method", choices=METHODS, required=True,
                   help="source_only: synthetic labels only; the others also adapt to --target")
    t.add_argument("--target", help="unlabeled target: eyes (manifest.csv or labels.csv, labels "
                   "ignored; required for gaze) or face images (landmarks, for DANN/DALN)")
    t.add_argument("--real-labeled", help="labeled real data trained on with the synthetic: "
                   "gaze: eyes with labels.csv (--real-fraction of each batch); landmarks: images + .pts "
                   "(label transfer and syn+real training)")
    t.add_argument("--real-subjects", type=positive_int,
                   help="gaze: use only this many people of --real-labeled (meta.csv subject)")
    t.add_argument("--real-fraction", type=at_least(0.0, float),
                   help="share of each batch taken from --real-labeled (default 0.5; with one "
                        "labeled person 0.125 did better on held-out people, with eyes from "
                        "`pseudo-label` 0.75: docs/gaze.md); "
                        "landmarks: 0 fits only the label transfer")
    t.add_argument("--mirror-eye", choices=["L", "R"],
                   help="gaze: mirror the real eyes of this side (meta.csv eye column) onto the "
                        "other side's, yaw negated, in --target and --real-labeled; the model "
                        "records it and `synthloop evaluate` does the same (docs/gaze.md)")
    t.add_argument("--ema", type=decay, metavar="DECAY",
                   help="gaze: keep, score and register an exponential moving average of the "
                        "weights (0.99: about the last hundred steps); with `evaluate "
                        "--tta-shift 2`, 3-4%% off the error on held-out real people (docs/gaze.md)")
    t.add_argument("--steps", type=positive_int, required=True, help="optimiser steps")
    t.add_argument("--seed", type=int, required=True,
                   help="random seed for the model, the batches and the augmentation")
    t.add_argument("--out", required=True, help="checkpoint folder")
    t.add_argument("--source", help="an existing batch folder (default: generate one)")
    t.add_argument("--n-source", type=positive_int, default=20_000,
                   help="size of the generated source batch")
    t.add_argument("--batch-size", type=positive_int, help="default: the task's (gaze 64, landmarks 16)")
    t.add_argument("--lr", type=float, help="learning rate (default: the training default)")
    t.add_argument("--trade-off", type=float, default=1.0, help="weight of the transfer loss")
    t.add_argument("--model", help="default: the task's (gaze_resnet_s, landmark_resnet_s)")
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    t.add_argument("--refiner", help="a refiner.pt (from `synthloop refine`) applied to the "
                                     "synthetic eyes on the fly, on --device: the GPU path; on "
                                     "a CPU a refined batch (--source) trains faster")
    t.add_argument("--no-register", action="store_true", help="do not log/register the model")
    t.set_defaults(func=cmd_train)

    pl = sub.add_parser("pseudo-label", help="label unlabeled real eyes with the mean answer of "
                        "trained gaze models, for a student to train on (--real-labeled)")
    pl.add_argument("--model", action="append", required=True,
                    help="a teacher: checkpoint folder/file or models:/name@alias; repeat it "
                         "(five seeds of one recipe: docs/gaze.md)")
    pl.add_argument("--data", required=True, help="the eyes to label: a folder with manifest.csv "
                    "(or labels.csv, whose labels are ignored) and its meta.csv")
    pl.add_argument("--out", required=True, help="new folder for the labeled eyes (labels.csv, "
                    "meta.csv, PSEUDO_LABELS.json)")
    pl.add_argument("--tta-shift", type=at_least(0), default=2, metavar="PX",
                    help="each answer averaged over the patch shifted by up to PX px per axis "
                         "(as `evaluate --tta-shift`)")
    pl.add_argument("--json", action="store_true", help="one JSON object on stdout")
    pl.set_defaults(func=cmd_pseudo_label)

    tu = sub.add_parser("tune", help="tune gaze training hyper-parameters with Optuna (one MLflow "
                        "run per trial under a study run; resumable)")
    tu.add_argument("--method", choices=METHODS, required=True,
                    help="the training method whose settings are tuned")
    tu.add_argument("--target", help="target eyes (labels.csv enables the target_error objective "
                    "on its held-out part; manifest.csv: label-free objectives); default: the "
                    "built-in simulated target")
    tu.add_argument("--trials", type=positive_int, default=12,
                    help="finished trials the study should hold")
    tu.add_argument("--steps", type=positive_int, default=600, help="training steps per trial")
    tu.add_argument("--seed", type=int, default=0,
                    help="random seed for the source batch, the training and the sampler")
    tu.add_argument("--objective", choices=OBJECTIVE_NAMES,
                    help="default: target_error with labels.csv, else entropy")
    tu.add_argument("--source", help="an existing batch folder (default: generate one)")
    tu.add_argument("--n-source", type=positive_int, default=20_000,
                    help="size of the generated source batch")
    tu.add_argument("--batch-size", type=positive_int, default=64, help="source images per step")
    tu.add_argument("--mirror-eye", choices=["L", "R"],
                    help="every trial as `synthloop train --mirror-eye`: the target's eyes of this "
                         "side mirrored onto the other's (meta.csv 'eye' column)")
    tu.add_argument("--json", action="store_true", help="one JSON object on stdout")
    tu.set_defaults(func=cmd_tune)

    e = sub.add_parser("evaluate", help="evaluate a model on labeled (errors) or unlabeled "
                       "(domain gap) data")
    e.add_argument("--task", choices=TASK_NAMES, default="gaze",
                   help="gaze: eye patches; landmarks: face crops with 68 points")
    e.add_argument("--model", required=True, help="checkpoint folder/file or models:/name@alias")
    e.add_argument("--data", required=True, help="gaze: folder with labels.csv or manifest.csv; "
                   "landmarks: images with sibling .pts files")
    e.add_argument("--tta-shift", type=at_least(0), default=0, metavar="PX",
                   help="gaze: average each answer over the patch shifted by every offset of up "
                        "to PX px per axis ((2 PX + 1)^2 passes; with `train --ema`, 2 px took 3-4%% "
                        "off the error on held-out real people: docs/gaze.md)")
    e.add_argument("--json", action="store_true", help="one JSON object on stdout")
    e.set_defaults(func=cmd_evaluate)
