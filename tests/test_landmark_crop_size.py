"""A landmark model trained at 112 px gets 112 px crops end to end: the 128 px synthetic
batch resampled, real faces (labeled and DA target) cropped at 112, and evaluation at 112."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from models.registry import load_model
from realdata.landmarks import write_pts
from synth.face_distribution import default_face_distribution
from synth.face_fallback import fallback_face_model
from synth.face_generator import FaceGenerator
from synth.generate_faces import generate_face_batch
from synth.shards import write_status
from synthloop.landmarks.evaluate import evaluate_landmarks_model
from synthloop.landmarks.train import train_landmarks
from synthloop.runs import TrainingRun
from synthloop.settings import Settings

pytestmark = pytest.mark.slow  # two tiny MLflow-logged training runs (~20 s)

TINY = {"width": 8, "head_channels": 8, "depths": [1, 1, 1, 1]}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("crop_size")
    head = fallback_face_model()
    generate_face_batch(root / "batch", n=12, seed=0, model=head, chunk=12)
    write_status(root / "batch", "accepted")
    images, _, labels = FaceGenerator(default_face_distribution(), model=head).render_all(6, seed=5)
    real = root / "real"
    real.mkdir()
    for i in range(6):  # 128 px faces pasted into larger "photos"
        photo = np.full((170, 200, 3), 90, np.uint8)
        photo[30:158, 20:148] = images[i]
        Image.fromarray(photo).save(real / f"image_{i:04d}.jpg", quality=95)
        write_pts(real / f"image_{i:04d}.pts", labels["points68"][i] + np.array([20.0, 30.0]))
    settings = Settings(home=root / "home")
    settings.ensure_home()
    return {"batch": str(root / "batch"), "real": str(real), "settings": settings}


def test_a_112_px_model_trains_and_evaluates_on_112_px_crops(data, tmp_path, monkeypatch):
    sizes: list[tuple[str, tuple[int, ...]]] = []
    train = TrainingRun.train

    def spy(self, cfg, source, target, out, **kw):
        sizes.append(("source", tuple(source.batch(0)["image"].shape[-2:])))
        sizes.append(("val_source", tuple(kw["val_source"]["image"].shape[-2:])))
        if target is not None:
            sizes.append(("target", tuple(target.batch(0)["image"].shape[-2:])))
            sizes.append(("val_target", tuple(kw["val_target"]["image"].shape[-2:])))
        return train(self, cfg, source, target, out, **kw)

    monkeypatch.setattr(TrainingRun, "train", spy)
    common = dict(steps=2, seed=0, source=data["batch"], model="landmark_resnet_s",
                  model_kwargs=TINY, batch_size=4, transfer_steps=5, log=lambda *_: None,
                  train_overrides={"eval_every": 2, "log_every": 1, "warmup": 1})
    # syn+real: resampled synthetic faces and real crops share each batch
    out = tmp_path / "synreal"
    train_landmarks(data["settings"], out=str(out), real_labeled=data["real"], **common)
    # DANN: the unlabeled target is cropped at the model's size too
    train_landmarks(data["settings"], out=str(tmp_path / "dann"), method="dann",
                    target=data["real"], **common)
    assert {name for name, _ in sizes} == {"source", "val_source", "target", "val_target"}
    assert all(s == (112, 112) for _, s in sizes), sizes

    assert load_model(out).input_size == 112
    assert json.loads((out / "landmarks.json").read_text())["crop_size"] == 112
    res = evaluate_landmarks_model(str(out), data["real"])
    assert res["crop"]["size"] == 112 and math.isfinite(res["nme_inter_ocular"])
