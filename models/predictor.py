"""Serving wrappers: images in, one tensor out. This is what goes to the MLflow model
registry, so pyfunc / `mlflow models serve` get a plain tensor -> tensor model with a
signature, while ``.net`` keeps the full network (features, bins, heatmaps) for analysis.
``GazePredictor``: eye patches -> (pitch, yaw); ``LandmarkPredictor``: face crops -> points.

**Landmark output layout and routes.** A landmark network predicts ``K`` channels: the
synthetic point set (``D`` dense points, or the 68), and, trained with real labeled faces
as well, 68 more (a head on real labels). :class:`OutputLayout` records which channels are
which, and three *routes* turn them into the 68 iBug points a real benchmark scores:

- ``dense68``: the dense set's first 68 points, which by construction are the 68 iBug
  vertices of the face mesh (nearest dense points, no real labels needed);
- ``transfer``: the label-transfer network (:mod:`models.label_transfer`) on the ``D``
  dense points, fitted on real labels;
- ``head68``: the extra head trained on real 68-point labels (syn+real).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["N68", "ROUTES", "GazePredictor", "LandmarkPredictor", "OutputLayout", "make_predictor"]

N68 = 68
ROUTES = ("dense68", "transfer", "head68")


class GazePredictor(nn.Module):
    """``mirror_eye``: the eye side (``"L"`` or ``"R"``) whose patches the model saw mirrored
    onto the other side's in training (``GazeTaskConfig.mirror_eye``). The served model
    takes bare images, so that convention is the caller's to apply; :meth:`serving_notes`
    writes it onto the registered version, where a user of the registry reads it."""

    def __init__(self, net: nn.Module, mirror_eye: str | None = None):
        super().__init__()
        if mirror_eye not in (None, "L", "R"):
            raise ValueError(f"mirror_eye must be None, 'L' or 'R', got {mirror_eye!r}")
        self.net = net
        self.mirror_eye = mirror_eye

    def forward(self, x: Tensor) -> Tensor:
        """x: uint8 (B,1,H,W) or float in [0,1] -> (B, 2) pitch, yaw in radians."""
        return self.net(x).pitchyaw

    @torch.no_grad()
    def predict_batches(self, images: Tensor, batch_size: int = 512) -> Tensor:
        self.eval()
        return torch.cat([self(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])

    def serving_notes(self) -> dict[str, str]:
        """What a caller must do beyond the signature, as model-version tags (and a
        ``description``); empty when the model takes every eye as it comes."""
        side = getattr(self, "mirror_eye", None)  # pickles from before the field existed
        if side is None:
            return {}
        return {"mirror_eye": side,
                "description": f"Trained with every {side} eye mirrored left to right onto the "
                               f"other side. Mirror {side} eye patches left to right before "
                               f"predicting and negate the predicted yaw; pass the other "
                               f"eyes as they are. synthloop evaluate does this itself from "
                               f"meta.csv's eye column."}


class LandmarkPredictor(nn.Module):
    """Face crops in, landmarks out; ``transfer`` (a :class:`~models.label_transfer.LabelTransfer`)
    optionally maps the predicted dense set to the 68 iBug points.

    ``channels = (start, stop)`` picks the network's output channels that form the
    prediction (fed to ``transfer`` when there is one): a network may carry several point
    sets, e.g. a dense synthetic set in channels ``0..D`` and a head trained on real
    68-point labels in ``D..D+68`` (:class:`OutputLayout`). None keeps them all.
    ``layout`` is a plain description of those channels, kept for whoever loads the model.
    """

    def __init__(self, net: nn.Module, transfer: nn.Module | None = None, *,
                 channels: tuple[int, int] | None = None, layout: dict | None = None):
        super().__init__()
        self.net = net
        self.transfer = transfer
        if channels is not None:
            start, stop = (int(c) for c in channels)
            if not 0 <= start < stop:
                raise ValueError(f"channels must be (start, stop) with 0 <= start < stop, got {channels}")
            channels = (start, stop)
        self.channels = channels
        self.layout = dict(layout or {})

    def forward(self, x: Tensor) -> Tensor:
        """x: uint8 (B,3,H,W) or float in [0,1] -> (B, K, 2) (x, y) pixel-centre coordinates."""
        points = self.net(x).coords
        channels = getattr(self, "channels", None)  # pickles from before the field existed
        if channels is not None:
            points = points[:, channels[0]:channels[1]]
        return points if self.transfer is None else self.transfer(points)

    @torch.no_grad()
    def predict_batches(self, images: Tensor, batch_size: int = 64) -> Tensor:
        self.eval()
        return torch.cat([self(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


@dataclass(frozen=True)
class OutputLayout:
    """Which network channels hold which points (module docstring: routes).

    point_set: the synthetic set in channels ``0..num_dense`` (``dense500``... or
    ``points68``); real_head: whether channels ``num_dense..num_dense+68`` are the head
    trained on real 68-point labels.
    """

    point_set: str
    num_dense: int
    real_head: bool = False

    def __post_init__(self) -> None:
        if self.num_dense < N68:
            raise ValueError(f"the synthetic set must hold at least the 68 iBug points, "
                             f"got {self.num_dense}")

    @property
    def num_points(self) -> int:
        return self.num_dense + (N68 if self.real_head else 0)

    def channels(self, route: str) -> tuple[int, int]:
        if route == "dense68":
            return (0, N68)
        if route == "transfer":
            return (0, self.num_dense)
        if route == "head68":
            if not self.real_head:
                raise ValueError("route 'head68' needs a model trained with real labeled faces "
                                 "(real_fraction > 0)")
            return (self.num_dense, self.num_dense + N68)
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutputLayout:
        return cls(str(d["point_set"]), int(d["num_dense"]), bool(d.get("real_head", False)))

    @classmethod
    def infer(cls, net: nn.Module) -> OutputLayout:
        """For a bare landmark network without a layout record: all channels are the
        synthetic set (the 68, or a dense set whose first 68 are the iBug points)."""
        k = int(getattr(net, "num_points", 0))
        return cls("points68" if k == N68 else f"dense{k}", k, False)


def make_predictor(net: nn.Module, layout: OutputLayout, route: str,
                   transfer: nn.Module | None = None) -> Any:
    """The serving model for ``route``: crops in, the 68 points out."""
    if route == "transfer" and transfer is None:
        raise ValueError("route 'transfer' needs a fitted label-transfer network")
    return LandmarkPredictor(net, transfer if route == "transfer" else None,
                             channels=layout.channels(route),
                             layout={**layout.to_dict(), "route": route})
