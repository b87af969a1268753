"""A landmark model trained at 112 px gets 112 px crops end to end: the 128 px synthetic
batch resampled, real faces (labeled and DA target) cropped at 112, and evaluation at 112."""

from __future__ import annotations

import json
import math

import pytest

from models.registry import load_model
from synthloop.landmarks.evaluate import evaluate_landmarks_model
from synthloop.landmarks.train import train_landmarks
from synthloop.runs import TrainingRun

pytestmark = pytest.mark.slow  # two tiny MLflow-logged training runs (~20 s)

TINY = {"width": 8, "head_channels": 8, "depths": [1, 1, 1, 1]}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def data(face_data):
    return face_data


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
