"""A serving wrapper: images in, (pitch, yaw) out. This is what goes to the MLflow model
registry, so pyfunc / `mlflow models serve` get a plain tensor -> tensor model with a
signature, while ``.net`` keeps the full GazeNet (features, bins) for analysis."""

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
