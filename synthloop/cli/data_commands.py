"""Commands on synthetic data: generate, validate, preview, distribution, assets,
simulate-target."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from synthloop.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    at_least,
    positive_int,
    progress,
    stop_on_sigterm,
)
from synthloop.errors import DataFormatError, UsageError
from synthloop.taskspec import TASK_NAMES


def cmd_generate(a: argparse.Namespace) -> int:
    with _sigterm_like_ctrl_c():
        return _generate(a)


@contextlib.contextmanager
def _sigterm_like_ctrl_c() -> Iterator[None]:
    """A SIGTERM (kill, a CI runner, a scheduler) stops ``generate`` like Ctrl-C: the
    batch writer removes its partial folder. The previous handlers come back afterwards,
    for callers that run the command in-process; only the main thread may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    stop_on_sigterm()
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:  # None: installed outside Python, cannot be put back
                signal.signal(sig, handler)


def _generate(a: argparse.Namespace) -> int:
    from synthloop.taskspec import GenerateOptions, get_task

    spec = get_task(a.task)
    dist = _load_distribution(a.distribution)  # a bad file fails before the renderer loads
    gen = spec.generator(GenerateOptions(device=a.device, compiled=a.compile,
                                         landmark_set=a.landmark_set))
    workers = _workers(a, gen)
    prog, advance = progress(a.n, "rendering")
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        map_shards = None
        if workers or a.dask_address:
            from synthloop.dask_cluster import client_shard_map

            where = a.dask_address or f"{workers} worker processes (Dask)"
            why = " (the default for a batch this size; --workers 0 renders in this process)" \
                if a.workers is None and not a.dask_address else ""
            print(f"rendering {-(-a.n // a.shard_size):,} shards on {where}{why}", file=sys.stderr)
            map_shards = stack.enter_context(client_shard_map(workers, a.dask_address,
                                                              preload=gen.shard_modules))
        with prog:
            batch_id, path = gen.write(a.out, n=a.n, seed=a.seed, dist=dist,
                                       shard_size=a.shard_size, overwrite=a.overwrite,
                                       progress=advance, map_shards=map_shards)
    dt = time.perf_counter() - t0
    print(f"{batch_id}\t{Path(path).resolve()}")
    print(f"generated {a.n} samples in {dt:.1f} s ({a.n / dt:,.0f} img/s)", file=sys.stderr)
    return EXIT_OK


def _workers(a: argparse.Namespace, gen) -> int:
    """Dask worker processes for this batch (0: render in this process): ``--workers``,
    else one per core for a batch large enough to gain from them."""
    if (a.workers or a.dask_address) and not gen.fans_out:
        raise UsageError(f"--task {a.task} renders in one process: drop --workers/--dask-address")
    if a.workers is not None or a.dask_address or not gen.fans_out:
        return a.workers or 0
    from synthloop.dask_cluster import default_workers

    return default_workers(a.n, a.shard_size, gen.fan_out_from, os.cpu_count())


def cmd_validate(a: argparse.Namespace) -> int:
    from expectations.validate import record_outcome, validate_batch

    report = validate_batch(a.batch, docs=not a.no_docs)
    status = record_outcome(a.batch, report)
    if a.json:
        print(json.dumps({"batch_id": report.batch_id, "status": status, "success": report.success,
                          "failing": list(report.failing), "result": str(report.result_path),
                          "docs": str(report.docs_path) if report.docs_path else None}))
    else:
        print(f"{report.batch_id}: {status}")
        for f in report.failing:
            print(f"  failed: {f}")
        print(f"  result: {report.result_path}")
        if report.docs_path:
            print(f"  Data Docs: {report.docs_path}")
    return EXIT_OK if report.success else EXIT_INVALID


def cmd_preview(a: argparse.Namespace) -> int:
    from synth.shards import BatchReader
    from synthloop.taskspec import get_task

    r = BatchReader(a.batch)
    print(get_task(r.task).preview(r, a.out, count=a.count, real=a.real))
    return EXIT_OK


def _load_distribution(path: str | None):
    if not path:
        return None
    from synth.distribution import read_distribution

    return read_distribution(path)


def cmd_distribution(a: argparse.Namespace) -> int:
    from synthloop.taskspec import get_task

    d = _load_distribution(a.file) or get_task(a.task).default_distribution()
    text = d.dumps() + "\n"
    if a.out:
        Path(a.out).write_text(text)
        print(f"{d.id}\t{Path(a.out).resolve()}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_assets_import_ict(a: argparse.Namespace) -> int:
    """Convert an ICT-FaceKit clone into the face model file the renderer loads."""
    from synth.face_loading import DEFAULT_PATH, default_model_path, load_face_model
    from synth.face_model import import_ict

    src = Path(a.dir)
    if not src.is_dir():
        raise DataFormatError(src, "not a folder: pass a clone of https://github.com/ICT-VGL/ICT-FaceKit")
    out = import_ict(src, a.out or default_model_path() or DEFAULT_PATH)
    m = load_face_model(out)
    print(f"{out.resolve()}\t{m.n_vertices} vertices, {m.n_identity} identity modes, "
          f"{m.n_expression} expressions")
    return EXIT_OK


def cmd_simulate_target(a: argparse.Namespace) -> int:
    from synth.targets import write_simulated_target

    out = write_simulated_target(a.out, a.n, a.seed, labeled=not a.unlabeled,
                                 label_shift=not a.appearance_only, version=a.version)
    print(out.resolve())
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="write one synthetic batch (shards, metadata, manifest)")
    g.add_argument("--task", choices=TASK_NAMES, default="gaze",
                   help="gaze: eye patches; landmarks: face crops with 68-point and dense landmarks")
    g.add_argument("-n", type=positive_int, required=True, help="number of samples")
    g.add_argument("--seed", type=int, required=True,
                   help="random seed: the same seed and distribution give identical files")
    g.add_argument("--out", required=True, help="batch folder to create")
    g.add_argument("--distribution", help="scene distribution JSON (default: built-in)")
    g.add_argument("--device", default="cpu", help="cpu or cuda (gaze)")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the eye renderer (default: only for large batches)")
    g.add_argument("--shard-size", type=positive_int, default=4096, help="samples per shard file")
    g.add_argument("--landmark-set", choices=["dense500", "dense1001"],
                   help="landmarks: the dense set stored beside the 68 points (default dense500)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    g.add_argument("--workers", type=at_least(0), default=None,
                   help="render the shards in this many single-threaded processes of a local "
                   "Dask cluster, 0: in this process (default: one per core from 80,000 eyes "
                   "or 2,048 faces on, where that is faster; in this process below); the "
                   "bytes do not depend on it")
    g.add_argument("--dask-address",
                   help="render the shards on this existing Dask cluster (tcp://host:8786); "
                   "its workers must see --out's folder at the same path")
    g.set_defaults(func=cmd_generate)

    v = sub.add_parser("validate", help="validate a batch with Great Expectations (exit 0 ok, "
                       "1 failed, 2 error)")
    v.add_argument("batch", help="batch folder (the one holding manifest.json)")
    v.add_argument("--no-docs", action="store_true", help="skip Data Docs HTML")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(func=cmd_validate)

    pv = sub.add_parser("preview", help="PNG grid of a batch: eyes with gaze arrows (optionally "
                        "beside real eyes) or faces with their landmarks")
    pv.add_argument("batch", help="batch folder (the one holding manifest.json)")
    pv.add_argument("--out", required=True, help="PNG file to write")
    pv.add_argument("--real", help="folder with manifest.csv or labels.csv of real eyes")
    pv.add_argument("--count", type=positive_int, default=64, help="samples in the grid")
    pv.set_defaults(func=cmd_preview)

    ds = sub.add_parser("distribution", help="print or export a scene distribution as JSON")
    ds.add_argument("--task", choices=TASK_NAMES, default="gaze", help="whose built-in distribution")
    ds.add_argument("--file", help="read this distribution instead of the built-in one")
    ds.add_argument("--out", help="JSON file to write (default: print it)")
    ds.set_defaults(func=cmd_distribution)

    asx = sub.add_parser("assets", help="build the assets the renderers load (face model)")
    asub = asx.add_subparsers(dest="asset_command", required=True)
    ai = asub.add_parser("import-ict", help="convert an ICT-FaceKit clone (MIT licence) into the "
                         "face model file (default: $SYNTHLOOP_FACE_MODEL, else "
                         "../shared/assets/ict-facekit/)")
    ai.add_argument("dir", help="the clone, or its FaceXModel folder")
    ai.add_argument("--out", help="npz to write")
    ai.set_defaults(func=cmd_assets_import_ict)

    st = sub.add_parser("simulate-target", help="write the built-in shifted target domain (a "
                        "simulation, named so)")
    st.add_argument("--out", required=True, help="folder to write the eyes to")
    st.add_argument("-n", type=positive_int, default=2000, help="number of eyes")
    st.add_argument("--seed", type=int, default=0, help="random seed")
    st.add_argument("--unlabeled", action="store_true", help="write manifest.csv only")
    st.add_argument("--appearance-only", action="store_true",
                    help="keep the default gaze / head-pose distribution (no label shift)")
    st.add_argument("--version", default="v1", choices=["v1", "v2"],
                    help="v1: MPIIGaze-like skew; v2: stronger gaze / head-pose skew (the loop's "
                         "built-in target)")
    st.set_defaults(func=cmd_simulate_target)
