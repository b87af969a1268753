"""On-the-fly refinement: a source's batches through a frozen refiner give the bytes a
refined batch holds, labels untouched, the refiner never trained by the model's loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data import ArraySource
from models.refined_source import RefinedSource
from models.refiner import Refiner, RefinerConfig
from models.simgan import refine_images


def _refiner(channels: int = 1, seed: int = 0) -> Refiner:
    torch.manual_seed(seed)
    r = Refiner(RefinerConfig(channels=channels, width=4, blocks=1))
    torch.nn.init.normal_(r.out.weight, std=0.3)  # a refiner that changes images
    return r


def _eyes(n: int = 24) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 36, 60), dtype=np.uint8)
    return images, {"pitchyaw": rng.normal(size=(n, 2)).astype(np.float32)}


def test_batches_match_the_refined_batch_bytes_and_keep_their_labels():
    images, labels = _eyes()
    refiner = _refiner()
    plain = ArraySource(images, 8, seed=3, labels=labels)
    src = RefinedSource(plain, refiner)
    for step in (0, 5):
        raw, got = plain.batch(step), src.batch(step)
        assert got["image"].dtype == torch.uint8 and got["image"].shape == raw["image"].shape
        assert not torch.equal(got["image"], raw["image"])  # it did refine
        expected = refine_images(refiner, raw["image"][:, 0].numpy())
        assert np.array_equal(got["image"][:, 0].numpy(), expected)
        assert torch.equal(got["pitchyaw"], raw["pitchyaw"])
    assert src.batch_size == 8 and src.seed == 3 and len(src) == len(images)


def test_an_identity_refiner_changes_nothing():
    images, labels = _eyes()
    plain = ArraySource(images, 8, seed=0, labels=labels)
    src = RefinedSource(plain, Refiner(RefinerConfig(width=4, blocks=1)))  # zero residual
    assert torch.equal(src.batch(2)["image"], plain.batch(2)["image"])
    assert torch.equal(src.gather([0, 3])["image"], plain.gather([0, 3])["image"])


def test_the_refiner_stays_frozen_while_a_model_trains_on_its_output(one_thread, tmp_path):
    from models.train import TrainConfig, train

    images, labels = _eyes(64)
    refiner = _refiner()
    before = {k: v.clone() for k, v in refiner.state_dict().items()}
    src = RefinedSource(ArraySource(images, 16, seed=0, labels=labels), refiner)
    cfg = TrainConfig(model="gaze_resnet_s", method="source_only", steps=3, batch_size=16,
                      seed=0)
    res = train(cfg, src, None, tmp_path / "run",
                val_target={"image": torch.from_numpy(images[:8]).unsqueeze(1)})
    assert res.steps == 3
    assert all(not p.requires_grad for p in refiner.parameters())
    assert all(torch.equal(v, refiner.state_dict()[k]) for k, v in before.items())


def test_wrong_inputs_are_refused():
    images, labels = _eyes()
    with pytest.raises(TypeError, match="expected a refiner"):
        RefinedSource(ArraySource(images, 4, seed=0), torch.nn.Identity())
    rgb = RefinedSource(ArraySource(images, 4, seed=0), _refiner(channels=3))
    with pytest.raises(ValueError, match="3-channel images, the source gives 1"):
        rgb.batch(0)
