"""Test-time flip averaging (models.predict.predict_points_flip_averaged): a model that
finds its points exactly gives the same points either way; one with a left/right bias
has it averaged away; the permutation re-indexes the mirrored points."""

from typing import NamedTuple

import torch
from torch import nn

from models.heatmaps import soft_argmax
from models.predict import predict_points, predict_points_flip_averaged


class Out(NamedTuple):
    coords: torch.Tensor


class BlobFinder(nn.Module):
    """Point k = the soft-argmax of input channel k (sharp), plus a fixed x offset."""

    def __init__(self, bias_x: float = 0.0):
        super().__init__()
        self.bias_x = bias_x
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        xy, _ = soft_argmax(x * 200.0, stride=1.0)
        return Out(xy + torch.tensor([self.bias_x, 0.0]))


def _blobs(points, h=24, w=32, sigma=0.8):
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    d2 = (xs - points[..., 0, None, None]) ** 2 + (ys - points[..., 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma ** 2))


def test_flip_averaging_keeps_exact_points_and_cancels_a_left_right_bias():
    pts = torch.tensor([[[5.0, 7.0], [20.0, 12.0], [11.0, 3.0]]])
    images = _blobs(pts)
    identity = [0, 1, 2]
    exact = BlobFinder().eval()
    assert torch.allclose(predict_points(exact, images, amp=False), pts, atol=0.05)
    assert torch.allclose(predict_points_flip_averaged(exact, images, identity, amp=False), pts,
                          atol=0.05)
    biased = BlobFinder(bias_x=1.5).eval()
    assert torch.allclose(predict_points(biased, images, amp=False)[..., 0], pts[..., 0] + 1.5,
                          atol=0.05)
    # the bias moves the flipped prediction the other way: the mean cancels it
    assert torch.allclose(predict_points_flip_averaged(biased, images, identity, amp=False), pts,
                          atol=0.05)


def test_the_permutation_re_indexes_the_mirrored_points():
    pts = torch.tensor([[[5.0, 7.0], [20.0, 12.0], [11.0, 3.0]]])
    wrong = predict_points_flip_averaged(BlobFinder().eval(), _blobs(pts), [1, 0, 2], amp=False)
    assert not torch.allclose(wrong, pts, atol=1.0)  # points 0 and 1 swapped halfway
