"""Loading a landmark model for serving: a run folder or checkpoint written by
:func:`synthloop.landmarks.train.train_landmarks` (with its layout record and label
transfer), a registered MLflow model (the same files, carried in the model:
:func:`synthloop.model_refs.load_model_reference`; nothing is unpickled), or a bare landmark
network; the 68 points out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from models.predictor import ROUTES, OutputLayout, make_predictor
from realdata.errors import DataFormatError, UsageError

__all__ = ["LAYOUT_FILE", "TRANSFER_FILE", "load_landmark_predictor", "read_layout_record"]

LAYOUT_FILE = "landmarks.json"  # the output layout and route, beside best.pt / last.pt
TRANSFER_FILE = "transfer.pt"


def read_layout_record(ckpt: Path) -> dict[str, Any] | None:
    """The layout record beside a checkpoint (None without one), checked: one that is
    not JSON, lacks a valid layout or route, or names a transfer file outside its folder
    is a DataFormatError naming it."""
    p = (ckpt if ckpt.is_dir() else ckpt.parent) / LAYOUT_FILE
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(p, f"not valid JSON ({e})") from None
    _check_layout_record(p, rec)
    return rec


def _check_layout_record(p: Path, rec: Any) -> None:
    if not isinstance(rec, dict) or not isinstance(rec.get("layout"), dict):
        raise DataFormatError(p, "not a landmark layout record (a JSON object with a 'layout' "
                                 "object expected)")
    try:
        OutputLayout.from_dict(rec["layout"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataFormatError(p, f"invalid layout ({e})") from None
    if rec.get("route") not in ROUTES:
        raise DataFormatError(p, f"route must be one of {ROUTES}, got {rec.get('route')!r}")
    transfer = rec.get("transfer")
    # a plain name: the record may come from a downloaded model, and must not point elsewhere
    if transfer is not None and (not isinstance(transfer, str) or transfer in ("", ".", "..")
                                 or Path(transfer).name != transfer):
        raise DataFormatError(p, f"transfer must name a file beside it, got {transfer!r}")


def load_landmark_predictor(ref: str | Path | nn.Module, route: str | None = None) -> Any:
    """A LandmarkPredictor (68 points out) from an MLflow URI (``models:/synthloop-landmarks@
    champion``), a run folder / checkpoint written by :func:`~synthloop.landmarks.train.train_landmarks`, a
    predictor, or a bare landmark network. ``route`` overrides the recorded one (a run
    folder or registered model offers every route its run trained; a module only its own,
    and ``dense68``/``head68`` from its network)."""
    from synthloop.model_refs import is_model_uri, load_model_reference

    if isinstance(ref, nn.Module):
        return _from_module(ref, route)
    if is_model_uri(str(ref)):
        return load_model_reference(str(ref), lambda folder: _from_checkpoint(folder, route))
    return _from_checkpoint(Path(ref), route)


def _from_checkpoint(path: Path, route: str | None) -> Any:
    """A run folder or checkpoint file, with the layout record and transfer beside it."""
    from models.registry import load_model

    net = load_model(path, task="landmarks")
    record_file = (path if path.is_dir() else path.parent) / LAYOUT_FILE
    rec = read_layout_record(path)
    transfer = None
    if rec is None:
        layout, recorded = OutputLayout.infer(net), "dense68"
    else:
        layout, recorded = OutputLayout.from_dict(rec["layout"]), rec["route"]
        if layout.num_points != getattr(net, "num_points", layout.num_points):
            raise DataFormatError(record_file, f"layout of {layout.num_points} points, but the "
                                               f"network predicts {net.num_points}")
        if rec.get("transfer"):
            transfer = load_model(record_file.parent / rec["transfer"], task="label_transfer")
    try:
        return make_predictor(net, layout, route or recorded, transfer)
    except ValueError as e:  # a route this model was not trained for
        if route is None:  # ... yet recorded as its own
            raise DataFormatError(record_file, str(e)) from None
        raise UsageError(f"{path}: {e}") from None


def _from_module(loaded: nn.Module, route: str | None) -> Any:
    from models.predictor import LandmarkPredictor

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
    raise UsageError(f"a {type(loaded).__name__}, not a landmark model")
