"""A refined synthetic face batch for ``bench_landmark_label_efficiency --source-batch``,
made the way a user without real labels would make it:

    python -m benchmarks.prepare_refined_faces --out DIR [--n-source 8000]
        [--distribution benchmarks/distributions/faces-lfpw-like.json]
        [--method real-context|landmark-patch] [--strength S] [--landmarker-steps 3000]
    python -m benchmarks.prepare_refined_faces --out DIR --quick   # a smoke run

1. ``synthloop generate`` renders ``--n-source`` faces, seed 0 (the seed the label-
   efficiency benchmark renders its own batch with);
2. ``synthloop train --task landmarks --method source_only`` trains the landmarker on them
   for ``--landmarker-steps`` (no real label reaches it);
3. the batch is refined (:func:`synthloop.refine.write_refined_batch`) toward the 645
   LFPW training photographs of the benchmark's split, unlabeled (the 160 test faces
   never reach the refiner), their 68 points placed by the landmarker, and validated.

Everything goes under ``DIR`` (kept: a rerun resumes). Prints the refined batch's path
and its status; writes benchmarks/results/``--name``.json. Exit 0 accepted, 1 quarantined
or refused (named), 2 without the real faces.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_landmark_label_efficiency import LFPW, lfpw_train_indices
from benchmarks.common import machine, print_table, save

ALIGNED_METHODS = ("real-context", "landmark-patch")


def _synthloop(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "synthloop.cli", *args], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for the batches and the landmarker")
    ap.add_argument("--n-source", type=int, default=8000)
    ap.add_argument("--distribution", help="the faces' scene distribution (default: built-in)")
    ap.add_argument("--method", choices=ALIGNED_METHODS, default="real-context")
    ap.add_argument("--strength", type=float, default=None,
                    help="the method's strength (real-context: how much of the photograph's "
                         "shading the face takes; default: the method's own)")
    ap.add_argument("--landmarker-steps", type=int, default=3000)
    ap.add_argument("--real", default=str(LFPW), help="images + .pts (split 645/160)")
    ap.add_argument("--name", default="prepare_refined_faces")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 16 faces, 4 steps")
    a = ap.parse_args(argv)
    if a.quick:
        a.n_source, a.landmarker_steps, a.name = 16, 4, f"{a.name}_quick"
    if not Path(a.real).is_dir():
        print(f"no real faces at {a.real}: this needs ../shared (LFPW)", file=sys.stderr)
        return 2
    from synthloop.errors import UsageError
    from synthloop.refine import RefineRequest
    from synthloop.refine_methods import REFINE_METHODS
    from synthloop.settings import get_settings

    out = Path(a.out)
    batch, landmarker, refined = out / "synthetic", out / "landmarker", out / f"refined-{a.method}"
    real_train = lfpw_train_indices(a.real)
    try:  # a setting the method refuses is named before anything is rendered or trained
        request = RefineRequest(batch=str(batch), real=a.real, out=str(refined), seed=0,
                                method=a.method, real_indices=real_train.tolist(),
                                landmarker=str(landmarker), strength=a.strength)
        REFINE_METHODS[a.method].config(request)
    except UsageError as e:
        print(f"prepare_refined_faces: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    if not (batch / "manifest.json").is_file():
        _synthloop("generate", "--task", "landmarks", "-n", str(a.n_source), "--seed", "0",
                   "--out", str(batch), *(["--distribution", a.distribution] if a.distribution else []))
    if not landmarker.exists():
        _synthloop("train", "--task", "landmarks", "--method", "source_only", "--source", str(batch),
                   "--steps", str(a.landmarker_steps), "--seed", "0", "--out", str(landmarker))
    from synthloop.refine import validate_refined, write_refined_batch

    if not (refined / "manifest.json").is_file():
        try:
            made = write_refined_batch(get_settings(), request)
        except UsageError as e:  # e.g. a landmarker that finds no face in the photographs
            print(f"not refined: {e}", file=sys.stderr)
            return 1
        verdict = validate_refined(made)
    else:
        from synth.shards import BatchReader

        verdict = BatchReader(refined).status
    row = {"batch": str(refined), "status": verdict.status, "method": a.method,
           "real_photos": len(real_train), "minutes": round((time.perf_counter() - t0) / 60, 1)}
    print_table([row], list(row))
    save(a.name, {"machine": machine(), "args": vars(a), "result": row})
    return 0 if verdict.status == "accepted" else 1


if __name__ == "__main__":
    sys.exit(main())
