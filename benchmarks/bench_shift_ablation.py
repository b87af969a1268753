"""Where does the simulated target's error come from? Train from scratch on the default
distribution with parts of the target's scene distribution swapped in, score on the
target.

    python -m benchmarks.bench_shift_ablation [--versions v1 v2] [--seeds 0] [--steps 600]

Rows (one model each, same samples and steps): ``default``; ``+gaze`` (the target's gaze
pitch/yaw weights); ``+gaze+head`` (and its head pitch/yaw: every label factor the loop
can re-weight when the target's labels carry head pose); ``+appearance`` (every other
shifted factor, nothing of the labels); ``target`` (the target's whole scene
distribution: the feedback benchmark's oracle); ``target+camera`` (also the target's
camera pipeline applied to the training images, which no factor reproduces). The gap
between ``default`` and ``target`` is what re-weighting the factors can recover at this
budget; the rows in between say which factors it lies in. Writes
benchmarks/results/shift_ablation.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, print_table, save

ROWS = ("default", "+gaze", "+gaze+head", "+appearance", "target", "target+camera")


def _distribution(row: str, version: str):
    from synth.eye_distribution import default_eye_distribution
    from synth.targets import LABEL_FACTORS, shifted_eye_distribution

    base, target = default_eye_distribution(), shifted_eye_distribution(version=version)
    take = {
        "default": (),
        "+gaze": ("gaze_pitch", "gaze_yaw"),
        "+gaze+head": LABEL_FACTORS,
        "+appearance": tuple(f.name for f in base.factors if f.name not in LABEL_FACTORS),
    }.get(row)
    if take is None:  # target, target+camera
        return target
    factors = tuple(target.factor(f.name) if f.name in take else f for f in base.factors)
    return base.derive(f"shift ablation {row} ({version})", factors=factors)


def _score(row: str, version: str, seed: int, n: int, steps: int, eyes, work: Path) -> float:
    import numpy as np
    import torch

    from analysis.gaze_eval import angular_errors_deg
    from models.data import ArraySource
    from models.predict import predict
    from models.registry import load_model
    from models.train import TrainConfig, train
    from synth.eye_generator import EyeGenerator
    from synth.targets import target_camera

    images, scenes = EyeGenerator(_distribution(row, version)).render_all(n, seed)
    if row == "target+camera":
        images = target_camera(images, seed + 99)
    labels = np.stack([scenes["gaze_pitch"], scenes["gaze_yaw"]], 1).astype(np.float32)
    out = work / f"{version}-{row}-s{seed}"
    cfg = TrainConfig(steps=steps, seed=seed, warmup=min(100, steps // 5), eval_every=steps,
                      ckpt_every=steps)
    train(cfg, ArraySource(images, 64, seed, labels={"pitchyaw": labels}), None, out,
          val_target={"image": torch.from_numpy(eyes.images[:512]).unsqueeze(1)})
    net = load_model(out / "last.pt").eval()
    pred = predict(net, torch.from_numpy(eyes.images).unsqueeze(1), amp=False).pitchyaw
    return float(angular_errors_deg(pred.numpy().astype(np.float64), eyes.pitchyaw).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--versions", nargs="+", default=["v1", "v2"], choices=["v1", "v2"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--n", type=int, default=8000, help="synthetic training eyes per model")
    ap.add_argument("--steps", type=int, default=600, help="training steps per model")
    ap.add_argument("--target-n", type=int, default=3000)
    ap.add_argument("--quick", action="store_true", help="tiny budget: a smoke run, not a result")
    a = ap.parse_args(argv)
    if a.quick:
        a.versions, a.seeds, a.n, a.steps, a.target_n = ["v2"], [0], 256, 10, 64

    import torch

    from realdata.eyes import read_eye_folder
    from synth.targets import target_name, write_simulated_target

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    results = []
    with tempfile.TemporaryDirectory(prefix="shift-ablation-") as tmp:
        work = Path(tmp)
        for version in a.versions:
            # the feedback benchmark's target (same size and seed), written here afresh
            folder = write_simulated_target(work / f"target-{version}", a.target_n, 7,
                                            labeled=True, version=version)
            eyes = read_eye_folder(folder)
            for row in ROWS:
                errs = []
                for seed in a.seeds:
                    t0 = time.perf_counter()
                    errs.append(_score(row, version, seed, a.n, a.steps, eyes, work))
                    print(f"{target_name(version)} {row:>14} seed {seed}: {errs[-1]:.2f} deg "
                          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
                results.append({"target": target_name(version), "row": row, "errors": errs,
                                "mean": statistics.mean(errs)})
    table = []
    for r in results:
        base = next(x["mean"] for x in results if x["target"] == r["target"] and x["row"] == "default")
        table.append({"target": r["target"], "training distribution": r["row"],
                      "error (deg)": f"{r['mean']:.2f}",
                      "vs default": f"{100 * (r['mean'] - base) / base:+.1f}%"})
    print_table(table, ["target", "training distribution", "error (deg)", "vs default"])
    print(f"({len(a.seeds)} seed(s); {a.n} eyes, {a.steps} steps from scratch per model; the "
          "target's held-out error as the feedback benchmark measures it, on all its images)")
    out = save("shift_ablation" + ("_quick" if a.quick else ""),
               {"machine": machine(), "args": vars(a), "rows": results, "table": table})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
