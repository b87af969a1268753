"""How far the patch refiners move synthetic eyes toward real ones, in a gaze model's eyes
(issue 14's domain gap, for the mean patch and the mean patch per head pose).

    python -m benchmarks.bench_patch_gap [--seeds 0 1 2] [--steps 750] [--n-synthetic 20000]
        [--real DIR] [--mpii DIR] [--pose-column head_pose_P_deg] [--mirror-eye L|R|none]

Per seed: ``--n-synthetic`` eyes of the corner-centred Columbia-range distribution; a
source-only gaze model trained on them as rendered (``bench_real_gaze.train_and_predict``,
weights averaged at 0.99), frozen as the ruler; then each refiner fitted toward the
analysis people's Columbia eyes (left eyes mirrored by default, as in ``bench_real_gaze
--mirror-eye L``; no gaze label read) and, in that model's bottleneck features, the RBF MMD and Frechet
distance of 1,000 unrefined and 1,000 refined eyes to the analysis eyes and to unlabeled
MPIIGaze eyes (a dataset no refiner saw), and how far refinement moved the frozen model's
answer (deg). Writes benchmarks/results/patch_gap.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.bench_real_gaze import DEFAULT_REAL, _gaze_of, _render, _split, train_and_predict
from benchmarks.bench_refine_gaze import DEFAULT_MPII, _gaps
from benchmarks.common import machine, print_table, save

DISTRIBUTION = "benchmarks/distributions/eyes-columbia-gaze-corners.json"
#: (name, kind, strength): the shared mean patch at its default, the per-pose one at the
#: label check's accepted strength and at the benchmark's best
REFINERS = (("mean patch 0.5", "mean", 0.5), ("pose patch 0.5", "pose", 0.5),
            ("pose patch 1.0", "pose", 1.0))


def _refined(kind: str, strength: float, images, yaw_deg, real, real_pose):
    from models.mean_patch import fit_mean_patch
    from models.pose_mean_patch import fit_pose_mean_patch
    from models.simgan import refine_images

    if kind == "mean":
        return refine_images(fit_mean_patch(images, real, strength), images)
    return fit_pose_mean_patch(images, yaw_deg, real, real_pose, strength).apply(images, yaw_deg)


def _seed(seed: int, eyes, analysis, real_pose, mpii, a) -> dict:
    import numpy as np
    import torch

    from models.registry import load_model

    images, scenes = _render(DISTRIBUTION, a.n_synthetic, seed, "corners")
    yaw = np.degrees(scenes["head_yaw"])
    real = eyes.images[analysis]
    with tempfile.TemporaryDirectory() as tmp:
        train_and_predict([(images, _gaze_of(scenes))], eyes, analysis, method="source_only",
                          seed=seed, steps=a.steps, out=Path(tmp) / "ruler", ema=0.99)
        ruler = load_model(Path(tmp) / "ruler" / "last.pt").eval()
    out = {}
    for name, kind, strength in REFINERS:
        refined = _refined(kind, strength, images, yaw, real, real_pose[analysis])
        with torch.no_grad():
            out[name] = _gaps(ruler, images, refined, {"columbia": real, "mpiigaze": mpii}, seed)
        print(f"  seed {seed} {name}: Frechet to Columbia {out[name]['frechet_columbia_unrefined']:.2f}"
              f" -> {out[name]['frechet_columbia_refined']:.2f}, to MPIIGaze "
              f"{out[name]['frechet_mpiigaze_unrefined']:.2f} -> "
              f"{out[name]['frechet_mpiigaze_refined']:.2f}; answer moved "
              f"{out[name]['label_shift_deg']:.2f} deg", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", default=str(DEFAULT_REAL))
    ap.add_argument("--mpii", default=str(DEFAULT_MPII))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=750, help="the ruler's training steps")
    ap.add_argument("--n-synthetic", type=int, default=20_000)
    ap.add_argument("--pose-column", default="head_pose_P_deg",
                    help="meta.csv's column of each real eye's head yaw (deg)")
    ap.add_argument("--mirror-eye", choices=["L", "R", "none"], default="L",
                    help="mirror the real eyes of this side onto the other's first")
    ap.add_argument("--name", default="patch_gap")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, tiny budgets")
    a = ap.parse_args(argv)
    if a.quick:
        a.seeds, a.steps, a.n_synthetic, a.name = a.seeds[:1], 20, 1500, a.name + "_quick"
    import numpy as np
    import torch

    from realdata.eye_side import mirror_side, mirrored_mask, mirrored_yaw
    from realdata.eyes import read_eye_folder

    torch.set_num_threads(int(os.environ.get("SYNTHLOOP_BENCH_THREADS", 2)))
    for path, what in ((a.real, "--real"), (a.mpii, "--mpii")):
        if not Path(path).is_dir():
            print(f"{what} {path}: no such folder", file=sys.stderr)
            return 2
    eyes = read_eye_folder(a.real)
    if eyes.groups is None or a.pose_column not in eyes.meta \
            or (a.mirror_eye != "none" and eyes.sides is None):
        print(f"{a.real}: needs meta.csv with subject, {a.pose_column}"
              f"{'' if a.mirror_eye == 'none' else ' and eye'} columns", file=sys.stderr)
        return 2
    analysis, _ = _split(eyes)
    mirrored = np.zeros(len(eyes), dtype=bool)
    if a.mirror_eye != "none":
        mirrored = mirrored_mask(eyes, a.mirror_eye)
        eyes = mirror_side(eyes, a.mirror_eye)
    real_pose = mirrored_yaw(eyes.meta[a.pose_column], mirrored)
    mpii = read_eye_folder(a.mpii).images
    per_seed = {seed: _seed(seed, eyes, analysis, real_pose, mpii, a) for seed in a.seeds}
    rows = []
    for name, *_ in REFINERS:
        med = {k: statistics.median(per_seed[s][name][k] for s in a.seeds)
               for k in per_seed[a.seeds[0]][name]}
        rows.append({"refiner": name, **{k: f"{v:.3f}" if k.startswith("mmd") else f"{v:.2f}"
                                         for k, v in med.items()}})
    print()
    print_table(rows, ["refiner", "frechet_columbia_unrefined", "frechet_columbia_refined",
                       "frechet_mpiigaze_unrefined", "frechet_mpiigaze_refined",
                       "mmd_columbia_refined", "mmd_mpiigaze_refined", "label_shift_deg"])
    out = save(a.name, {"benchmark": "patch_gap", "machine": machine(), "real": str(a.real),
                        "mpii": str(a.mpii), "distribution": DISTRIBUTION, "steps": a.steps,
                        "pose_column": a.pose_column, "mirror_eye": a.mirror_eye,
                        "n_synthetic": a.n_synthetic, "seeds": a.seeds, "medians": rows,
                        "per_seed": {str(s): v for s, v in per_seed.items()}})
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
