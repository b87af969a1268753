"""Gaze on REAL labeled eyes (Columbia Gaze, split by subject): what synthetic eyes, domain
adaptation and a few real labels buy on people the models never saw.

    python -m benchmarks.bench_real_gaze [--real DIR] [--seeds 0 1 2] [--steps 1500]
        [--arms constant source_only dann daln iwdan real_1 real_3 real_all syn+real_1 ...]
        [--real-share 0.5]

The real folder (labels.csv + meta.csv with ``subject``) is split by subject with the
feedback loop's split (half the subjects, split seed 0): the *analysis* subjects are the
unlabeled target of the DA arms and the labeled pool of the few-label arms; the
*held-out* subjects are only scored. Every arm trains ``--steps`` steps from scratch
(gaze_resnet_s, batch 64, the loop's schedule) and is scored with its last weights: mean
angular error on the held-out subjects, its pitch/yaw bias and spread, and the mean of
per-subject means with a 95 % interval over subjects.

Arms: ``constant`` (always (0, 0)); ``source_only``, ``dann``, ``daln``, ``iwdan``,
``rsd`` (synthetic eyes of ``--distribution``, the analysis subjects' images unlabeled as
the target; ``--trade-off`` scales the DA term); ``real_<k>`` (only k labeled analysis
subjects, no synthetic eyes);
``syn+real_<k>`` (synthetic and those k subjects' labeled eyes, ``--real-share`` of each
batch real, half by default);
``<da>+real_<k>`` (the same with a DA method, e.g. ``dann+real_1``: the analysis subjects'
images, those k labeled ones included, as the unlabeled target); ``k`` is a number or
``all``. The k subjects are drawn per seed (``--rotate-people``: taken in turn, so
that seeds ``0..n/k-1`` label every analysis person once). ``selftrain`` (self-training): the analysis
subjects' eyes labeled with an earlier arm's predictions (``--teacher``, default
``source_only``, which must run first in the same command), trained beside synthetic eyes
half and half, like ``syn+real_all`` with pseudo-labels. A label-free teacher labels with
its seed-ensemble mean (no real label is read); a few-label teacher (``--teacher
syn+real_1``) with the same seed's model, its labeled people keeping their true labels
(the student sees the same k people); ``selftrain+real_<k>`` keeps k people's true labels
beside a label-free teacher's pseudo-labels for the rest; ``--student-steps N`` trains the
students longer (or shorter) than the teachers. ``--ensemble`` also scores the mean of each arm's
per-seed predictions (``<arm>@ensemble``): how much of the error is one model's variance;
``--ensemble-size K`` averages each K consecutive seeds instead (several ensembles).
``--ensemble-arms`` scores, per seed, the mean of every trained arm's predictions
(``source_only+dann+...@mix``: one model of each method).
``--init-from ARM`` pre-trains then fine-tunes: ARM (the first trained arm) trains as
usual, every later arm starts from ARM's model of the same seed (``--finetune-steps``,
``--finetune-lr``), e.g. ``--arms source_only real_1 --init-from source_only``.
``--mirror-eye L|R`` mirrors that side's real patches onto the other's (yaw negated;
``meta.csv``'s ``eye`` column) for training and prediction, and maps the predictions back
before scoring (:mod:`realdata.eye_side`). ``--refine mean-patch [--strength S]`` moves
every arm's synthetic eyes by the analysis people's mean eye minus theirs
(:mod:`models.mean_patch`; the analysis images only, unlabeled, after any mirroring);
``--refine pose-mean-patch`` by that difference at each eye's head pose
(:mod:`models.pose_mean_patch`; the real poses from meta.csv's ``--pose-column``).
For every trained arm alike, ``--ema DECAY`` scores an average of the weights and
``--tta-shift PX`` the mean prediction over the patch shifted by up to PX px per axis.
Writes benchmarks/results/real_gaze.json (and a plot of error against labeled subjects).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, print_table, results_dir, save
from synthloop.refine_methods import MEAN_PATCH_STRENGTH, POSE_MEAN_PATCH_STRENGTH, default_strength

DEFAULT_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "columbia-gaze-eyes"
DA_ARMS = ("source_only", "dann", "daln", "iwdan", "rsd")


def _split(eyes):
    from realdata.splits import LOOP_HOLDOUT_SALT, split

    return split(len(eyes), 0.5, [0, LOOP_HOLDOUT_SALT], eyes.groups)


def _labeled_k(arm: str) -> str | None:
    """How many labeled real subjects an arm trains on (``real_3``, ``syn+real_all``,
    ``dann+real_1``: "3", "all", "1"); ``None`` for an arm without real labels."""
    _, _, tail = arm.partition("+")
    return arm.split("_", 1)[1] if arm.startswith("real_") or tail.startswith("real_") else None


def _labeled_subjects(eyes, pool, k: str, seed: int, rotate: bool = False):
    """Indices of ``k`` subjects' eyes (``all``: every one) of the pool, drawn with ``seed``;
    ``rotate``: the sorted people in turn instead, seed s taking the k from position s * k
    (wrapping), so that consecutive seeds cover every person before any repeats."""
    import numpy as np

    people = sorted({eyes.groups[i] for i in pool})
    n = len(people) if k == "all" else int(k)
    if rotate:
        chosen = {people[(seed * n + j) % len(people)] for j in range(n)}
    else:
        chosen = set(np.random.default_rng([seed, 31]).permutation(people)[:n].tolist())
    return np.array([i for i in pool if eyes.groups[i] in chosen]), sorted(chosen)


def _distribution(name: str):
    from synth.distribution import read_distribution
    from synth.eye_distribution import default_eye_distribution

    return default_eye_distribution() if name == "default" else read_distribution(name)


def _render(dist_name: str, n: int, seed: int, centre: str):
    """``n`` eyes of the distribution with their scene factors."""
    import dataclasses

    from synth.eye_generator import EyeGenerator

    dist = _distribution(dist_name)
    if centre != dist.image.centre:
        dist = dist.derive(f"patches centred on the {centre}",
                           image=dataclasses.replace(dist.image, centre=centre))
    return EyeGenerator(dist).render_all(n, seed)


def _gaze_of(scenes):
    import numpy as np

    return np.stack([scenes["gaze_pitch"], scenes["gaze_yaw"]], 1).astype("float32")


def _synthetic(dist_name: str, n: int, seed: int, centre: str):
    images, scenes = _render(dist_name, n, seed, centre)
    return images, _gaze_of(scenes)


def _synthetic_for(a, seed: int, eyes, analysis):
    """The synthetic part of an arm: ``--distribution``'s eyes, moved by the mean patch
    fitted toward the analysis people's eyes (unlabeled) when ``--refine mean-patch``, or
    by the mean patch of each head pose (``pose-mean-patch``: ``a.real_pose_deg`` holds
    the real eyes' head poses, in the frame of the eyes as mirrored)."""
    if a.refine == "pose-mean-patch":
        import numpy as np

        from models.pose_mean_patch import fit_pose_mean_patch

        images, scenes = _render(a.distribution, a.n_synthetic, seed, a.centre)
        yaw = np.degrees(scenes["head_yaw"])
        try:
            patch = fit_pose_mean_patch(images, yaw, eyes.images[analysis],
                                        a.real_pose_deg[analysis], a.strength,
                                        interpolate=a.pose_interpolate)
        except ValueError as e:
            print(f"{a.real}: --refine pose-mean-patch: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        if seed == a.seeds[0]:
            print(f"  pose mean patch: real poses {patch.poses_deg.tolist()} deg paired with "
                  f"{patch.sign:+d} x the synthetic head yaw")
            _plot_pose_patch(patch, results_dir() / f"{a.name}_pose_patch.png")
        return patch.apply(images, yaw), _gaze_of(scenes)
    images, pitchyaw = _synthetic(a.distribution, a.n_synthetic, seed, a.centre)
    if a.refine == "mean-patch":
        from models.mean_patch import fit_mean_patch
        from models.simgan import refine_images

        refiner = fit_mean_patch(images, eyes.images[analysis], a.strength)
        refined = refine_images(refiner, images)
        if seed == a.seeds[0]:
            _plot_mean_patch(images, refined, eyes.images[analysis], refiner,
                             results_dir() / f"{a.name}_samples.png")
        images = refined
    return images, pitchyaw


def _plot_pose_patch(patch, path: Path) -> None:
    """Each head pose's real-minus-synthetic mean eye, on one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(patch.poses_deg)
    fig, ax = plt.subplots(1, k, figsize=(1.8 * k, 1.4), squeeze=False)
    for j, (pose, d) in enumerate(zip(patch.poses_deg, patch.deltas, strict=True)):
        ax[0, j].imshow(d, cmap="RdBu_r", vmin=-80, vmax=80)
        ax[0, j].set_title(f"real pose {pose:+g} deg", fontsize=7)
        ax[0, j].axis("off")
    fig.suptitle(f"real - synthetic mean eye per head pose (+-80; synthetic yaw x {patch.sign:+d})",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_mean_patch(synthetic, refined, real, refiner, path: Path) -> None:
    """The two mean eyes and their difference, then synthetic eyes over their refined
    twins, over real eyes (each arm redraws it: the first seed's eyes are every arm's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rng = np.random.default_rng(0)
    cols = 8
    fig, ax = plt.subplots(4, cols, figsize=(1.5 * cols, 4.4))
    for x in ax.ravel():
        x.axis("off")
    means = [("synthetic mean", synthetic.mean(0)), ("real mean (unlabeled)", real.mean(0))]
    for j, (title, m) in enumerate(means):
        ax[0, j].imshow(m, cmap="gray", vmin=0, vmax=255)
        ax[0, j].set_title(title, fontsize=7)
    d = refiner.delta[0].numpy() * 255.0
    ax[0, 2].imshow(d, cmap="RdBu_r", vmin=-80, vmax=80)
    ax[0, 2].set_title("real - synthetic (+-80)", fontsize=7)
    for j, i in enumerate(rng.choice(len(synthetic), cols, replace=False)):
        for r, (title, im) in enumerate((("synthetic", synthetic[i]), ("mean patch", refined[i])), 1):
            ax[r, j].imshow(im, cmap="gray", vmin=0, vmax=255)
            ax[r, j].set_title(title, fontsize=7)
    for j, i in enumerate(rng.choice(len(real), cols, replace=False)):
        ax[3, j].imshow(real[i], cmap="gray", vmin=0, vmax=255)
        ax[3, j].set_title("real", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _train_and_predict(arm: str, seed: int, eyes, analysis, a, work: Path, preds: dict):
    if arm.partition("+")[0] == "selftrain":
        return _self_train(arm, seed, eyes, analysis, a, work, preds)
    head = arm.partition("+")[0]
    method = head if head in DA_ARMS else "source_only"
    real_k = _labeled_k(arm)
    parts, info = [], {}
    if not arm.startswith("real_"):
        parts.append(_synthetic_for(a, seed, eyes, analysis))
    if real_k is not None:
        idx, people = _labeled_subjects(eyes, analysis, real_k, seed, a.rotate_people)
        parts.append((eyes.images[idx], eyes.pitchyaw[idx]))
        info["labeled_subjects"] = people
    pred, info["train_s"] = train_and_predict(parts, eyes, analysis, method=method, seed=seed,
                                              out=work / f"{arm}-s{seed}", mirror=a.mirror,
                                              second_share=a.real_share, trade_off=a.trade_off,
                                              ema=a.ema, tta_shift=a.tta_shift,
                                              **_start(arm, seed, a, work, info))
    return pred, info


def _start(arm: str, seed: int, a, work: Path, info: dict, steps: int | None = None) -> dict:
    """How ``arm`` starts and how long it trains: from scratch, or after ``--init-from`` ARM
    from ARM's model of this seed at ``--finetune-lr``, for ``steps`` where given (a
    student's), else ``--steps`` / ``--finetune-steps`` (recorded in ``info``)."""
    if steps is not None:
        info["steps"] = steps
    if not a.init_from or arm == a.init_from:
        return {"steps": steps or a.steps}
    info["init_from"] = a.init_from
    return {"steps": steps or a.finetune_steps or a.steps, "lr": a.finetune_lr,
            "init": work / f"{a.init_from}-s{seed}" / "last.pt"}


def _self_train(arm: str, seed: int, eyes, analysis, a, work: Path, preds: dict):
    """The student of ``selftrain``: synthetic eyes beside the analysis eyes labeled by the
    teacher arm. A label-free teacher labels them with its seed-ensemble mean; a teacher
    that saw k labeled people (``syn+real_1``) with this seed's model only, since its other
    seeds saw other people, and those k people keep their true labels. The student
    ``selftrain+real_<k>`` keeps k people's true labels under a label-free teacher."""
    import numpy as np

    teacher = preds[a.teacher]  # main() checked that the teacher arm runs first
    teacher_k = _labeled_k(a.teacher)
    real_k = _labeled_k(arm) or teacher_k
    if teacher_k is None:
        pseudo, used = np.mean(list(teacher.values()), axis=0), sorted(teacher)
    else:
        pseudo, used = teacher[seed].copy(), [seed]
    pseudo = pseudo.astype("float32")
    info = {"teacher": a.teacher, "teacher_seeds": used}
    if real_k is not None:
        idx, info["labeled_subjects"] = _labeled_subjects(eyes, analysis, real_k, seed,
                                                          a.rotate_people)
        pseudo[idx] = eyes.pitchyaw[idx]
    real_idx = np.asarray(analysis)
    if real_k is not None and a.labeled_repeat > 1:  # the labeled people's eyes drawn more often
        real_idx = np.concatenate([real_idx, *[idx] * (a.labeled_repeat - 1)])
        info["labeled_repeat"] = a.labeled_repeat
    parts = [_synthetic_for(a, seed, eyes, analysis),
             (eyes.images[real_idx], pseudo[real_idx])]
    pred, info["train_s"] = train_and_predict(parts, eyes, analysis, method="source_only",
                                              seed=seed, out=work / f"{arm}-s{seed}",
                                              mirror=a.mirror, second_share=a.real_share,
                                              ema=a.ema, tta_shift=a.tta_shift,
                                              **_start(arm, seed, a, work, info,
                                                       steps=a.student_steps))
    return pred, info


def train_and_predict(parts, eyes, analysis, *, method: str, seed: int, steps: int, out: Path,
                      batch: int = 64, mirror: float = 0.0, second_share: float = 0.5,
                      init: Path | None = None, lr: float | None = None,
                      trade_off: float = 1.0, ema: float | None = None, tta_shift: int = 0):
    """Train a gaze model on ``parts`` (``[(images, pitchyaw), ...]``; of two parts the
    second fills ``second_share`` of each batch), the analysis eyes unlabeled as the target,
    from scratch or from the checkpoint ``init`` (at ``lr`` when given), keeping an average
    of its weights when ``ema`` is a decay; returns its predictions for every eye of
    ``eyes`` (radians; averaged over every shift of up to ``tta_shift`` px when given) and
    the training seconds."""
    import numpy as np
    import torch

    from models.data import ArraySource, ConcatSource
    from models.predict import predict_pitchyaw_shift_averaged
    from models.registry import load_model
    from models.train import TrainConfig, train

    second = round(batch * second_share)
    sizes = [batch] if len(parts) == 1 else [batch - second, second]
    sources = [ArraySource(im, b, seed + 10 * i, labels={"pitchyaw": y})
               for i, ((im, y), b) in enumerate(zip(parts, sizes, strict=True))]
    source = sources[0] if len(sources) == 1 else ConcatSource(*sources)
    target_images = eyes.images[analysis]
    target = ArraySource(target_images, batch, seed + 1) if method != "source_only" else None
    cfg = TrainConfig(method=method, steps=steps, batch_size=batch, seed=seed,
                      task_kwargs={"mirror": mirror}, **({} if lr is None else {"lr": lr}),
                      trade_off=trade_off, ema=ema,
                      warmup=min(100, steps // 5), eval_every=steps, ckpt_every=steps,
                      log_every=max(1, steps // 10), select="source_error")
    t0 = time.perf_counter()
    val = sources[0].gather(np.arange(min(256, len(sources[0]))))
    train(cfg, source, target, out, val_source=val,
          val_target={"image": torch.from_numpy(target_images[:512]).unsqueeze(1)}, resume=False,
          init_weights=init)
    seconds = time.perf_counter() - t0
    net = load_model(out / "last.pt").eval()
    x = torch.from_numpy(eyes.images).unsqueeze(1)
    return predict_pitchyaw_shift_averaged(net, x, tta_shift, amp=False).numpy().astype("float64"), seconds


def _score(runs: dict, arm: str, seed: int, pred, truth, people, info: dict) -> None:
    """Evaluate one prediction of the held-out eyes into ``runs[arm]`` and print it."""
    from analysis.gaze_eval import evaluate_gaze

    res = evaluate_gaze(pred, truth, groups=people)
    runs.setdefault(arm, []).append({
        "seed": seed, "mean_deg": res["mean_angular_error_deg"],
        "subject_mean_deg": res["subject_mean_deg"], "subject_ci95": res["subject_ci95"],
        "bias_deg": res["bias_deg"], "spread_deg": res["spread_deg"],
        "gain": res["gain"], "recalibrated_deg": res["recalibrated_deg"],
        "subject_offsets_removed_deg": res["subject_offsets_removed_deg"], **info})
    label = "ensemble" if seed < 0 else f"seed {seed}"
    print(f"  {arm:<14} {label}: {res['mean_angular_error_deg']:.2f} deg "
          f"(bias pitch {res['bias_deg']['pitch']:+.1f}, yaw {res['bias_deg']['yaw']:+.1f})",
          flush=True)


def _ensembles(per_seed: dict, size: int | None) -> list[list[int]]:
    """The seed groups whose predictions are averaged: every ``size`` consecutive seeds in
    the order trained (all of them when ``size`` is None); a group of one is no ensemble."""
    seeds = list(per_seed)
    size = size or len(seeds)
    groups = [seeds[i:i + size] for i in range(0, len(seeds) - size + 1, size)]
    return [g for g in groups if len(g) > 1]


def _score_arm_mixtures(runs: dict, preds: dict, mirrored, held, truth, people) -> None:
    """Per seed, the mean of the trained arms' predictions (``+``-joined arms ``@mix``)."""
    import numpy as np

    from realdata.eye_side import unmirror_pitchyaw

    arms = [arm for arm in preds if arm != "constant"]
    if len(arms) < 2:
        raise SystemExit("--ensemble-arms needs at least two trained arms in --arms")
    name = "+".join(arms) + "@mix"
    for seed in sorted(set.intersection(*(set(preds[arm]) for arm in arms))):
        mean = np.mean([preds[arm][seed] for arm in arms], axis=0)
        _score(runs, name, seed, unmirror_pitchyaw(mean, mirrored)[held], truth, people,
               {"members": arms})


def _plot(rows: list[dict], n_pool: int, path: Path) -> None:
    import matplotlib

    from synth.preview import save_figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for prefix, label in (("real_", "real only"), ("syn+real_", "synthetic + real")):
        pts = sorted((n_pool if r["arm"].endswith("_all") else int(r["arm"].rsplit("_", 1)[1]),
                      r["mean_deg"], r["sd_deg"]) for r in rows
                     if r["arm"].startswith(prefix) and "@" not in r["arm"])  # not ensembles
        if pts:
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                        marker="o", capsize=3, label=label)
    for r in rows:
        if r["arm"] in ("constant", "source_only"):
            ax.axhline(r["mean_deg"], ls="--", lw=1, color="grey" if r["arm"] == "constant" else "C3",
                       label=f"{r['arm']} ({r['mean_deg']:.1f})")
    ax.set_xlabel("labeled real subjects in training")
    ax.set_ylabel("held-out subjects: mean error (deg)")
    ax.set_title("gaze on real eyes (Columbia), 3 seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", default=str(DEFAULT_REAL))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--n-synthetic", type=int, default=20_000)
    ap.add_argument("--distribution", default="default", help="'default' or a distribution JSON")
    ap.add_argument("--centre", choices=["eyeball", "corners", "outline"],
                    help="what the synthetic patches are centred on (default: what the "
                         "distribution says)")
    ap.add_argument("--arms", nargs="+", default=["constant", *DA_ARMS, "real_1", "real_3",
                                                  "real_all", "syn+real_1", "syn+real_3",
                                                  "syn+real_all"])
    ap.add_argument("--mirror", type=float, default=0.0,
                    help="probability of flipping a training patch left to right with its yaw "
                         "negated (GazeTaskConfig.mirror)")
    ap.add_argument("--real-share", type=float, default=0.5,
                    help="share of each batch that is real in the synthetic + real arms "
                         "(and pseudo-labeled in selftrain)")
    ap.add_argument("--teacher", default="source_only",
                    help="the arm whose predictions label the analysis eyes for selftrain")
    ap.add_argument("--student-steps", type=int, metavar="N",
                    help="steps of the selftrain arms (default: --steps): a student trains "
                         "mostly on real eyes, so the synthetic budget need not bound it")
    ap.add_argument("--labeled-repeat", type=int, default=1, metavar="R",
                    help="selftrain with labeled people: their eyes appear R times among the "
                         "pseudo-labeled ones (drawn R times as often)")
    ap.add_argument("--trade-off", type=float, default=1.0,
                    help="weight of the DA arms' transfer loss (TrainConfig.trade_off)")
    ap.add_argument("--init-from", metavar="ARM",
                    help="pre-train then fine-tune: every arm after ARM in --arms starts from "
                         "ARM's model of the same seed")
    ap.add_argument("--finetune-steps", type=int,
                    help="steps of the arms started from --init-from (default: --steps)")
    ap.add_argument("--finetune-lr", type=float,
                    help="peak learning rate of those arms (default: TrainConfig's)")
    ap.add_argument("--ensemble", action="store_true",
                    help="also score the mean of each arm's per-seed predictions")
    ap.add_argument("--ensemble-size", type=int, metavar="K",
                    help="--ensemble: score the mean of each K consecutive seeds of --seeds "
                         "(seeds 0-8 with K = 3: three ensembles of three) instead of all")
    ap.add_argument("--ensemble-arms", action="store_true",
                    help="also score, per seed, the mean of every trained arm's predictions "
                         "(one model of each method, the same seed: a mixed ensemble)")
    ap.add_argument("--mirror-eye", choices=["L", "R"], default=None,
                    help="mirror this side's real patches onto the other's (yaw negated), "
                         "predictions mapped back before scoring")
    ap.add_argument("--refine", choices=["none", "mean-patch", "pose-mean-patch"], default="none",
                    help="mean-patch: move the synthetic eyes by the analysis people's mean "
                         "eye (unlabeled) minus theirs (models.mean_patch); pose-mean-patch: "
                         "the same per head pose (--pose-column; models.pose_mean_patch)")
    ap.add_argument("--pose-column", default="head_pose_P_deg",
                    help="--refine pose-mean-patch: meta.csv's column of the real eyes' head "
                         "yaw in degrees (default: Columbia's %(default)s)")
    ap.add_argument("--pose-interpolate", action="store_true",
                    help="--refine pose-mean-patch: blend the two nearest poses' differences "
                         "linearly in head yaw instead of taking the nearest one")
    ap.add_argument("--strength", type=float,
                    help="--refine mean-patch / pose-mean-patch: how far toward the real mean "
                         "(1: all the way; default: the product's for that method, "
                         f"{MEAN_PATCH_STRENGTH:g} / {POSE_MEAN_PATCH_STRENGTH:g})")
    ap.add_argument("--rotate-people", action="store_true",
                    help="the arms with k labeled people take the analysis people in turn (seed s: "
                         "the k from position s * k of the sorted list) instead of a random draw, "
                         "so that seeds 0..n/k-1 label every person once")
    ap.add_argument("--ema", type=float, default=None, metavar="DECAY",
                    help="evaluate an exponential moving average of the weights (TrainConfig.ema)")
    ap.add_argument("--tta-shift", type=int, default=0, metavar="PX",
                    help="average each prediction over every shift of up to PX px per axis")
    ap.add_argument("--name", default="real_gaze", help="results file name")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, 30 steps")
    a = ap.parse_args(argv)
    students = [i for i, arm in enumerate(a.arms) if arm.partition("+")[0] == "selftrain"]
    if not 1 / 64 <= a.real_share <= 63 / 64:
        ap.error(f"--real-share {a.real_share}: needs at least one eye of each kind in a batch of 64")
    if a.student_steps is not None and (a.student_steps < 1 or not students):
        ap.error(f"--student-steps {a.student_steps}: a positive budget for a selftrain arm")
    if a.labeled_repeat < 1:
        ap.error(f"--labeled-repeat {a.labeled_repeat}: at least 1")
    if a.tta_shift < 0 or (a.ema is not None and not 0 < a.ema < 1):
        ap.error(f"--tta-shift {a.tta_shift} / --ema {a.ema}: a shift >= 0 px, a decay in (0, 1)")
    if a.ensemble_size is not None and not (a.ensemble and 2 <= a.ensemble_size <= len(a.seeds)):
        ap.error(f"--ensemble-size {a.ensemble_size}: needs --ensemble and 2 to {len(a.seeds)} "
                 "(the number of --seeds)")
    if students and a.teacher not in a.arms[:students[0]]:
        ap.error(f"selftrain needs its teacher arm {a.teacher!r} earlier in --arms")
    for i in students:
        k, teacher_k = _labeled_k(a.arms[i]), _labeled_k(a.teacher)
        if k is not None and teacher_k not in (None, k):
            ap.error(f"{a.arms[i]}: its teacher {a.teacher!r} saw {teacher_k} labeled people, "
                     f"the student {k}")
    if a.labeled_repeat > 1 and not any(_labeled_k(a.arms[i]) or _labeled_k(a.teacher)
                                        for i in students):
        ap.error(f"--labeled-repeat {a.labeled_repeat}: no selftrain arm keeps labeled people")
    if a.init_from and [x for x in a.arms if x != "constant"][:1] != [a.init_from]:
        ap.error(f"--init-from {a.init_from!r}: must be the first trained arm of --arms")
    if a.refine != "none":
        a.strength = default_strength(a.refine, a.strength)
    if a.quick:
        a.seeds, a.steps, a.n_synthetic, a.name = a.seeds[:1], 30, 512, a.name + "_quick"
    import numpy as np
    import torch

    from realdata.errors import DataFormatError
    from realdata.eye_side import mirror_side, mirrored_mask, mirrored_yaw, unmirror_pitchyaw
    from realdata.eyes import read_eye_folder

    if a.centre is None:  # recorded with the results: what the patches really were
        a.centre = _distribution(a.distribution).image.centre
    torch.set_num_threads(int(os.environ.get("SYNTHLOOP_BENCH_THREADS", 2)))
    eyes = read_eye_folder(a.real)
    if eyes.pitchyaw is None or eyes.groups is None:
        print(f"{a.real}: needs labels.csv and meta.csv with a subject column", file=sys.stderr)
        return 2
    analysis, held = _split(eyes)
    n_pool = len({eyes.groups[i] for i in analysis})
    truth, people = eyes.pitchyaw[held].astype("float64"), [eyes.groups[i] for i in held]
    mirrored = np.zeros(len(eyes), dtype=bool)
    if a.mirror_eye:
        try:
            mirrored = mirrored_mask(eyes, a.mirror_eye)
        except DataFormatError as e:
            print(f"--mirror-eye: {e}", file=sys.stderr)
            return 2
        eyes = mirror_side(eyes, a.mirror_eye)  # truth above keeps the labels as stated
    if a.refine == "pose-mean-patch":
        if a.pose_column not in eyes.meta:
            print(f"{a.real}: --refine pose-mean-patch needs meta.csv's numeric column "
                  f"{a.pose_column!r}", file=sys.stderr)
            return 2
        a.real_pose_deg = mirrored_yaw(eyes.meta[a.pose_column], mirrored)
    print(f"{a.real}: {len(analysis)} analysis eyes ({n_pool} subjects), {len(held)} held-out "
          f"({len({*people})} subjects); {len(a.seeds)} seed(s), {a.steps} steps")
    runs: dict[str, list[dict]] = {}
    preds: dict[str, dict[int, np.ndarray]] = {}  # arm -> seed -> predictions for every eye
    with tempfile.TemporaryDirectory() as tmp:
        for arm in a.arms:
            for seed in a.seeds if arm != "constant" else a.seeds[:1]:
                if arm == "constant":
                    pred, info = np.zeros((len(eyes), 2)), {}
                else:
                    pred, info = _train_and_predict(arm, seed, eyes, analysis, a, Path(tmp), preds)
                preds.setdefault(arm, {})[seed] = pred  # in the training frame (teachers)
                _score(runs, arm, seed, unmirror_pitchyaw(pred, mirrored)[held], truth, people,
                       info)
            for members in _ensembles(preds[arm], a.ensemble_size) if a.ensemble else ():
                mean = np.mean([preds[arm][s] for s in members], axis=0)
                _score(runs, f"{arm}@ensemble", -1, unmirror_pitchyaw(mean, mirrored)[held],
                       truth, people, {"members": members})
    if a.ensemble_arms:
        _score_arm_mixtures(runs, preds, mirrored, held, truth, people)
    rows = []
    for arm, rs in runs.items():
        errs = [r["mean_deg"] for r in rs]
        rows.append({"arm": arm, "mean_deg": statistics.mean(errs),
                     "sd_deg": statistics.stdev(errs) if len(errs) > 1 else 0.0,
                     "seeds": " ".join(f"{e:.2f}" for e in errs),
                     "bias_pitch": statistics.mean(r["bias_deg"]["pitch"] for r in rs),
                     "bias_yaw": statistics.mean(r["bias_deg"]["yaw"] for r in rs),
                     "spread_pitch": statistics.mean(r["spread_deg"]["pitch"] for r in rs),
                     "spread_yaw": statistics.mean(r["spread_deg"]["yaw"] for r in rs),
                     **{f"gain_{k}": statistics.mean(r["gain"][k] or 0.0 for r in rs)
                        for k in ("pitch", "yaw")}})
    table = [{**r, "mean_deg": f"{r['mean_deg']:.2f}", "sd_deg": f"{r['sd_deg']:.2f}",
              **{k: f"{r[k]:+.1f}" if k.startswith("bias") else f"{r[k]:.1f}"
                 for k in ("bias_pitch", "bias_yaw", "spread_pitch", "spread_yaw")},
              **{k: f"{r[k]:.2f}" for k in ("gain_pitch", "gain_yaw")}} for r in rows]
    print()
    print_table(table, ["arm", "mean_deg", "sd_deg", "seeds", "bias_pitch", "bias_yaw",
                        "spread_pitch", "spread_yaw", "gain_pitch", "gain_yaw"])
    out = save(a.name, {"benchmark": "real_gaze", "machine": machine(), "real": str(a.real),
                        "split": {"analysis_subjects": n_pool, "holdout_subjects": len({*people}),
                                  "n_analysis": len(analysis), "n_holdout": len(held)},
                        "steps": a.steps, "n_synthetic": a.n_synthetic,
                        **({"student_steps": a.student_steps} if a.student_steps else {}),
                        "distribution": a.distribution, "centre": a.centre, "mirror": a.mirror,
                        "mirror_eye": a.mirror_eye, "refine": a.refine,
                        **({"strength": a.strength} if a.refine != "none" else {}),
                        **({"pose_column": a.pose_column, "pose_interpolate": a.pose_interpolate}
                           if a.refine == "pose-mean-patch" else {}),
                        "real_share": a.real_share, "trade_off": a.trade_off,
                        "rotate_people": a.rotate_people, "ema": a.ema, "tta_shift": a.tta_shift,
                        "init_from": a.init_from,
                        "finetune_steps": a.finetune_steps, "finetune_lr": a.finetune_lr,
                        "seeds": a.seeds, "ensemble_size": a.ensemble_size,
                        "ensemble_arms": a.ensemble_arms,
                        "rows": rows, "runs": runs})
    print(f"\nwrote {out}")
    if any(r["arm"].startswith(("real_", "syn+real_")) for r in rows):  # after the results
        _plot(rows, n_pool, results_dir() / f"{a.name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
