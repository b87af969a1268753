"""Gaze on real eyes trained on SimGAN-refined vs unrefined synthetic eyes (issue 14).

    python -m benchmarks.bench_refine_gaze [--real DIR] [--seeds 0 1 2] [--steps 1500]
        [--n-synthetic 20000] [--refiner-steps 1000] [--self-reg 10] [--mpii DIR]
        [--consistency W [--probe-steps 400]]   # keep a frozen gaze probe's answer still
    python -m benchmarks.bench_refine_gaze --quick      # a smoke run, not results

Per seed: ``--n-synthetic`` eyes of ``--distribution`` (the default one unless given); a refiner
(:func:`models.simgan.train_refiner`) trained ``--refiner-steps`` steps from them toward the
*analysis* subjects' real eyes, unlabeled (the loop's subject split of ``--real``); every
synthetic eye refined; then two gaze models trained the same way from scratch
(``bench_real_gaze.train_and_predict``, source only, same seed and steps), one on the
unrefined and one on the refined eyes, and scored on the *held-out* subjects: mean
angular error (deg), the mean of per-subject means with a 95 % interval.

Also per seed, in the feature space of the model trained on unrefined eyes (frozen, so
before and after are measured with one ruler): the domain gap (RBF MMD and Frechet
distance of bottleneck features) of unrefined and refined eyes to the real analysis eyes
and to real MPIIGaze eyes (``--mpii``, unlabeled); how far refinement moved that frozen
model's predictions (mean angle, deg: the labels must not move); refiner img/s.
Writes benchmarks/results/refine_gaze.json and refine_gaze_samples.png (synthetic,
refined, real side by side, gaze arrows on the first two).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_real_gaze import (
    DEFAULT_REAL,
    _distribution,
    _split,
    _synthetic,
    train_and_predict,
)
from benchmarks.common import machine, print_table, results_dir, save

DEFAULT_MPII = DEFAULT_REAL.parent / "mpiigaze-eyes-unlabeled"
GAP_N = 1000  # images per domain for the feature gaps


def _features(net, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bottleneck features and pitch/yaw (radians) of a frozen gaze model."""
    import torch

    feats, py = [], []
    with torch.no_grad():
        for i in range(0, len(images), 500):
            out = net(torch.from_numpy(images[i:i + 500]).unsqueeze(1))
            feats.append(out.features.numpy())
            py.append(out.pitchyaw.numpy())
    return np.concatenate(feats).astype("float64"), np.concatenate(py).astype("float64")


def _gaps(net, syn, refined, real_sets: dict[str, np.ndarray], seed: int) -> dict:
    from analysis.domain_gap import frechet_distance, mmd_rbf
    from analysis.gaze_eval import angular_errors_deg

    pick = np.random.default_rng(seed).permutation(len(syn))[:GAP_N]
    f_syn, p_syn = _features(net, syn[pick])
    f_ref, p_ref = _features(net, refined[pick])
    out = {"label_shift_deg": float(np.mean(angular_errors_deg(p_ref, p_syn)))}
    for name, real in real_sets.items():
        f_real, _ = _features(net, real[np.random.default_rng(seed).permutation(len(real))[:GAP_N]])
        for kind, f in (("unrefined", f_syn), ("refined", f_ref)):
            out[f"mmd_{name}_{kind}"] = float(mmd_rbf(f, f_real))
            out[f"frechet_{name}_{kind}"] = float(frechet_distance(f, f_real))
    return out


def _grid(syn, refined, py, real, path: Path) -> None:
    from synth.preview import EyePanel, eye_panels

    k = 32
    eye_panels([EyePanel(syn[:k], "synthetic (arrows: gaze label)", py[:k]),
                EyePanel(refined[:k], "refined (same labels)", py[:k]),
                EyePanel(real[:k], "real (Columbia analysis subjects)")], path, cols=4)


def _run_seed(seed: int, eyes, analysis, held, mpii, a, work: Path, plot: Path | None) -> dict:
    import torch

    from analysis.gaze_eval import evaluate_gaze
    from models.registry import load_model
    from models.simgan import SimGANConfig, mean_abs_change, refine_images, train_refiner
    from synthloop.gaze.refining import load_consistency_probe

    syn, py = _synthetic(a.distribution, a.n_synthetic, seed, a.centre)
    real = eyes.images[analysis]
    cfg = SimGANConfig(steps=a.refiner_steps, self_reg=a.self_reg, seed=seed, ema=a.ema,
                       bf16=a.bf16, refiner_width=a.refiner_width, consistency=a.consistency,
                       log_every=max(1, a.refiner_steps // 10))
    t0 = time.perf_counter()
    probe = None
    if a.consistency > 0:
        # its own model and seed: the unrefined arm below is the ruler of the label shift,
        # so it must not be the function the refiner was trained to keep still
        train_and_predict([(syn, py)], eyes, analysis, method="source_only", seed=seed + 1000,
                          steps=a.probe_steps, out=work / f"probe-s{seed}")
        probe = load_consistency_probe(work / f"probe-s{seed}" / "last.pt")
    trained = train_refiner(syn, real, cfg, probe=probe, on_log=lambda r: print(
        f"    refiner step {r['step']}: adv {r['loss_refiner_adv']:.3f} reg "
        f"{r['loss_self_reg']:.4f} consistency {r.get('loss_consistency', 0.0):.4f} D "
        f"{r['loss_discriminator']:.3f} (acc real {r['d_acc_real']:.2f}, refined "
        f"{r['d_acc_refined']:.2f})", flush=True))
    refiner_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    refined = refine_images(trained.refiner, syn)
    refine_rate = len(syn) / (time.perf_counter() - t0)
    if plot is not None:
        _grid(syn, refined, py, real, plot)
    truth, people = eyes.pitchyaw[held].astype("float64"), [eyes.groups[i] for i in held]
    row: dict = {"seed": seed, "refiner_train_s": refiner_s, "refine_img_s": refine_rate,
                 "refiner_last": trained.log[-1],
                 "mean_abs_change": mean_abs_change(syn, refined)}
    for arm, images in (("unrefined", syn), ("refined", refined)):
        pred, secs = train_and_predict([(images, py)], eyes, analysis, method="source_only",
                                       seed=seed, steps=a.steps, out=work / f"{arm}-s{seed}")
        res = evaluate_gaze(pred[held], truth, groups=people)
        row[arm] = {"mean_deg": res["mean_angular_error_deg"], "train_s": secs,
                    "subject_mean_deg": res["subject_mean_deg"],
                    "subject_ci95": res["subject_ci95"], "bias_deg": res["bias_deg"]}
        print(f"  seed {seed} {arm:<9}: {res['mean_angular_error_deg']:.2f} deg on held-out "
              f"subjects (bias pitch {res['bias_deg']['pitch']:+.1f}, yaw "
              f"{res['bias_deg']['yaw']:+.1f})", flush=True)
    frozen = load_model(work / f"unrefined-s{seed}" / "last.pt").eval()
    with torch.no_grad():
        row["gap"] = _gaps(frozen, syn, refined, {"columbia": real, **mpii}, seed)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", default=str(DEFAULT_REAL))
    ap.add_argument("--mpii", default=str(DEFAULT_MPII), help="unlabeled real eyes for the gap")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1500, help="gaze training steps per arm")
    ap.add_argument("--n-synthetic", type=int, default=20_000)
    ap.add_argument("--distribution", default="default",
                    help="'default' or a distribution JSON (e.g. benchmarks/distributions/"
                         "eyes-columbia-gaze-corners.json); its patch centre is used")
    ap.add_argument("--refiner-steps", type=int, default=1000)
    ap.add_argument("--refiner-width", type=int, default=32)
    ap.add_argument("--self-reg", type=float, default=10.0)
    ap.add_argument("--consistency", type=float, default=0.0,
                    help="weight per degree of a frozen label probe's answer moving (0: off)")
    ap.add_argument("--probe-steps", type=int, default=400,
                    help="training steps of the consistency probe")
    ap.add_argument("--ema", type=float, default=None,
                    help="refine with a weight average of the refiner (decay per update)")
    ap.add_argument("--bf16", action="store_true", help="train the refiner in bf16")
    ap.add_argument("--name", default="refine_gaze", help="results file name")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, tiny budgets")
    a = ap.parse_args(argv)
    if a.quick:
        a.seeds, a.steps, a.n_synthetic, a.refiner_steps = a.seeds[:1], 20, 256, 5
        a.probe_steps = 10
        a.name += "_quick"
    import torch

    from realdata.eyes import read_eye_folder

    a.centre = _distribution(a.distribution).image.centre

    torch.set_num_threads(int(os.environ.get("SYNTHLOOP_BENCH_THREADS", "2")))
    eyes = read_eye_folder(a.real)
    if eyes.pitchyaw is None or eyes.groups is None:
        print(f"{a.real}: needs labels.csv and meta.csv with a subject column", file=sys.stderr)
        return 2
    mpii = {}
    if Path(a.mpii, "manifest.csv").exists():
        mpii["mpiigaze"] = read_eye_folder(a.mpii).images
    analysis, held = _split(eyes)
    print(f"{a.real}: {len(analysis)} analysis eyes (refiner target, unlabeled), {len(held)} "
          f"held-out; {len(a.seeds)} seed(s), refiner {a.refiner_steps} steps, gaze {a.steps} steps")
    results = results_dir()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate(a.seeds):
            plot = results / f"{a.name}_samples.png" if i == 0 else None
            runs.append(_run_seed(seed, eyes, analysis, held, mpii, a, Path(tmp), plot))
    table = []
    for r in runs:
        u, f = r["unrefined"]["mean_deg"], r["refined"]["mean_deg"]
        table.append({"seed": r["seed"], "unrefined_deg": f"{u:.2f}", "refined_deg": f"{f:.2f}",
                      "change": f"{100 * (f - u) / u:+.1f}%",
                      "label_shift_deg": f"{r['gap']['label_shift_deg']:.2f}",
                      "mmd_columbia": f"{r['gap']['mmd_columbia_unrefined']:.3f} -> "
                                      f"{r['gap']['mmd_columbia_refined']:.3f}",
                      "refine_img_s": f"{r['refine_img_s']:.0f}"})
    med_u = statistics.median(r["unrefined"]["mean_deg"] for r in runs)
    med_f = statistics.median(r["refined"]["mean_deg"] for r in runs)
    print()
    print_table(table, list(table[0]))
    print(f"\nmedian over seeds: unrefined {med_u:.2f} deg, refined {med_f:.2f} deg "
          f"({100 * (med_f - med_u) / med_u:+.1f}%)")
    out = save(a.name, {"benchmark": "refine_gaze", "machine": machine(), "real": str(a.real),
                        "n_analysis": len(analysis), "n_holdout": len(held), "steps": a.steps,
                        "distribution": a.distribution, "centre": a.centre,
                        "n_synthetic": a.n_synthetic, "refiner_steps": a.refiner_steps,
                        "refiner_width": a.refiner_width, "self_reg": a.self_reg,
                        "consistency": a.consistency, "probe_steps": a.probe_steps,
                        "refiner_ema": a.ema, "refiner_bf16": a.bf16, "seeds": a.seeds, "median_unrefined_deg": med_u,
                        "median_refined_deg": med_f, "runs": runs})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
