"""The one command people use: ``synthloop <command>``.

Heavy imports (torch, Prefect, Great Expectations) happen inside the commands that need
them, so ``synthloop --help`` is instant. Errors in the input become one line on stderr
and exit code 2; a batch that fails validation exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from synthloop.errors import DataFormatError

EXIT_OK, EXIT_INVALID, EXIT_ERROR = 0, 1, 2


def _progress(total: int, label: str):
    """A rich progress bar on a terminal, nothing when piped (logs stay clean)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.speed} img/s"),
                    TimeRemainingColumn(), disable=not sys.stderr.isatty(), transient=False)
    tid = prog.add_task(label, total=total)
    return prog, (lambda k: prog.advance(tid, k))


def _load_distribution(path: str | None):
    if not path:
        return None
    from synth.distribution import read_distribution

    return read_distribution(path)


def _generate_faces(a: argparse.Namespace, dist, advance):
    """Face batches: numba on the CPU with the face model ``load_face_model`` picks
    (ICT-FaceKit beside the project, else the built-in head; ``SYNTHLOOP_FACE_MODEL``)."""
    from synth.face_model import load_face_model
    from synth.generate_faces import generate_face_batch

    if a.device != "cpu" or a.compile is not None:
        raise ValueError("--device and --compile apply to --task gaze; face batches render on the CPU")
    model = load_face_model()
    print(f"face model: {'built-in fallback head' if model.is_fallback else model.source}",
          file=sys.stderr)
    return generate_face_batch(a.out, n=a.n, seed=a.seed, dist=dist, model=model,
                               landmark_sets=(a.landmark_set or "dense500",),
                               shard_size=a.shard_size, overwrite=a.overwrite, progress=advance)


def cmd_generate(a: argparse.Namespace) -> int:
    import time

    from synth.generate import generate_batch

    if a.landmark_set and a.task != "landmarks":
        raise ValueError("--landmark-set applies to --task landmarks only")
    dist = _load_distribution(a.distribution)
    prog, advance = _progress(a.n, "rendering")
    t0 = time.perf_counter()
    with prog:
        if a.task == "landmarks":
            batch_id, path = _generate_faces(a, dist, advance)
        else:
            batch_id, path = generate_batch(a.out, task=a.task, n=a.n, seed=a.seed, dist=dist,
                                            device=a.device, compiled=a.compile,
                                            shard_size=a.shard_size, overwrite=a.overwrite,
                                            progress=advance)
    dt = time.perf_counter() - t0
    print(f"{batch_id}\t{path.resolve()}")
    print(f"generated {a.n} samples in {dt:.1f} s ({a.n / dt:,.0f} img/s)", file=sys.stderr)
    return EXIT_OK


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


def _preview_faces(r, a: argparse.Namespace) -> Path:
    """Face batches: the first ``count`` faces with their 68 points (red rings = occluded)
    and the stored dense set, sorted by head yaw."""
    import numpy as np

    from synth.face_preview import face_grid
    from synth.generate_faces import LANDMARKS, read_face_labels

    if a.real:
        raise ValueError("--real shows real eye patches beside an eye batch; not for face batches")
    labels = read_face_labels(r.path, verify=False)  # BatchReader has checked the checksums
    dense_sets = json.loads((r.path / LANDMARKS).read_text()).get("dense_sets", [])
    idx = np.arange(min(a.count, r.n))
    dense = dense_sets[0] if dense_sets else None
    return face_grid(r.images(idx), labels["points68"][idx], labels["visible68"][idx], a.out,
                     dense=labels[dense][idx] if dense else None,
                     dense_visible=labels[f"{dense}_visible"][idx] if dense else None,
                     yaw=r.metadata["yaw"].to_numpy()[idx],
                     title=f"{r.batch_id}: 68 points (red rings = occluded)"
                           + (f", {dense}" if dense else "") + "; sorted by yaw")


def cmd_preview(a: argparse.Namespace) -> int:
    from synth.preview import batch_grid
    from synth.shards import BatchReader

    r = BatchReader(a.batch)
    if r.task == "landmarks":
        print(_preview_faces(r, a))
        return EXIT_OK
    real = None
    if a.real:
        from realdata import read_eye_folder

        real = read_eye_folder(a.real).images
    out = batch_grid(r, a.out, real=real, count=a.count)
    print(out)
    return EXIT_OK


def _default_distribution(task: str):
    if task == "landmarks":
        from synth.face_distribution import default_face_distribution

        return default_face_distribution()
    from synth.generate import default_distribution

    return default_distribution(task)


def cmd_distribution(a: argparse.Namespace) -> int:
    d = _load_distribution(a.file) or _default_distribution(a.task)
    text = d.dumps() + "\n"
    if a.out:
        Path(a.out).write_text(text)
        print(f"{d.id}\t{Path(a.out).resolve()}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_assets_import_ict(a: argparse.Namespace) -> int:
    """Convert an ICT-FaceKit clone into the face model file the renderer loads."""
    from synth.face_model import DEFAULT_PATH, default_model_path, import_ict, load_face_model

    src = Path(a.dir)
    if not src.is_dir():
        raise DataFormatError(src, "not a folder: pass a clone of https://github.com/ICT-VGL/ICT-FaceKit")
    out = import_ict(src, a.out or default_model_path() or DEFAULT_PATH)
    m = load_face_model(out)
    print(f"{out.resolve()}\t{m.n_vertices} vertices, {m.n_identity} identity modes, "
          f"{m.n_expression} expressions")
    return EXIT_OK


def cmd_train(a: argparse.Namespace) -> int:
    from synthloop.gaze_jobs import train_gaze
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731  (stdout stays machine-readable)
    if a.task == "landmarks":
        return _train_landmarks(a, settings, log)
    if a.target is None:
        raise ValueError("gaze training needs --target (unlabeled target eyes)")
    run = train_gaze(settings, method=a.method, target=a.target, steps=a.steps, seed=a.seed,
                     out=a.out, source=a.source, n_source=a.n_source, batch_size=a.batch_size or 64,
                     lr=a.lr, trade_off=a.trade_off, model=a.model or "gaze_resnet_s", device=a.device,
                     register=not a.no_register, log=log)
    print(f"checkpoint\t{run.checkpoint_dir.resolve()}")
    print(f"mlflow_run\t{run.run_id}")
    if run.model_version:
        print(f"model\tmodels:/synthloop-gaze/{run.model_version}" + ("  (champion)" if run.promoted else ""))
    return EXIT_OK


def _train_landmarks(a: argparse.Namespace, settings, log) -> int:
    from synthloop.landmark_jobs import train_landmarks

    run = train_landmarks(settings, method=a.method, steps=a.steps, seed=a.seed, out=a.out,
                          source=a.source, n_source=a.n_source, real_labeled=a.real_labeled,
                          target=a.target, model=a.model or "hourglass_s",
                          batch_size=a.batch_size or 16, lr=a.lr, trade_off=a.trade_off,
                          device=a.device, register=not a.no_register, log=log)
    print(f"checkpoint\t{run.checkpoint_dir.resolve()}")
    print(f"mlflow_run\t{run.run_id}")
    print(f"output\t{run.route}")
    if run.model_version:
        print(f"model\tmodels:/synthloop-landmarks/{run.model_version}"
              + ("  (champion)" if run.promoted else ""))
    return EXIT_OK


def cmd_evaluate(a: argparse.Namespace) -> int:
    from synthloop.settings import get_settings

    settings = get_settings()
    if a.model.startswith("models:/") or a.model.startswith("runs:/"):
        import mlflow

        mlflow.set_tracking_uri(settings.tracking_uri)
        mlflow.set_registry_uri(settings.tracking_uri)
    if a.task == "landmarks":
        from synthloop.landmark_jobs import evaluate_landmarks_model

        res = evaluate_landmarks_model(a.model, a.data)
        if a.json:
            print(json.dumps(res, default=str))
            return EXIT_OK
        print(f"model {res.get('model')} on {res.get('data')} (n={res['n']})")
        print(f"  NME inter-ocular {res['nme_inter_ocular']:.3f}   inter-pupil "
              f"{res['nme_inter_pupil']:.3f}   failures (io > 10) {100 * res['failure_rate_010']:.1f}%")
        for sl in res.get("slices", []):
            print(f"  yaw {sl['lo']:+5.0f}..{sl['hi']:+4.0f} deg  n={sl['n']:<4d} "
                  f"io {sl['nme_inter_ocular']:.3f}  ip {sl['nme_inter_pupil']:.3f}")
        return EXIT_OK
    from synthloop.gaze_jobs import evaluate_gaze_model

    res = evaluate_gaze_model(a.model, a.data)
    if a.json:
        print(json.dumps(res))
        return EXIT_OK
    print(f"model {res['model']} on {res['data']} ({res['data_kind']}, n={res['n']})")
    if res.get("labeled"):
        print(f"  mean angular error   {res['mean_angular_error_deg']:.2f} deg")
        print(f"  median angular error {res['median_angular_error_deg']:.2f} deg")
        for sl in res.get("slices", []):
            print(f"  {sl['axis']:>5} {sl['lo_deg']:+6.1f}..{sl['hi_deg']:+6.1f} deg  n={sl['n']:<5d}"
                  f" {sl['mean_error_deg']:.2f} deg")
    else:
        for k in ("mmd_rbf", "frechet_distance", "mean_prediction_entropy"):
            print(f"  {k:<24} {res[k]:.4f}")
        print(f"  (reference: {res['reference']})")
    return EXIT_OK


def cmd_tune(a: argparse.Namespace) -> int:
    from synthloop.settings import get_settings
    from synthloop.tune_jobs import tune_gaze

    settings = get_settings()
    settings.ensure_home()
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731  (stdout stays machine-readable)
    target = a.target
    if target is None:
        from synthloop.loop_jobs import builtin_target

        target = str(builtin_target(settings))
    res = tune_gaze(settings, method=a.method, target=target, trials=a.trials, steps=a.steps,
                    seed=a.seed, source=a.source, n_source=a.n_source, objective=a.objective,
                    batch_size=a.batch_size, log=log)
    if a.json:
        print(json.dumps(res, default=str), flush=True)
        return EXIT_OK
    print(f"study {res['study']} ({res['storage']}): {len(res['trials'])} trials, objective "
          f"{res['objective']} ({res['metric']}, {res['direction']})")
    for t in res["trials"]:
        value = "" if t["value"] is None else f"{t['value']:.4g}"
        print(f"  trial {t['number']:>3}  {t['state']:<8} {value:>10}  "
              + " ".join(f"{k}={v:.3g}" for k, v in t["params"].items()))
    if res["best"]:
        b = res["best"]
        print(f"best: trial {b['number']}, {res['metric']} {b['value']:.4g}: "
              + " ".join(f"{k}={v:.4g}" for k, v in b["params"].items()))
    print(f"mlflow parent run {res['mlflow_run_id']}; plot {res['plot']}")
    return EXIT_OK


def cmd_simulate_target(a: argparse.Namespace) -> int:
    from synth.targets import write_simulated_target

    out = write_simulated_target(a.out, a.n, a.seed, labeled=not a.unlabeled,
                                 label_shift=not a.appearance_only, version=a.version)
    print(out.resolve())
    return EXIT_OK


def _stop_on_sigterm() -> None:
    """Treat SIGTERM (kill, systemd, a CI runner) like Ctrl-C, so the children get stopped.
    SIGINT is restored too: a shell that starts us in the background sets it to ignored."""
    import signal

    def _raise(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def cmd_ui(a: argparse.Namespace) -> int:
    """Prefect server + MLflow server on the embedded stores, until Ctrl-C."""
    import time

    _stop_on_sigterm()
    from synthloop.servers import start_mlflow, start_prefect, wait_healthy
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    servers = [start_prefect(settings, a.prefect_port), start_mlflow(settings, a.mlflow_port)]
    try:
        print("starting the Prefect and MLflow servers ...", file=sys.stderr)
        wait_healthy(servers, timeout=a.timeout)
        for s in servers:
            print(f"{s.name:<8} {s.url}")
        print("\nto run flows and log runs against them, in another shell:")
        for s in servers:
            for k, v in s.env.items():
                print(f"  export {k}={v}")
        print("\nCtrl-C stops both.", file=sys.stderr)
        while all(s.proc.poll() is None for s in servers):
            time.sleep(1)
        dead = [s for s in servers if s.proc.poll() is not None]
        raise RuntimeError("; ".join(f"{s.name} server stopped (code {s.proc.returncode}), see {s.log}"
                                     for s in dead))
    except KeyboardInterrupt:
        print("\nstopping ...", file=sys.stderr)
        return EXIT_OK
    finally:
        for s in servers:
            s.stop()


def cmd_deploy(a: argparse.Namespace) -> int:
    """Work pools + every deployment in prefect.yaml, then (unless --no-worker) a process
    worker for one pool, in the foreground until Ctrl-C."""
    import subprocess

    from synthloop.servers import prefect_bin
    from synthloop.settings import REPO_ROOT, get_settings

    if not os.environ.get("PREFECT_API_URL"):
        raise ValueError("PREFECT_API_URL is not set: start the servers with `synthloop ui` and "
                         "export the PREFECT_API_URL it prints")
    settings = get_settings()
    env = {**os.environ, "SYNTHLOOP_HOME": str(settings.root)}
    prefect = prefect_bin()
    for pool in ("cpu", "gpu"):
        r = subprocess.run([prefect, "work-pool", "create", pool, "--type", "process"], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0 and "already exists" not in (r.stdout + r.stderr):
            raise RuntimeError(f"creating work pool {pool!r} failed: {(r.stdout + r.stderr).strip()[-500:]}")
    r = subprocess.run([prefect, "--no-prompt", "deploy", "--all"], cwd=REPO_ROOT, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"prefect deploy failed: {(r.stdout + r.stderr).strip()[-800:]}")
    print("deployed every deployment in prefect.yaml; pools: cpu, gpu")
    if a.no_worker:
        return EXIT_OK
    print(f"starting a worker for pool {a.pool!r} (Ctrl-C stops it)", file=sys.stderr)
    _stop_on_sigterm()
    cmd = [prefect, "worker", "start", "--pool", a.pool]
    if a.limit:
        cmd += ["--limit", str(a.limit)]
    worker = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT)
    try:
        return worker.wait()
    except KeyboardInterrupt:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        return EXIT_OK


def _prefect_env(settings) -> None:
    """Embedded Prefect: its own home under the project home, no telemetry, and a start-up
    timeout that survives a busy 2-core machine. The user's own settings win."""
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_dir))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")


def cmd_loop(a: argparse.Namespace) -> int:
    """The feedback loop through its Prefect flow (embedded server unless PREFECT_API_URL)."""
    from synthloop.settings import get_settings

    if a.task == "landmarks" and not a.real:
        raise ValueError("--task landmarks needs --real DIR (images with .pts files, e.g. LFPW "
                         "train): there is no built-in simulated target for faces")
    settings = get_settings()
    settings.ensure_home()
    _prefect_env(settings)
    from synthloop.loop_jobs import builtin_target

    real = a.real or str(builtin_target(settings))
    from flows.feedback_loop import LoopParams, feedback_loop

    params = LoopParams(task=a.task, real=real, rounds=a.rounds, seed=a.seed, open_loop=a.open_loop,
                        n_per_round=a.n_per_round, steps_per_round=a.steps_per_round,
                        method=a.method, patience=None if a.no_early_stop else a.patience,
                        min_improvement=a.min_improvement, holdout_frac=a.holdout_frac)
    state = feedback_loop(params, return_state=True)
    res = state.result()  # re-raises what the flow raised (a data error names its file)
    out = {"task": a.task, "mode": "open" if a.open_loop else "closed", **res}
    if a.json:
        sys.stdout.flush()
        print(json.dumps(out, default=str), flush=True)
        return EXIT_OK
    print()
    print(f"loop {res['loop_id']} ({out['mode']} loop, seed {a.seed}) on {real}")
    for r in res["rounds"]:
        print(f"  round {r['round']}: held-out real error {r['real_error']:.3f}  "
              f"distribution {r['distribution_id']}  batch {r['batch_id']}")
    print(f"stopped: {res['stopped']}")
    print(f"files: {settings.root / 'loops' / res['loop_id']}   MLflow: {settings.tracking_uri}")
    return EXIT_OK


def cmd_demo(a: argparse.Namespace) -> int:
    """The main job on embedded defaults: a small closed feedback loop on the built-in
    simulated target (generate, validate, train, evaluate, analyse, update; 3 rounds)."""
    loop_args = build_parser().parse_args([
        "loop", "--rounds", str(a.rounds), "--seed", str(a.seed), "--n-per-round", str(a.n),
        "--steps-per-round", str(a.steps)])
    code = cmd_loop(loop_args)
    from synthloop.settings import get_settings

    home = get_settings().root
    print(f"plots      {home / 'loops'}/<loop id>/round-*/{{slice_errors,distribution_change}}.png")
    print(f"catalog    {get_settings().catalog}")
    print(f"home       {home}  (override with SYNTHLOOP_HOME; `synthloop ui` opens the dashboards)")
    return code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synthloop", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="the main job: a small feedback loop on the built-in simulated "
                       "target (embedded stores)")
    d.add_argument("-n", type=int, default=3000, help="synthetic samples per round")
    d.add_argument("--steps", type=int, default=300, help="training steps per round")
    d.add_argument("--rounds", type=int, default=3)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)

    g = sub.add_parser("generate", help="write one synthetic batch (shards, metadata, manifest)")
    g.add_argument("--task", choices=["gaze", "landmarks"], default="gaze",
                   help="gaze: eye patches; landmarks: face crops with 68-point and dense landmarks")
    g.add_argument("-n", type=int, required=True, help="number of samples")
    g.add_argument("--seed", type=int, required=True)
    g.add_argument("--out", required=True, help="batch folder to create")
    g.add_argument("--distribution", help="scene distribution JSON (default: built-in)")
    g.add_argument("--device", default="cpu", help="cpu or cuda")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the renderer (default: only for large batches)")
    g.add_argument("--shard-size", type=int, default=4096)
    g.add_argument("--landmark-set", choices=["dense500", "dense1001"],
                   help="landmarks: the dense set stored beside the 68 points (default dense500)")
    g.add_argument("--overwrite", action="store_true")
    g.set_defaults(func=cmd_generate)

    v = sub.add_parser("validate", help="validate a batch with Great Expectations (exit 0 ok, 1 failed, 2 error)")
    v.add_argument("batch")
    v.add_argument("--no-docs", action="store_true", help="skip Data Docs HTML")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_validate)

    pv = sub.add_parser("preview", help="PNG grid of a batch: eyes with gaze arrows (optionally beside "
                        "real eyes) or faces with their landmarks")
    pv.add_argument("batch")
    pv.add_argument("--out", required=True)
    pv.add_argument("--real", help="folder with manifest.csv or labels.csv of real eyes")
    pv.add_argument("--count", type=int, default=64)
    pv.set_defaults(func=cmd_preview)

    ds = sub.add_parser("distribution", help="print or export a scene distribution as JSON")
    ds.add_argument("--task", choices=["gaze", "landmarks"], default="gaze")
    ds.add_argument("--file", help="read this distribution instead of the built-in one")
    ds.add_argument("--out")
    ds.set_defaults(func=cmd_distribution)

    asx = sub.add_parser("assets", help="build the assets the renderers load (face model)")
    asub = asx.add_subparsers(dest="asset_command", required=True)
    ai = asub.add_parser("import-ict", help="convert an ICT-FaceKit clone (MIT licence) into the face "
                         "model file (default: $SYNTHLOOP_FACE_MODEL, else ../shared/assets/ict-facekit/)")
    ai.add_argument("dir", help="the clone, or its FaceXModel folder")
    ai.add_argument("--out", help="npz to write")
    ai.set_defaults(func=cmd_assets_import_ict)
    t = sub.add_parser("train", help="train a gaze or landmark model on synthetic data (MLflow-tracked)")
    t.add_argument("--task", choices=["gaze", "landmarks"], default="gaze")
    t.add_argument("--method", choices=["source_only", "dann", "daln"], required=True)
    t.add_argument("--target", help="unlabeled target: eyes (manifest.csv or labels.csv, labels "
                   "ignored; required for gaze) or face images (landmarks, for DANN/DALN)")
    t.add_argument("--real-labeled", help="landmarks: images + .pts; trains the label-transfer "
                   "network and enables syn+real training")
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--seed", type=int, required=True)
    t.add_argument("--out", required=True, help="checkpoint folder")
    t.add_argument("--source", help="an existing batch folder (default: generate one)")
    t.add_argument("--n-source", type=int, default=20_000, help="size of the generated source batch")
    t.add_argument("--batch-size", type=int, help="default 64 (gaze), 16 (landmarks)")
    t.add_argument("--lr", type=float)
    t.add_argument("--trade-off", type=float, default=1.0, help="weight of the transfer loss")
    t.add_argument("--model", help="default gaze_resnet_s (gaze), hourglass_s (landmarks)")
    t.add_argument("--device", default="cpu")
    t.add_argument("--no-register", action="store_true", help="do not log/register the model")
    t.set_defaults(func=cmd_train)

    tu = sub.add_parser("tune", help="tune gaze training hyper-parameters with Optuna (one MLflow "
                        "run per trial under a study run; resumable)")
    tu.add_argument("--method", choices=["source_only", "dann", "daln"], required=True)
    tu.add_argument("--target", help="target eyes (labels.csv enables the target_error objective "
                    "on its held-out part; manifest.csv: label-free objectives); default: the "
                    "built-in simulated target")
    tu.add_argument("--trials", type=int, default=12, help="finished trials the study should hold")
    tu.add_argument("--steps", type=int, default=600, help="training steps per trial")
    tu.add_argument("--seed", type=int, default=0)
    tu.add_argument("--objective", choices=["target_error", "source_error", "entropy", "im", "snd"],
                    help="default: target_error with labels.csv, else entropy")
    tu.add_argument("--source", help="an existing batch folder (default: generate one)")
    tu.add_argument("--n-source", type=int, default=20_000)
    tu.add_argument("--batch-size", type=int, default=64)
    tu.add_argument("--json", action="store_true", help="one JSON object on stdout")
    tu.set_defaults(func=cmd_tune)

    e = sub.add_parser("evaluate", help="evaluate a model on labeled (errors) or unlabeled (domain gap) data")
    e.add_argument("--task", choices=["gaze", "landmarks"], default="gaze")
    e.add_argument("--model", required=True, help="checkpoint folder/file or models:/name@alias")
    e.add_argument("--data", required=True, help="gaze: folder with labels.csv or manifest.csv; "
                   "landmarks: images with sibling .pts files")
    e.add_argument("--json", action="store_true", help="one JSON object on stdout")
    e.set_defaults(func=cmd_evaluate)

    ui = sub.add_parser("ui", help="start the Prefect dashboard and the MLflow UI on the embedded stores")
    ui.add_argument("--prefect-port", type=int, default=4200)
    ui.add_argument("--mlflow-port", type=int, default=5000)
    ui.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for both to be healthy")
    ui.set_defaults(func=cmd_ui)

    dp = sub.add_parser("deploy", help="create work pools, deploy prefect.yaml, start a worker (needs PREFECT_API_URL)")
    dp.add_argument("--pool", choices=["cpu", "gpu"], default="cpu", help="pool the worker serves")
    dp.add_argument("--no-worker", action="store_true", help="only create pools and deploy")
    dp.add_argument("--limit", type=int, default=None,
                    help="flow runs the worker runs at once (default: no limit; 1 suits a small CPU box)")
    dp.set_defaults(func=cmd_deploy)

    lp = sub.add_parser("loop", help="run the feedback loop: generate, validate, train, evaluate on real, "
                        "analyse, update the distribution")
    lp.add_argument("--task", choices=["gaze", "landmarks"], default="gaze")
    lp.add_argument("--real", help="labeled real data: labels.csv (gaze; default: the built-in "
                    "simulated target, written under the project home) or images with .pts files "
                    "(landmarks; required)")
    lp.add_argument("--rounds", type=int, default=3)
    lp.add_argument("--seed", type=int, default=0)
    lp.add_argument("--open-loop", action="store_true", help="keep the initial distribution (baseline)")
    lp.add_argument("--n-per-round", type=int, default=6000, help="synthetic samples per round")
    lp.add_argument("--steps-per-round", type=int, default=500, help="training steps per round")
    lp.add_argument("--method", choices=["source_only", "dann", "daln"], default="source_only")
    lp.add_argument("--patience", type=int, default=1, help="rounds without progress before stopping")
    lp.add_argument("--min-improvement", type=float, default=0.02,
                    help="relative held-out gain that counts as progress")
    lp.add_argument("--no-early-stop", action="store_true", help="run every round (fixed budget)")
    lp.add_argument("--holdout-frac", type=float, default=0.5,
                    help="share of the real data held out (scored only, never analysed)")
    lp.add_argument("--json", action="store_true", help="last line of stdout: one JSON object")
    lp.set_defaults(func=cmd_loop)

    st = sub.add_parser("simulate-target", help="write the built-in shifted target domain (a simulation, named so)")
    st.add_argument("--out", required=True)
    st.add_argument("-n", type=int, default=2000)
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--unlabeled", action="store_true", help="write manifest.csv only")
    st.add_argument("--appearance-only", action="store_true",
                    help="keep the default gaze / head-pose distribution (no label shift)")
    st.add_argument("--version", default="v1", choices=["v1", "v2"],
                    help="v1: MPIIGaze-like skew; v2: stronger gaze / head-pose skew (the loop's "
                         "built-in target)")
    st.set_defaults(func=cmd_simulate_target)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataFormatError, FileExistsError, FileNotFoundError, ValueError, OSError,
            RuntimeError) as e:
        print(f"synthloop {args.command}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"synthloop {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  (exit 1 means "batch failed validation": keep it)
        from catalog.errors import CatalogError

        if isinstance(e, CatalogError):  # conflicts and missing rows name their row
            print(f"synthloop {args.command}: error: {e}", file=sys.stderr)
            return EXIT_ERROR
        if os.environ.get("SYNTHLOOP_DEBUG"):
            raise
        print(f"synthloop {args.command}: unexpected {type(e).__name__}: {e} "
              "(SYNTHLOOP_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
