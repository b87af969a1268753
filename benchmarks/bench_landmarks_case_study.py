"""The landmark case study on real faces: synthetic only, label transfer, syn+real, DA, real only.

    python -m benchmarks.bench_landmarks_case_study [--steps 400] [--n-source 4000]
    python -m benchmarks.bench_landmarks_case_study --holdout DIR     # extra real test set
    python -m benchmarks.bench_landmarks_case_study --quick           # smoke run, not results

Real data: ``../shared/data/real/lfpw-train`` (805 faces with 68 points) split 645/160 by
``split_face_folder`` (sorted names, seeded permutation, seed 0). The 645 are the only real
faces any row trains or fits on (labels for rows b, c, e; images only for row d); the
160 are only scored. Rows, at the same number of steps and batch size:

- (a) synthetic only; the 68 are the dense set's iBug vertices (no real labels at all);
- (b) model (a) + test-time label transfer fitted on the 645 real faces;
- (c) synthetic + real in training (a 68-point head on the shared backbone) + transfer;
- (d) DANN / DALN with the 645 real images unlabeled, then the same test-time transfer
  as (b) (the label convention still has to be learnt from somewhere);
- (e) supervised real only (68 points, the 645 faces).

Columns: NME on a held-out *synthetic* batch (inter-ocular, dense68 vs rendered 68),
and on the 160 real test faces inter-ocular and inter-pupil (and the --holdout set).
Reference (Synthesis AI case study, 300-W common subset, inter-pupil): synthetic only
4.777 with label adaptation, syn+real 3.825, unsupervised with discriminator 5.008, real
only 3.07. Writes benchmarks/results/landmarks_case_study.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, print_table, save

LFPW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "lfpw-train"


def _synthetic_test(settings, n: int, seed: int):
    """A held-out synthetic batch (another seed than any training batch)."""
    from synth.generate_faces import generate_face_batch, read_face_labels
    from synth.shards import BatchReader

    out = settings.batches_dir / f"case-study-syn-test-n{n}-s{seed}"
    if not (out / "manifest.json").is_file():
        generate_face_batch(out, n=n, seed=seed)
    r = BatchReader(out)
    return r.images(), read_face_labels(out)["points68"]


def _syn_nme(predictor, images: np.ndarray, points68: np.ndarray) -> float:
    import torch

    from analysis.landmark_eval import nme

    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    pred = predictor.predict_batches(x, 64).float().numpy()
    return float(np.mean(nme(pred, points68, "inter_ocular")))


def _real_only(settings, train_set, steps: int, seed: int, out: Path, batch_size: int):
    """Row (e): the hourglass trained on the real crops alone, 68 points."""
    import torch

    from models.data import ArraySource
    from models.train import TrainConfig, train
    from realdata.real_faces import load_real_faces

    faces = load_real_faces(train_set)
    pts = faces.points.astype(np.float32)
    src = ArraySource(faces.images, batch_size, seed,
                      labels={"points": pts, "visible": np.ones(pts.shape[:2], np.float32)})
    cfg = TrainConfig(task="landmarks", model="hourglass_s", model_kwargs={"num_points": 68},
                      steps=steps, batch_size=batch_size, seed=seed, select="source_error",
                      eval_every=steps, ckpt_every=steps, warmup=min(100, steps // 5))
    val = {"image": torch.from_numpy(faces.nchw()[:64]), "points": torch.from_numpy(np.ascontiguousarray(pts[:64]))}
    if not (out / "last.pt").is_file():
        train(cfg, src, None, out, val_source=val, resume=True)
    return out / "last.pt"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--n-source", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--transfer-steps", type=int, default=1500)
    ap.add_argument("--real", default=str(LFPW), help="images + .pts (split 645/160)")
    ap.add_argument("--holdout", help="extra real test set (images + .pts), never trained on")
    ap.add_argument("--rows", nargs="+", default=["a", "b", "c", "dann", "daln", "e"])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.steps, a.n_source, a.transfer_steps = 4, 64, 20
    if not Path(a.real).is_dir():
        print(f"no real faces at {a.real}: this benchmark needs ../shared (LFPW)", file=sys.stderr)
        return 2

    import torch

    torch.set_num_threads(int(os.environ.get("SYNTHLOOP_BENCH_THREADS", "2")))
    from realdata.splits import split_face_folder
    from synthloop.landmarks.evaluate import evaluate_landmarks_model
    from synthloop.landmarks.load import load_landmark_predictor
    from synthloop.landmarks.train import train_landmarks
    from synthloop.landmarks.transfer import fit_transfer_on_real
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    train_set, test_set = split_face_folder(a.real, n_test=160 if not a.quick else 20, seed=0)
    if a.quick:
        train_set = train_set.subset(list(range(40)))
    syn_imgs, syn_pts = _synthetic_test(settings, 64 if a.quick else 300, 12_345)
    root = settings.root / "case-study" / f"steps{a.steps}-n{a.n_source}-s{a.seed}"
    common = dict(steps=a.steps, seed=a.seed, n_source=a.n_source, batch_size=a.batch_size,
                  transfer_steps=a.transfer_steps, log=lambda *_: None, register=False)
    holdout = a.holdout
    rows, timings = [], {}

    def score(row: str, desc: str, predictor_ref, route=None, predictor=None):
        pred = predictor or load_landmark_predictor(predictor_ref, route)
        res = evaluate_landmarks_model(pred, test_set)
        r = {"row": row, "what": desc, "syn_nme_io": round(_syn_nme(pred, syn_imgs, syn_pts), 3),
             "real_nme_io": round(res["nme_inter_ocular"], 3),
             "real_nme_ip": round(res["nme_inter_pupil"], 3),
             "real_fail_010": round(res["failure_rate_010"], 3), "n_test": res["n"],
             "seconds": round(timings.get(row, 0.0), 1)}
        if holdout:
            h = evaluate_landmarks_model(pred, holdout)
            r.update(holdout_nme_io=round(h["nme_inter_ocular"], 3),
                     holdout_nme_ip=round(h["nme_inter_pupil"], 3))
        rows.append(r)
        print(json.dumps(r), file=sys.stderr)

    def trained(name: str, **kw):
        out = root / name
        marker = out / "bench_seconds.json"  # a finished row is scored again, not retrained
        if not (out / "last.pt").is_file() or not marker.is_file():
            t0 = time.perf_counter()
            # the synthetic batch (n_source faces, seed) is generated once and shared
            train_landmarks(settings, out=str(out), run_name=f"case-study-{name}", **common, **kw)
            marker.write_text(json.dumps({"seconds": time.perf_counter() - t0}))
        timings[name] = json.loads(marker.read_text())["seconds"]
        return out

    if {"a", "b"} & set(a.rows):
        ckpt_a = trained("a")
        timings["a (dense68)"] = timings["b (transfer)"] = timings["a"]
        score("a (dense68)", "synthetic only, nearest dense points as the 68", ckpt_a, "dense68")
        fit = fit_transfer_on_real(ckpt_a, train_set, a.transfer_steps, a.seed)
        score("b (transfer)", "synthetic only + test-time label transfer", None,
              predictor=fit.predictor)
    if "c" in a.rows:
        ckpt_c = trained("c", real_labeled=train_set)
        timings["c (syn+real)"] = timings["c (syn+real, transfer)"] = timings["c"]
        score("c (syn+real)", "synthetic + real in training, 68-point head", ckpt_c, "head68")
        fit = fit_transfer_on_real(ckpt_c, train_set, a.transfer_steps, a.seed)
        score("c (syn+real, transfer)", "synthetic + real in training, label transfer", None,
              predictor=fit.predictor)
    for m in ("dann", "daln"):
        if m in a.rows:
            ckpt = trained(m, method=m, target=train_set)
            timings[f"d ({m})"] = timings[m]
            fit = fit_transfer_on_real(ckpt, train_set, a.transfer_steps, a.seed)
            score(f"d ({m})", f"{m.upper()} on unlabeled real images + test-time transfer", None,
                  predictor=fit.predictor)
    if "e" in a.rows:
        marker = root / "e" / "bench_seconds.json"
        t0 = time.perf_counter()
        ck = _real_only(settings, train_set, a.steps, a.seed, root / "e", a.batch_size)
        if not marker.is_file():
            marker.write_text(json.dumps({"seconds": time.perf_counter() - t0}))
        timings["e (real only)"] = json.loads(marker.read_text())["seconds"]
        score("e (real only)", "supervised on the 645 real faces only", ck)

    cols = ["row", "syn_nme_io", "real_nme_io", "real_nme_ip", "real_fail_010", "seconds"]
    if holdout:
        cols += ["holdout_nme_io", "holdout_nme_ip"]
    print_table(rows, cols)
    name = "landmarks_case_study_quick" if a.quick else "landmarks_case_study"
    out = save(name, {"machine": machine(), "args": vars(a), "split": "lfpw-train 645/160 "
                      "(split_face_folder seed 0)", "rows": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
