"""``synthloop refine``: a synthetic batch refined toward unlabeled real images (SimGAN, or
the mean-patch shift: shared, per head pose, or aligned by each face's points)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from synthloop.cli.common import EXIT_INVALID, EXIT_OK, at_least, decay, log, positive_int
from synthloop.loop.config import REFINE_METHOD_NAMES
from synthloop.refine_methods import (
    DEFAULT_POSE_COLUMN,
    MEAN_PATCH_STRENGTH,
    POSE_MEAN_PATCH_STRENGTH,
)

#: what a worker refines shards with (:func:`models.refine_shards.refine_shard`)
REFINE_SHARD_MODULES = ("models.refine_shards",)


def cmd_refine(a: argparse.Namespace) -> int:
    from synthloop.refine import RefineRequest, validate_refined, write_refined_batch
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    req = RefineRequest(batch=a.batch, real=a.real, out=a.out, refiner=a.refiner, steps=a.steps,
                        self_reg=a.self_reg, consistency=a.consistency, width=a.width, blocks=a.blocks,
                        batch_size=a.batch_size, probe_steps=a.probe_steps,
                        pretrain_discriminator=a.pretrain_steps, bf16=a.bf16, ema=a.ema, seed=a.seed,
                        device=a.device, overwrite=a.overwrite, method=a.method,
                        strength=a.strength, pose_column=a.pose_column, mirror_eye=a.mirror_eye,
                        landmarker=a.landmarker)
    with contextlib.ExitStack() as stack:
        map_shards = None
        if a.workers or a.dask_address:
            from synthloop.dask_cluster import client_shard_map

            log(f"refining the shards on {a.dask_address or f'{a.workers} worker processes (Dask)'}")
            map_shards = stack.enter_context(client_shard_map(a.workers, a.dask_address,
                                                              preload=REFINE_SHARD_MODULES))
        batch = write_refined_batch(settings, req, log=log, map_shards=map_shards)
    verdict = validate_refined(batch)
    record = {"batch_id": batch.batch_id, "path": str(batch.path.resolve()),
              "parent": batch.parent_id, "status": verdict.status, "failing": verdict.failing,
              "mlflow_run": batch.run_id, "label_shift": verdict.label_shift,
              "mean_abs_change": round(batch.mean_change, 3),
              "seconds": {k: round(v, 1) for k, v in batch.seconds.items()}}
    if a.json:
        print(json.dumps(record))
    else:
        print(f"{batch.batch_id}\t{record['path']}")
        shift = verdict.label_shift
        if shift:
            log(f"label check ({shift['column']}): mean {shift['mean']:.2f}, 95th percentile "
                f"{shift['p95']:.2f}, max {shift['max']:.2f}")
        log(f"{batch.batch_id}: {verdict.status} (child of {batch.parent_id}; MLflow run "
            f"{batch.run_id})")
        for f in verdict.failing:
            print(f"  failed: {f}", file=sys.stderr)
    return EXIT_OK if verdict.status == "accepted" else EXIT_INVALID


def add_commands(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "refine", help="refine a synthetic batch toward unlabeled real images (SimGAN or the "
        "mean patch): a new batch with the same labels, validated, recorded as the parent's child",
        description="Train a SimGAN refiner from the batch's images toward the real images "
        "(their labels, if any, are ignored), fit the mean-patch shift (--method mean-patch: "
        "every image moved by the real mean image minus the batch's; pose-mean-patch: the same "
        "at each head pose of the real eyes, each eye moved by its own pose's; landmark-patch: the "
        "difference of mean faces aligned by their 68 points, warped onto each face; real-context: "
        "each face set into a real photograph aligned by the 68 points), or reuse "
        "a refiner "
        "(--refiner), and write every image "
        "refined into a new batch with the parent's labels and metadata. The new batch is "
        "validated with the parent's checks plus a label-preservation check, and recorded in "
        "the catalog and in MLflow (experiment synthloop-refine). Exit 0 accepted, 1 "
        "quarantined, 2 bad input.")
    r.add_argument("batch", help="the parent batch folder (accepted or not yet validated)")
    r.add_argument("--real", required=True,
                   help="real images to refine toward (eyes: a folder with labels.csv or "
                        "manifest.csv; faces: a labeled face folder, cropped by the shared protocol)")
    r.add_argument("--out", required=True, help="folder of the refined batch to create")
    r.add_argument("--refiner", help="a refiner.pt to reuse (e.g. OUT/refiner/refiner.pt of an "
                                     "earlier refined batch) instead of training one")
    r.add_argument("--method", choices=REFINE_METHOD_NAMES, default="simgan",
                   help="simgan: an adversarially trained refiner (default); mean-patch: add "
                        "the difference of the real and synthetic mean images (seconds, no "
                        "training; the SimGAN options below do not apply); pose-mean-patch "
                        "(eyes): that difference at each real head pose (--pose-column), each "
                        "synthetic eye taking the one nearest its head yaw; landmark-patch "
                        "(faces): the difference of the mean faces warped onto one shape by "
                        "their 68 points (the real ones found by --landmarker), warped back onto "
                        "each synthetic face; real-context (faces): each face kept inside its "
                        "68 points' outline and set into the real photograph (aligned by the "
                        "points, found by --landmarker) of the closest shape, its hair, ears, "
                        "neck and background around it")
    r.add_argument("--strength", type=at_least(0.0, float),
                   help="the patch methods: how far toward the real mean image (1: all the "
                        f"way; default {POSE_MEAN_PATCH_STRENGTH:g} for pose-mean-patch, "
                        f"{MEAN_PATCH_STRENGTH:g} for mean-patch and landmark-patch); "
                        "real-context: how much of the photograph's own shading the face "
                        "takes, 0-1 (default 0)")
    r.add_argument("--pose-column", default=DEFAULT_POSE_COLUMN,
                   help="pose-mean-patch: the real folder's meta.csv column of each eye's head "
                        "yaw in degrees (default %(default)s, Columbia Gaze's)")
    r.add_argument("--landmarker", metavar="MODEL",
                   help="landmark-patch, real-context: the landmark model (run folder, checkpoint or models:/ "
                        "URI) that finds the real faces' 68 points, e.g. one trained on the "
                        "synthetic batch")
    r.add_argument("--mirror-eye", choices=["L", "R"],
                   help="eyes: mirror the real eyes of this side onto the other's first (meta.csv "
                        "'eye' column), as models trained with --mirror-eye see them")
    r.add_argument("--steps", type=positive_int, default=1000, help="refiner training steps")
    r.add_argument("--self-reg", type=at_least(0.0, float), default=10.0,
                   help="weight of the L1 distance to the synthetic image (higher: closer to it)")
    r.add_argument("--consistency", type=at_least(0.0, float), default=0.0, metavar="W",
                   help="gaze: also keep a frozen gaze probe's answer still while the refiner "
                        "trains, W per degree it moves (e.g. 0.3; default 0: pixels only)")
    r.add_argument("--width", type=positive_int, default=32, help="refiner channels")
    r.add_argument("--blocks", type=at_least(0), default=4, help="refiner ResNet blocks")
    r.add_argument("--batch-size", type=at_least(2), default=32, help="refiner batch size")
    r.add_argument("--pretrain-steps", type=at_least(0), default=200,
                   help="discriminator pre-training steps before the refiner trains (the "
                        "paper's 200; 0 skips it)")
    r.add_argument("--bf16", action="store_true",
                   help="train the refiner with bf16 convolutions and channels_last tensors "
                        "(~3x faster on CPUs with AVX512-bf16 and on GPUs)")
    r.add_argument("--ema", type=decay, metavar="DECAY",
                   help="refine with a moving average of the refiner's weights (e.g. 0.999) "
                        "instead of its last weights, which drift with the adversarial game")
    r.add_argument("--probe-steps", type=positive_int, default=400,
                   help="training steps of each label probe (gaze: the frozen probe, and for "
                        "the patches the two learnability probes)")
    r.add_argument("--seed", type=int, default=0, help="random seed")
    r.add_argument("--device", default="cpu", help="cpu or cuda")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    r.add_argument("--workers", type=at_least(0), default=0,
                   help="refine the shards in this many single-threaded processes of a local "
                   "Dask cluster (default 0: in this process); the bytes do not depend on it")
    r.add_argument("--dask-address",
                   help="refine the shards on this existing Dask cluster (tcp://host:8786); its "
                   "workers must see the batch folders at the same paths")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=cmd_refine)
