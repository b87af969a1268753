"""Loading a landmark model for serving: a run folder or checkpoint written by
:func:`synthloop.landmarks.train.train_landmarks` (with its layout record and label
transfer), a registered MLflow model, or a bare landmark network; the 68 points out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from models.predictor import OutputLayout, make_predictor
from realdata.errors import DataFormatError, UsageError

__all__ = ["LAYOUT_FILE", "TRANSFER_FILE", "load_landmark_predictor", "read_layout_record"]

LAYOUT_FILE = "landmarks.json"  # the output layout and route, beside best.pt / last.pt
TRANSFER_FILE = "transfer.pt"


def read_layout_record(ckpt: Path) -> dict[str, Any] | None:
    p = (ckpt if ckpt.is_dir() else ckpt.parent) / LAYOUT_FILE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(p, f"not valid JSON ({e})") from None


def load_landmark_predictor(ref: str | Path | nn.Module, route: str | None = None) -> Any:
    """A LandmarkPredictor (68 points out) from an MLflow URI (``models:/synthloop-landmarks@
    champion``), a run folder / checkpoint written by :func:`~synthloop.landmarks.train.train_landmarks`, a
    predictor, or a bare landmark network. ``route`` overrides the recorded one (a run
    folder offers every route it trained; a registered model only its own, and
    ``dense68``/``head68`` from its network)."""
    from models.predictor import LandmarkPredictor
    from synthloop.tracking import is_model_uri

    transfer = None
    if isinstance(ref, nn.Module):
        loaded = ref
    elif is_model_uri(str(ref)):
        import mlflow.pytorch

        loaded = mlflow.pytorch.load_model(str(ref), map_location="cpu")
    else:
        from models.registry import load_model

        path = Path(ref)
        net = load_model(path)
        rec = read_layout_record(path)
        if rec is None:
            layout, recorded = OutputLayout.infer(net), "dense68"
        else:
            layout, recorded = OutputLayout.from_dict(rec["layout"]), rec["route"]
            if rec.get("transfer"):
                base = path if path.is_dir() else path.parent
                transfer = load_model(base / rec["transfer"])
        return make_predictor(net, layout, route or recorded, transfer)
    if isinstance(loaded, LandmarkPredictor):
        info = dict(getattr(loaded, "layout", {}) or {})
        layout = (OutputLayout.from_dict(info) if "num_dense" in info
                  else OutputLayout.infer(loaded.net))
        recorded = info.get("route") or ("transfer" if loaded.transfer is not None else "dense68")
        if route is None or route == recorded:
            return loaded
        return make_predictor(loaded.net, layout, route, loaded.transfer)
    if getattr(loaded, "task", None) == "landmarks":
        return make_predictor(loaded, OutputLayout.infer(loaded), route or "dense68")
    raise UsageError(f"{ref}: a {type(loaded).__name__}, not a landmark model")

