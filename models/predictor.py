"""Serving wrappers: images in, one tensor out. This is what goes to the MLflow model
registry, so pyfunc / `mlflow models serve` get a plain tensor -> tensor model with a
signature, while ``.net`` keeps the full network (features, bins, heatmaps) for analysis.
``GazePredictor``: eye patches -> (pitch, yaw); ``LandmarkPredictor``: face crops -> points."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GazePredictor(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        """x: uint8 (B,1,H,W) or float in [0,1] -> (B, 2) pitch, yaw in radians."""
        return self.net(x).pitchyaw

    @torch.no_grad()
    def predict_batches(self, images: Tensor, batch_size: int = 512) -> Tensor:
        self.eval()
        return torch.cat([self(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


class LandmarkPredictor(nn.Module):
    """Face crops in, landmarks out; ``transfer`` (a :class:`~models.label_transfer.LabelTransfer`)
    optionally maps the predicted dense set to the 68 iBug points.

    ``channels = (start, stop)`` picks the network's output channels that form the
    prediction (fed to ``transfer`` when there is one): a network may carry several point
    sets, e.g. a dense synthetic set in channels ``0..D`` and a head trained on real
    68-point labels in ``D..D+68`` (``synthloop.landmark_jobs``). None keeps them all.
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
