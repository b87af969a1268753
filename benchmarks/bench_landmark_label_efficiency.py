"""Landmarks on real LFPW faces by the number of labeled real faces: the label-efficiency
benchmark of issue 13, arm (a) real only so far.

    python -m benchmarks.bench_landmark_label_efficiency [--n 25 100 645] [--seeds 0 1 2]
        [--steps 3000] [--model landmark_resnet_s]
    python -m benchmarks.bench_landmark_label_efficiency --quick     # smoke run, not results

Real data: ``../shared/data/real/lfpw-train`` split 645/160 by ``split_face_folder`` (the
case study's split). An arm with ``n`` labeled faces trains on the first ``n`` of a
seeded permutation of the 645; the 160 are only scored, as crops by the shared protocol,
with test-time flip averaging. The recipe: the model's crops, the full face
augmentation with the iBug-68 mirror permutation (``models.landmark_augment``), Wing
loss on the soft-argmax coordinates, AdamW with warm-up and cosine decay, bf16 autocast
and channels_last on the CPU. The last checkpoint is scored (no selection on test faces).

Columns: NME inter-ocular and inter-pupil (%, the 160 faces, mean over faces), failure
rate (share of faces above 10% inter-ocular), training minutes. Median and spread over
seeds per ``n``. Writes benchmarks/results/landmark_label_efficiency.json and a plot.
Arms (b) synthetic + transfer, (c) synthetic pre-training + real and (d) DALN are not
built yet.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, print_table, save

LFPW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "lfpw-train"
RESULTS = Path(__file__).resolve().parent / "results"


def _recipe(model: str, steps: int, batch_size: int, seed: int):
    from models.train import TrainConfig
    from synth.face_model import IBUG68_MIRROR

    return TrainConfig(
        task="landmarks", model=model, model_kwargs={"num_points": 68}, method="source_only",
        steps=steps, batch_size=batch_size, lr=2e-3, weight_decay=1e-4,
        warmup=max(1, min(200, steps // 20)), seed=seed, select="source_error", cpu_amp=True,
        eval_every=steps, ckpt_every=max(1, steps // 4), log_every=max(1, steps // 20),
        task_kwargs={"coord": "wing", "augment": "faces", "mirror": list(map(int, IBUG68_MIRROR))})


def run_arm(train_faces, test_faces, n: int, seed: int, steps: int, model: str, batch_size: int,
            out: Path) -> dict:
    """Arm (a): a model trained on ``n`` real faces only; scored on the test faces."""
    import torch

    from analysis.landmark_eval import evaluate_landmarks
    from models.data import ArraySource
    from models.predict import predict_points_flip_averaged
    from models.registry import load_model
    from models.train import train
    from synth.face_model import IBUG68_MIRROR

    order = np.random.default_rng(seed).permutation(len(train_faces.images))[:n]
    images = train_faces.images[order]
    pts = train_faces.points[order].astype(np.float32)
    src = ArraySource(images, batch_size, seed,
                      labels={"points": pts, "visible": np.ones(pts.shape[:2], np.float32)})
    val = {"image": torch.from_numpy(train_faces.nchw(order[:32])),
           "points": torch.from_numpy(np.ascontiguousarray(pts[:32]))}
    cfg = _recipe(model, steps, batch_size, seed)
    t0 = time.perf_counter()
    train(cfg, src, None, out, val_source=val, resume=True)
    minutes = (time.perf_counter() - t0) / 60
    net = load_model(out / "last.pt").eval()
    pred = predict_points_flip_averaged(net, torch.from_numpy(test_faces.nchw()),
                                        list(map(int, IBUG68_MIRROR)), amp=False).numpy()
    ev = evaluate_landmarks(pred, test_faces.points)
    return {"arm": "a real only", "n": n, "seed": seed, "steps": steps, "model": model,
            "nme_io": float(ev["nme_inter_ocular"]), "nme_ip": float(ev["nme_inter_pupil"]),
            "failure_010": float(ev["failure_rate_010"]), "train_minutes": round(minutes, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[25, 100, 645])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--model", default="landmark_resnet_s")
    ap.add_argument("--real", default=str(LFPW), help="images + .pts (split 645/160)")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.seeds, a.steps, a.batch_size = [8], [0], 4, 4
    if not Path(a.real).is_dir():
        print(f"no real faces at {a.real}: this benchmark needs ../shared (LFPW)", file=sys.stderr)
        return 2

    import torch

    torch.set_num_threads(int(os.environ.get("SYNTHLOOP_BENCH_THREADS", "2")))
    from models.registry import create_model
    from realdata.real_faces import load_real_faces
    from realdata.splits import split_face_folder
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    size = int(create_model(a.model, num_points=68).input_size)
    train_set, test_set = split_face_folder(a.real, n_test=160 if not a.quick else 8, seed=0)
    if a.quick:
        train_set = train_set.subset(list(range(16)))
    train_faces, test_faces = load_real_faces(train_set, size), load_real_faces(test_set, size)
    root = settings.root / "label-efficiency"
    rows = []
    for n in a.n:
        for seed in a.seeds:
            out = root / f"{a.model}-a-n{n}-s{seed}-steps{a.steps}"
            row = run_arm(train_faces, test_faces, min(n, len(train_faces.images)), seed, a.steps,
                          a.model, a.batch_size, out)
            print(f"n={n} seed={seed}: io {row['nme_io']:.2f}%  ip {row['nme_ip']:.2f}%  "
                  f"fail {100 * row['failure_010']:.1f}%  {row['train_minutes']:.1f} min",
                  file=sys.stderr, flush=True)
            rows.append(row)
    summary = []
    for n in a.n:
        mine = [r for r in rows if r["n"] == n]
        summary.append({"arm": "a real only", "n": n, "seeds": len(mine),
                        "nme_io_median": round(float(np.median([r["nme_io"] for r in mine])), 2),
                        "nme_io_range": f"{min(r['nme_io'] for r in mine):.2f}-{max(r['nme_io'] for r in mine):.2f}",
                        "nme_ip_median": round(float(np.median([r["nme_ip"] for r in mine])), 2),
                        "failure_median": round(float(np.median([r["failure_010"] for r in mine])), 3),
                        "train_minutes_median": round(float(np.median([r["train_minutes"] for r in mine])), 1)})
    print_table(summary, list(summary[0]))
    if not a.quick:
        _plot(summary, RESULTS / "landmark_label_efficiency.png")
    save("landmark_label_efficiency" + ("_quick" if a.quick else ""),
         {"machine": machine(), "args": vars(a), "rows": rows, "summary": summary})
    return 0


def _plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([s["n"] for s in summary], [s["nme_io_median"] for s in summary], "o-", label="real only")
    ax.set_xscale("log")
    ax.set_xlabel("labeled real faces")
    ax.set_ylabel("NME inter-ocular (%), 160 LFPW test faces")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
