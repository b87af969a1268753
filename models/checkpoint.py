"""Self-describing checkpoints (nanoGPT habit): weights plus everything needed to
rebuild and resume, so :func:`models.registry.load_model` works without knowing the
model class.

A checkpoint is a ``torch.save``-d dict of plain types and tensors (loadable with
``weights_only=True``, so reading one never runs pickled code)::

    format, format_version, torch_version
    task                                       -> "gaze", "landmarks", "label_transfer"
                                                  (absent in checkpoints older than it: gaze)
    model_name, model_config, model_state      -> create_model(name, **config)
    method_name, method_state                  -> the DA method's own parameters
                                                  (DANN's discriminator; empty otherwise)
    optimizer_state                            -> None in best.pt (not needed to deploy)
    online_state                               -> with a weight average (TrainConfig.ema):
                                                  the optimiser's own weights, which a
                                                  resume continues; model_state is then the
                                                  average (what is evaluated and served)
    step, train_config, metrics, extra

Writes are atomic (temp file in the same folder, fsync, ``os.replace``): a crash or a
Ctrl-C mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import torch
from torch import nn

from realdata.errors import DataFormatError

__all__ = [
    "BEST",
    "LAST",
    "load_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
]

FORMAT = "synthloop.checkpoint"
FORMAT_VERSION = 1
BEST = "best.pt"
LAST = "last.pt"
_REQUIRED = ("model_name", "model_config", "model_state", "step")


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    method: nn.Module | None,
    step: int,
    train_config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    *,
    model_name: str | None = None,
    metrics: dict[str, float] | None = None,
    online_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path.

    ``model_name`` defaults to ``train_config["model"]``; the model must expose
    ``.config`` (a plain dict) so that ``create_model(model_name, **config)`` rebuilds it.
    ``extra`` holds loop state (history, best score...): plain types and tensors only.
    """
    path = Path(path)
    name = model_name or train_config.get("model")
    if not name:
        raise ValueError("save_checkpoint needs model_name (or train_config['model'])")
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise TypeError(f"{type(model).__name__} has no dict .config; cannot make a "
                        "self-describing checkpoint")
    obj = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "torch_version": str(torch.__version__),
        "task": str(train_config.get("task") or getattr(model, "task", "gaze")),
        "model_name": str(name),
        "model_config": config,
        "model_state": model.state_dict(),
        "method_name": train_config.get("method"),
        "method_state": method.state_dict() if method is not None else {},
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step),
        "train_config": dict(train_config),
        "metrics": dict(metrics or {}),
        "extra": dict(extra or {}),
    }
    if online_state is not None:
        obj["online_state"] = online_state
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint; a missing, truncated, foreign or corrupt file raises
    :class:`~realdata.errors.DataFormatError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "checkpoint missing (no such file)")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # zipfile, pickle, EOF and RuntimeError all occur for bad files
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = next((ln for ln in lines if ln.startswith("WeightsUnpickler")), None)
        msg = why or (lines[0] if lines else type(e).__name__)
        raise DataFormatError(path, f"unreadable or corrupt checkpoint ({msg[:200]})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise DataFormatError(path, "not a synthloop checkpoint (no 'format' marker)")
    if ck.get("format_version", 0) > FORMAT_VERSION:
        raise DataFormatError(path, f"checkpoint format {ck['format_version']} is newer than "
                                    f"this code understands ({FORMAT_VERSION})")
    missing = [k for k in _REQUIRED if k not in ck]
    if missing:
        raise DataFormatError(path, f"checkpoint lacks {missing}")
    return ck


def resolve_checkpoint(path_or_dir: str | Path) -> Path:
    """A checkpoint file as given, or in a run folder ``best.pt`` if present, else ``last.pt``."""
    p = Path(path_or_dir)
    if p.is_dir():
        for name in (BEST, LAST):
            if (p / name).is_file():
                return p / name
        raise DataFormatError(p, f"no {BEST} or {LAST} in this folder")
    return p
