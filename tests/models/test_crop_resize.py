"""Batches resampled to a model's crop size keep every point on the pixels it marks."""

import numpy as np
import torch

from models.crop_resize import ResizedSource, resize_batch, resize_points
from models.data import ArraySource


def _blob(size: int, x: float, y: float, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))


def _centroid(img: torch.Tensor) -> np.ndarray:
    a = img.double().numpy()
    a = a - a.min()
    yy, xx = np.mgrid[0:a.shape[0], 0:a.shape[1]]
    return np.array([(a * xx).sum(), (a * yy).sum()]) / a.sum()


def test_a_resized_blob_is_where_its_resized_point_says():
    pts = np.array([[37.3, 80.6], [90.0, 51.25]], np.float32)
    img = np.stack([(_blob(128, *p, 4.0) * 250).astype(np.uint8) for p in pts])  # (2, 128, 128)
    src = ArraySource(img[:, None], 2, 0, labels={"points": pts[:, None, :]})
    batch = ResizedSource(src, 112).gather([0, 1])
    assert batch["image"].shape == (2, 1, 112, 112) and batch["image"].dtype == torch.uint8
    for i in range(2):
        moved = batch["points"][i, 0].numpy()
        assert np.abs(moved - _centroid(batch["image"][i, 0])).max() < 0.05
        assert np.abs(moved - ((pts[i] + 0.5) * 112 / 128 - 0.5)).max() < 1e-5


def test_sources_keep_their_size_and_seed_and_same_size_passes_through():
    img = np.zeros((5, 3, 128, 128), np.uint8)
    pts = np.full((5, 4, 2), 10.0, np.float32)
    pts[0, 1] = np.nan  # a missing point stays missing
    src = ArraySource(img, 3, 7, labels={"points": pts, "visible": np.ones((5, 4), np.float32)})
    resized = ResizedSource(src, 112)
    assert resized.batch_size == 3 and resized.seed == 7 and len(resized) == 5
    b = resized.batch(0)
    assert b["image"].shape == (3, 3, 112, 112)
    assert torch.equal(b["visible"], src.batch(0)["visible"])
    assert torch.isnan(resized.gather([0])["points"][0, 1]).all()
    same = src.batch(0)
    assert resize_batch(same, 128) is same
    p = torch.tensor([[0.0, 127.0]])
    assert torch.equal(resize_points(p, 128, 128), p)
