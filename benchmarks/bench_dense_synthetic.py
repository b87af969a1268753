"""How well a dense-point landmark model fits synthetic faces it never saw: NME of the
dense set (all points, and the visible ones) on a fresh face batch rendered with another
seed, normalised by the inter-ocular distance of its iBug eye corners (a dense set's
first 68 points are the iBug vertices). Issue 13's goal: <= 3% for the 500-point head.

    python -m benchmarks.bench_dense_synthetic --model RUN_OR_CKPT [RUN ...] [--n 500]
        [--seed 1] [--shape-prior [--prior-n 4000] [--prior-seed 2]] [--name dense_synthetic]

Each ``--model`` is a checkpoint (or a run folder with ``last.pt``) of a model trained on
a dense set alone, e.g. arm (b) or the pre-training of arm (c) of
``bench_landmark_label_efficiency`` (``.synthloop/label-efficiency/*-b-*``). The fresh
batch is ``--n`` faces of the default face distribution at ``--seed`` (the training
batches there use seed 0), written once under the project home and validated like any
batch. Predictions are flip-averaged with the batch's mirror permutation, as the real
faces are scored. ``--shape-prior`` also scores the points constrained by a linear shape
prior (:mod:`models.shape_prior`) with each point weighted by a visibility probe
(:mod:`models.visibility_probe`), both fitted on a third batch of ``--prior-n`` faces
(``--prior-seed``), neither the training nor the test faces. Prints a table; writes
benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import machine, print_table, save


def fresh_faces(n: int, seed: int, crop_size: int, log=print):
    """Images at ``crop_size`` and dense labels of a fresh default-distribution face batch."""
    from models.crop_resize import ResizedSource
    from models.data import ShardSource
    from synthloop.batches import prepare_training_batch
    from synthloop.landmarks.source import synthetic_labels
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    reader = prepare_training_batch(settings, "landmarks", source=None, n=n, seed=seed, log=log)
    # unsupervised occluded points get weight 0: the weights are the visibility flags
    labels = synthetic_labels(reader.path, "dense", supervise_occluded=False)
    batch = ResizedSource(ShardSource(reader, 1, seed, {"points": labels.points,
                                                        "visible": labels.weights}),
                          crop_size).gather(np.arange(len(reader)))
    return batch, labels


@functools.cache
def _prior_faces(n: int, seed: int, crop_size: int):
    """The faces the prior and the probe are fitted on, and the prior: read and fitted once
    per crop size, however many models are scored."""
    from models.shape_prior import ShapePrior

    batch, labels = fresh_faces(n, seed, crop_size)
    return batch, ShapePrior.fit(batch["points"], mirror=labels.mirror, width=crop_size)


def _constrained(net, batch, prior: tuple[int, int], pred):
    """``pred`` constrained by the shape prior and a visibility probe for ``net``, both
    fitted on ``prior`` = (faces, seed), and the probe's accuracy on ``batch``."""
    from models.shape_prior import constrain_points
    from models.visibility_probe import fit_visibility_probe, flip_pooled_features

    pbatch, shape_prior = _prior_faces(*prior, int(net.input_size))
    probe = fit_visibility_probe(flip_pooled_features(net, pbatch["image"]), pbatch["visible"])
    vis = probe.visibility(flip_pooled_features(net, batch["image"]))
    accuracy = float(((vis > 0.5).float() == batch["visible"].float()).float().mean())
    return constrain_points(pred, vis, shape_prior), accuracy


def score(model_path: str, n: int, seed: int, prior: tuple[int, int] | None = None) -> list[dict]:
    """One row for the model's flip-averaged points; with ``prior`` (faces, seed) a second
    with the shape prior and visibility probe fitted on such a batch."""
    from models.landmark_losses import nme
    from models.predict import predict_points_flip_averaged
    from models.registry import load_model

    path = Path(model_path)
    net = load_model(path / "last.pt" if path.is_dir() else path).eval()
    batch, labels = fresh_faces(n, seed, int(net.input_size))
    if net.num_points != labels.points.shape[1]:
        raise SystemExit(f"{model_path}: a model of {net.num_points} points, the batch's "
                         f"{labels.name} has {labels.points.shape[1]}")
    pred = predict_points_flip_averaged(net, batch["image"], labels.mirror, amp=False)
    true = batch["points"]
    # nme() knows the inter-ocular distance of the 68 layout only: take the mean pixel
    # error per face from it and divide by the distance of the set's iBug corners 36, 45
    ocular = (true[:, 36] - true[:, 45]).norm(dim=-1).double()

    def io(points, visible=None):
        px = nme(points, true, norm="crop", crop_size=100.0, visible=visible, reduction="none")
        return 100.0 * px / ocular

    def row(points, decoding, **extra):
        every, seen, hidden = io(points), io(points, batch["visible"]), io(points, 1 - batch["visible"])
        return {"model": str(model_path), "decoding": decoding, "point_set": labels.name,
                "n": int(len(true)), "nme_io_all": float(every.nanmean()),
                "nme_io_visible": float(seen.nanmean()), "nme_io_hidden": float(hidden.nanmean()),
                "nme_io_68": float(nme(points[:, :68], true[:, :68], norm="inter_ocular")),
                "median_io_all": float(every.nanmedian()),
                "median_io_visible": float(seen.nanmedian()),
                "failure_010_all": float((every > 10).double().mean()), **extra}

    rows = [row(pred, "heatmaps")]
    if prior is not None:
        constrained, accuracy = _constrained(net, batch, prior, pred)
        rows.append(row(constrained, "shape prior", visibility_accuracy=accuracy))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", nargs="+", required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shape-prior", action="store_true",
                    help="also score the points constrained by a shape prior and visibility probe")
    ap.add_argument("--prior-n", type=int, default=4000, help="faces the prior and probe are fitted on")
    ap.add_argument("--prior-seed", type=int, default=2)
    ap.add_argument("--name", default="dense_synthetic")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("SYNTHLOOP_BENCH_THREADS", "2")))
    if a.shape_prior and a.prior_seed == a.seed:
        ap.error("--prior-seed must differ from --seed: the prior is fitted on other faces")
    prior = (a.prior_n, a.prior_seed) if a.shape_prior else None
    rows = [r for m in a.model for r in score(m, a.n, a.seed, prior)]
    print_table([{**r, "model": Path(r["model"]).name} for r in rows],
                ["model", "decoding", "point_set", "n", "nme_io_all", "nme_io_visible",
                 "nme_io_hidden", "nme_io_68",
                 "median_io_all", "median_io_visible", "failure_010_all"])
    print("goal: <= 3% inter-ocular NME on fresh synthetic faces for the 500-point head")
    save(a.name, {"machine": machine(), "args": vars(a), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
