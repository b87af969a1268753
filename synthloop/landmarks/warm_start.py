"""Warm starts of landmark training from a checkpoint: as it is; for a syn+real run from a
model pre-trained on the dense set alone, grown by a real 68 head that starts at the dense
set's iBug vertices (pre-train on synthetic, fine-tune on synthetic + real); or, for a run
on the 68 points alone, narrowed to those vertices (pre-train on synthetic, fine-tune on
real)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.predictor import N68, OutputLayout
from synthloop.errors import UsageError

__all__ = ["warm_start_checkpoint"]

GROWN = "init_grown.pt"
NARROWED = "init_narrowed.pt"


def warm_start_checkpoint(checkpoint: str | Path, layout: OutputLayout, out: Path) -> Path:
    """The checkpoint a run with ``layout`` can start from: ``checkpoint`` itself when its
    model has the layout's channels; a copy grown by a 68 head (``out/init_grown.pt``)
    when it has the dense channels only and the layout adds the real head; a copy
    narrowed to the dense set's iBug vertices (``out/init_narrowed.pt``, at the 68-point
    model's own heatmap stride) when the layout is the 68 points alone."""
    from models.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
    from models.registry import create_model

    path = resolve_checkpoint(checkpoint)
    ck = load_checkpoint(path)
    have = int(ck["model_config"].get("num_points", 0))
    if have == layout.num_points:
        return path
    narrow = layout.num_points == N68 and not layout.real_head and have > N68
    if not (narrow or (layout.real_head and have == layout.num_dense)):
        raise UsageError(f"{path}: a model of {have} points cannot start a run of "
                         f"{layout.num_points} ({layout.to_dict()})")
    net = create_model(ck["model_name"], **ck["model_config"])
    net.load_state_dict(ck["model_state"])
    if narrow:
        if not hasattr(net, "narrowed"):
            raise UsageError(f"{path}: {ck['model_name']} cannot be narrowed to the 68 points; "
                             "use a landmark_resnet model")
        small = net.narrowed(np.arange(N68))
        kwargs = {**ck["train_config"].get("model_kwargs", {}), "num_points": N68}
        kwargs.pop("heatmap_stride", None)  # the 68-point model's own stride
        return save_checkpoint(out / NARROWED, small, None, None, int(ck["step"]),
                               {**ck["train_config"], "model_kwargs": kwargs})
    if not hasattr(net, "grown"):
        raise UsageError(f"{path}: {ck['model_name']} cannot grow a real 68 head; pre-train "
                         "with the real head in the layout or use a landmark_resnet model")
    grown = net.grown(np.arange(N68))
    return save_checkpoint(out / GROWN, grown, None, None, int(ck["step"]),
                           {**ck["train_config"],
                            "model_kwargs": {**ck["train_config"].get("model_kwargs", {}),
                                             "num_points": layout.num_points}})
