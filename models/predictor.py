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
    optionally maps the predicted dense set to the 68 iBug points."""

    def __init__(self, net: nn.Module, transfer: nn.Module | None = None):
        super().__init__()
        self.net = net
        self.transfer = transfer

    def forward(self, x: Tensor) -> Tensor:
        """x: uint8 (B,3,H,W) or float in [0,1] -> (B, K, 2) (x, y) pixel-centre coordinates."""
        points = self.net(x).coords
        return points if self.transfer is None else self.transfer(points)

    @torch.no_grad()
    def predict_batches(self, images: Tensor, batch_size: int = 64) -> Tensor:
        self.eval()
        return torch.cat([self(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
