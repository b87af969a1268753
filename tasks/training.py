"""Prefect tasks for training and evaluation: one call into :mod:`synthloop.gaze` each,
plus a dashboard artifact that links the MLflow run."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from catalog.engine import redact
from synthloop.settings import get_settings


@task(name="train-gaze-model")
def train_gaze_task(method: str, target: str, steps: int, seed: int, out: str, source: str | None,
                     n_source: int, batch_size: int, trade_off: float, device: str,
                     ema: float | None = None, real_labeled: str | None = None,
                     real_fraction: float = 0.5, mirror_eye: str | None = None) -> dict:
    from synthloop.gaze.train import train_gaze
    from synthloop.tracking import experiment_name

    settings = get_settings()
    settings.ensure_home()
    run = train_gaze(settings, method=method, target=target, steps=steps, seed=seed, out=out,
                     source=source, n_source=n_source, batch_size=batch_size, trade_off=trade_off,
                     device=device, ema=ema, real_labeled=real_labeled,
                     real_fraction=real_fraction, mirror_eye=mirror_eye,
                     log=get_run_logger().info)
    create_markdown_artifact(
        "\n".join([f"# {method} (seed {seed})", "",
                   f"- MLflow run: `{run.run_id}` in experiment `{experiment_name('gaze')}`"
                   f" at `{redact(settings.tracking_uri)}`",
                   f"- checkpoint: `{run.checkpoint_dir}`",
                   f"- registered: `{run.model_uri}` version {run.model_version}"
                   + (" (now champion)" if run.promoted else "")]),
        key="gaze-training", description="training run")
    return {"run_id": run.run_id, "checkpoint_dir": str(run.checkpoint_dir),
            "model_version": run.model_version, "promoted": run.promoted, "metrics": run.metrics}


@task(name="evaluate-gaze-model")
def evaluate_gaze_task(model: str, data: str, tta_shift: int = 0) -> dict:
    from synthloop.gaze.evaluate import evaluate_gaze_model
    from synthloop.tracking import connect

    settings = get_settings()
    connect(settings.tracking_uri, create=False)
    res = evaluate_gaze_model(model, data, tta_shift=tta_shift)
    if res.get("labeled"):
        create_table_artifact(
            [{"axis": s["axis"], "from_deg": s["lo_deg"], "to_deg": s["hi_deg"], "n": s["n"],
              "mean_error_deg": round(s["mean_error_deg"], 2)} for s in res.get("slices", [])],
            key="gaze-evaluation",
            description=f"{res['data_kind']} data, mean {res['mean_angular_error_deg']:.2f} deg")
    return res


@task(name="pseudo-label-eyes")
def pseudo_label_task(models: list[str], data: str, out: str, tta_shift: int = 2) -> dict:
    from synthloop.gaze.pseudo_label import pseudo_label_eyes
    from synthloop.model_refs import connect_for_models

    connect_for_models(models)
    res = pseudo_label_eyes(models, data, out, tta_shift=tta_shift, log=get_run_logger().info)
    create_markdown_artifact(
        "\n".join([f"# {res['n']} eyes labeled by {len(models)} model(s)", "",
                    f"- labeled folder: `{res['out']}` (for a training's labeled real eyes)",
                    f"- from: `{res['data']}`" + (" (its labels ignored)"
                                                  if res["data_labels_ignored"] else ""),
                    f"- teachers' mean distance from their mean answer: "
                    f"{res['teacher_spread_deg_mean']:.2f} deg", "",
                    *[f"- teacher: `{t}`" for t in res["teachers"]]]),
        key="gaze-pseudo-labels", description="pseudo-labeled eyes")
    return res
