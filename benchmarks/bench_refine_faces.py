"""Landmarks on real LFPW faces from SimGAN-refined vs unrefined synthetic faces: the face
half of issue 14's benchmark.

    python -m benchmarks.bench_refine_faces [--seeds 0 1 2] [--n 100 645] [--steps 3000]
        [--refiner-steps 1000] [--refiner-width 16] [--refiner-batch 8]
    python -m benchmarks.bench_refine_faces --refine-method mean-patch [--strength 0.5]
    python -m benchmarks.bench_refine_faces --refine-method landmark-patch [--strength 1.0]
    python -m benchmarks.bench_refine_faces --refine-method real-context [--strength 1.0]
    python -m benchmarks.bench_refine_faces --quick     # a smoke run, not results

Per seed, at an equal training budget:

1. the synthetic face batch of the label-efficiency benchmark (``--n-source`` faces) is
   refined by the product's own job (:func:`synthloop.refine.write_refined_batch`, bf16)
   toward the 645 LFPW training faces, unlabeled (``real_indices``: the 160 test faces
   never reach the refiner), and validated (the model-free landmark-structure check);
   the methods that align by the 68 points (``landmark-patch``, ``real-context``) find
   the real faces' points with the seed's unrefined arm-(b) model, trained first, so no
   real label reaches them;
2. arm (b) of ``bench_landmark_label_efficiency`` runs on each batch: a dense-point model
   trained on the synthetic faces alone, then the label-transfer network fitted on ``n``
   labeled training faces;
3. both are scored on the 160 held-out faces (inter-ocular / inter-pupil NME, flip
   averaged).

Writes benchmarks/results/refine_faces.json (``--name``) and a synthetic / refined / real
grid with the 68 points (``<name>_samples.png``). The goal: >= 10% lower NME refined.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_landmark_label_efficiency import LFPW, Bench, lfpw_split, lfpw_train_indices
from benchmarks.common import machine, print_table, results_dir, save
from models.landmark_recipe import EMA_DECAY
from synthloop.loop.config import REFINE_METHOD_NAMES, TRANSFER_FIT_NAMES
from synthloop.refine_methods import MEAN_PATCH_STRENGTH, REFINE_METHODS, default_strength


def _refine(bench: Bench, a, seed: int, real_train: np.ndarray, out: Path,
            landmarker: Path | None = None) -> tuple[str | None, dict]:
    """The batch refined toward the training faces and validated (kept when it exists:
    reruns resume); None and the product's reason where it refused to refine."""
    import json

    from synthloop.errors import UsageError
    from synthloop.refine import RefineRequest, validate_refined, write_refined_batch

    info: dict = {}
    if not (out / "manifest.json").is_file():
        common = dict(batch=bench.batch, real=a.real, out=str(out), seed=seed,
                      real_indices=real_train.tolist())
        req = (RefineRequest(**common, method=a.refine_method, strength=a.strength,
                             **({"landmarker": str(landmarker)} if landmarker else {}))
               if not REFINE_METHODS[a.refine_method].trains else
               RefineRequest(**common, steps=a.refiner_steps, self_reg=a.self_reg,
                             width=a.refiner_width, blocks=a.refiner_blocks,
                             batch_size=a.refiner_batch, bf16=True))
        t0 = time.perf_counter()
        try:
            made = write_refined_batch(bench.settings, req, log=lambda m: print("   ", m, flush=True))
        except UsageError as e:  # e.g. a landmarker whose points span no face
            print(f"    not refined: {e}", flush=True)
            return None, {"status": "not refined", "failing": [str(e)], "label_check": None}
        validate_refined(made)
        info["refine_minutes"] = (time.perf_counter() - t0) / 60
        info["seconds"] = made.seconds
    from expectations.validate import RESULT_FILE
    from synth.shards import BatchReader

    result = json.loads((out / RESULT_FILE).read_text())
    info.update(status=BatchReader(out).status.status, failing=result["failing"],
                label_check=result["statistics"].get("label_preservation"))
    return str(out), info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n", type=int, nargs="+", default=[100, 645],
                    help="labeled real faces the label transfer is fitted on")
    ap.add_argument("--steps", type=int, default=3000, help="landmark training steps per arm")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n-source", type=int, default=4000, help="synthetic faces")
    ap.add_argument("--transfer-fit", choices=TRANSFER_FIT_NAMES, default=TRANSFER_FIT_NAMES[0],
                    help="how the label transfer is fitted (models/transfer_fits.py)")
    ap.add_argument("--transfer-steps", type=int, default=2000, help="the mlp fit's steps")
    ap.add_argument("--distribution", help="the synthetic faces' scene distribution (JSON; "
                    "default: the built-in one)")
    ap.add_argument("--refine-method", choices=REFINE_METHOD_NAMES, default="simgan",
                    help="mean-patch: move every synthetic face by the training faces' mean "
                         "crop minus theirs; landmark-patch: the same aligned by each face's 68 "
                         "points; real-context: each face set into a training photograph "
                         "aligned by the points (the SimGAN options below do not apply)")
    ap.add_argument("--strength", type=float,
                    help="the patch methods: how far toward the real mean crop (default: the "
                         f"method's, {MEAN_PATCH_STRENGTH:g}); real-context: the share of the "
                         "photograph's shading the face takes (default 0)")
    ap.add_argument("--refiner-steps", type=int, default=1000)
    ap.add_argument("--self-reg", type=float, default=10.0,
                    help="refiner self-regularisation weight (10: quarantined on seeds 0-2)")
    ap.add_argument("--refiner-width", type=int, default=16)
    ap.add_argument("--refiner-blocks", type=int, default=4)
    ap.add_argument("--refiner-batch", type=int, default=8)
    ap.add_argument("--model", default="landmark_resnet_s")
    ap.add_argument("--ema", type=float, default=EMA_DECAY)
    ap.add_argument("--real", default=str(LFPW), help="images + .pts (split 645/160)")
    ap.add_argument("--name", default="refine_faces")
    ap.add_argument("--quick", action="store_true", help="a smoke run: tiny budgets")
    a = ap.parse_args(argv)
    if not REFINE_METHODS[a.refine_method].trains:  # a patch: its strength
        a.strength = default_strength(a.refine_method, a.strength)
    if a.quick:
        a.n, a.seeds, a.steps, a.batch_size, a.n_source, a.transfer_steps = [8], [0], 4, 4, 16, 5
        a.refiner_steps, a.refiner_width, a.refiner_blocks, a.refiner_batch = 2, 4, 1, 4
    if not Path(a.real).is_dir():
        print(f"no real faces at {a.real}: this benchmark needs ../shared (LFPW)", file=sys.stderr)
        return 2

    import torch

    torch.set_num_threads(int(os.environ.get("SYNTHLOOP_BENCH_THREADS", "1")))
    from realdata.real_faces import load_real_faces

    settings, size, train_set, test_set = lfpw_split(a.real, a.model, a.quick)
    real_train = lfpw_train_indices(a.real, a.quick)
    if a.quick:
        train_set, real_train = train_set.subset(list(range(16))), real_train[:16]
    faces = (load_real_faces(train_set, size), load_real_faces(test_set, size))
    plain = Bench(a, settings, train_set, test_set, *faces)
    plain.root = settings.root / ("refine-faces" + ("-quick" if a.quick else ""))
    rows, refinements = [], []
    for seed in a.seeds:
        # the mean patch has no seed: every seed trains on the one refined batch (a second
        # folder of the same bytes would be the same batch id at another path)
        aligned = "landmarker" in REFINE_METHODS[a.refine_method].reads
        folder = (f"refined-meanpatch{a.strength:g}" if a.refine_method == "mean-patch" else
                  f"refined-lmpatch{a.strength:g}-s{seed}" if a.refine_method == "landmark-patch"
                  else f"refined-{a.refine_method}{_shading(a.strength)}-s{seed}" if aligned
                  else f"refined-s{seed}-steps{a.refiner_steps}-w{a.refiner_width}-b{a.refiner_batch}"
                  f"-reg{a.self_reg:g}")
        unrefined = plain.synthetic("b", seed, a.steps)  # (the aligned methods' landmarker)
        child, info = _refine(plain, a, seed, real_train, plain.root / folder,
                              unrefined[0] if aligned else None)
        refinements.append({"seed": seed, "batch": child, **info})
        print(f"  seed {seed}: refined batch {info['status']} (label check "
              f"{info['label_check']})", flush=True)
        refined = Bench(a, settings, train_set, test_set, *faces)
        refined.root, refined._batch = plain.root, child
        arms = [("unrefined", plain, unrefined)]
        if info["status"] == "accepted":  # the product's rule: a quarantined batch is never trained on
            arms.append(("refined", refined,
                         refined.synthetic(f"b-refined-{Path(child).name}", seed, a.steps)))
        for arm, bench, (run, minutes) in arms:
            for r in bench.transferred(run, seed, minutes, "b"):
                rows.append({**r, "arm": arm})
    summary = []
    for n in a.n:
        med = {arm: float(np.median(io)) for arm in ("unrefined", "refined")
               if (io := [r["nme_io"] for r in rows if r["n"] == n and r["arm"] == arm])}
        for arm in med:
            mine = [r for r in rows if r["n"] == n and r["arm"] == arm]
            io = [r["nme_io"] for r in mine]
            summary.append({"arm": arm, "n": n, "seeds": len(mine),
                            "nme_io_median": round(med[arm], 2),
                            "nme_io_range": f"{min(io):.2f}-{max(io):.2f}",
                            "nme_ip_median": round(float(np.median([r["nme_ip"] for r in mine])), 2),
                            "change_vs_unrefined": f"{100 * (med[arm] / med['unrefined'] - 1):+.1f}%"})
    quarantined = [r["seed"] for r in refinements if r["status"] != "accepted"]
    if quarantined:
        print(f"refined batches quarantined or refused (not trained on) for seeds {quarantined}: "
              + "; ".join(f"seed {r['seed']}: {r['label_check'] or r['failing'][0]}"
                          for r in refinements if r["status"] != "accepted"))
    print_table(summary, list(summary[0]))
    results = results_dir()
    real128 = load_real_faces(train_set.subset(list(range(8))), 128).images  # the refiner's size
    if refinements[0]["batch"] is not None:
        _grid(refinements[0]["batch"], real128, results / f"{a.name}_samples.png")
    path = save(a.name + ("_quick" if a.quick else ""),
                {"machine": machine(), "args": vars(a), "refinements": refinements, "rows": rows,
                 "summary": summary})
    print(f"wrote {path}")
    return 0


def _shading(strength: float | None) -> str:
    """real-context's folder suffix for a shading share (none at 0, as before it had one)."""
    return f"-shading{strength:g}" if strength else ""


def _grid(child: str, real: np.ndarray, out: Path) -> None:
    from synth.shards import BatchReader
    from synthloop.landmarks.refining import refine_preview

    reader = BatchReader(child)
    parent = BatchReader(reader.manifest["parent"]["path"])
    refine_preview(parent, reader.images(np.arange(min(8, reader.n))), real, out)


if __name__ == "__main__":
    raise SystemExit(main())
