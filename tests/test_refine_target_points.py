"""The real faces' 68 points a face-aligned refiner reads (synthloop.landmarks.refining)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from synthloop.landmarks.refining import predicted_points


class _Fixed(nn.Module):
    """A 'landmark network' that answers the same points for every crop of its input size
    and records the sizes it was given."""

    task = "landmarks"

    def __init__(self, points: np.ndarray, input_size: int):
        super().__init__()
        self.num_points, self.input_size = len(points), input_size
        self.points = torch.as_tensor(points, dtype=torch.float32)
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return SimpleNamespace(coords=self.points.expand(len(x), -1, -1))


def test_points_come_back_in_the_crops_own_pixels():
    pts = np.random.default_rng(0).uniform(10, 100, size=(68, 2))
    net = _Fixed(pts, input_size=112)
    crops = np.zeros((5, 128, 128, 3), np.uint8)
    got = predicted_points(crops, net, batch_size=2)
    assert got.shape == (5, 68, 2) and net.sizes == [(112, 112)] * 3
    # pixel centres at integers: the crop's (p + 0.5) * 128 / 112 - 0.5
    assert np.allclose(got[3], (pts + 0.5) * 128 / 112 - 0.5, atol=1e-4)
    same = _Fixed(pts, input_size=128)
    assert np.allclose(predicted_points(crops, same)[0], pts, atol=1e-5)


def test_a_model_that_does_not_answer_68_points_is_refused():
    net = _Fixed(np.zeros((10, 2)), input_size=64)
    with pytest.raises(ValueError, match="68 iBug points"):
        predicted_points(np.zeros((2, 64, 64, 3), np.uint8), net)
