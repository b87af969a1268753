"""Test-time shift averaging (``models.predict.predict_pitchyaw_shift_averaged``, behind
``synthloop evaluate --tta-shift`` and the benchmark's ``--tta-shift``): every prediction is
the mean over the patch shifted by up to PX px per axis, so a model that reads where
something sits in the patch answers as for the patch itself, and 0 is plain prediction."""

from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

from models.predict import predict_pitchyaw_shift_averaged


def _predict_shifted(net, images, shift):
    x = torch.from_numpy(images).unsqueeze(1)
    return predict_pitchyaw_shift_averaged(net, x, shift, amp=False).numpy()


class _Out(NamedTuple):
    pitchyaw: torch.Tensor


class Centroid(nn.Module):
    """(row, column) of the brightness centroid: moves one for one with a shift."""

    def __init__(self, power: int = 1):
        super().__init__()
        self.power = power
        self.unused = nn.Parameter(torch.zeros(1))  # predict() reads the device from it

    def forward(self, x):
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x
        w = x[:, 0]
        rows = torch.arange(w.shape[1], dtype=w.dtype).view(1, -1, 1)
        cols = torch.arange(w.shape[2], dtype=w.dtype).view(1, 1, -1)
        total = w.sum((1, 2))
        centroid = torch.stack([(w * rows).sum((1, 2)), (w * cols).sum((1, 2))], 1) / total[:, None]
        return _Out(centroid ** self.power)


def _blobs() -> np.ndarray:
    images = np.zeros((3, 36, 60), dtype=np.uint8)
    for i, (r, c) in enumerate([(10, 20), (18, 30), (25, 41)]):
        images[i, r - 2:r + 3, c - 3:c + 4] = 200
    return images


def test_zero_shift_is_plain_prediction():
    net = Centroid().eval()
    images = _blobs()
    plain = net(torch.from_numpy(images).unsqueeze(1)).pitchyaw.numpy()
    np.testing.assert_allclose(_predict_shifted(net, images, 0), plain, rtol=1e-6)


def test_symmetric_shifts_average_back_to_the_patch_and_one_shift_does_not():
    net = Centroid().eval()
    images = _blobs()
    plain = _predict_shifted(net, images, 0)
    for shift in (1, 2):
        np.testing.assert_allclose(_predict_shifted(net, images, shift), plain, atol=1e-4)
    moved = np.roll(images, 1, axis=2)  # what a one-sided average would see
    assert np.abs(_predict_shifted(net, moved, 1) - plain)[:, 1].min() > 0.9


def test_every_shift_in_the_square_is_taken_once():
    # the squared position averages to position^2 + mean(d^2): 2/3 px^2 over -1..1, 2 over -2..2
    net = Centroid(power=2).eval()
    images = _blobs()
    plain = _predict_shifted(net, images, 0)
    np.testing.assert_allclose(_predict_shifted(net, images, 1), plain + 2 / 3, rtol=1e-5)
    np.testing.assert_allclose(_predict_shifted(net, images, 2), plain + 2, rtol=1e-5)


def test_an_answer_for_the_patch_as_given_is_used_in_place_of_that_pass():
    class Counting(Centroid):
        calls = 0

        def forward(self, x):
            Counting.calls += 1
            return super().forward(x)

    net = Counting(power=2).eval()
    x = torch.from_numpy(_blobs()).unsqueeze(1)
    plain = net(x).pitchyaw
    Counting.calls = 0
    again = predict_pitchyaw_shift_averaged(net, x, 1, amp=False)
    assert Counting.calls == 9
    Counting.calls = 0
    reused = predict_pitchyaw_shift_averaged(net, x, 1, amp=False, unshifted=plain)
    assert Counting.calls == 8
    torch.testing.assert_close(reused, again)
    # it is taken as the caller's answer, not recomputed: a wrong one shows in the mean
    off = predict_pitchyaw_shift_averaged(net, x, 1, amp=False, unshifted=plain + 9.0)
    torch.testing.assert_close(off, again + 1.0)


def test_a_negative_shift_is_refused():
    with pytest.raises(ValueError, match="shift must be >= 0"):
        _predict_shifted(Centroid().eval(), _blobs(), -1)
