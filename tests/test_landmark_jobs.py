"""Landmark jobs end to end on tiny data: a 12-face batch of the built-in procedural head
and a "real" folder the test writes (rendered faces pasted into larger JPEGs with .pts
files), the default landmark model at its smallest width, 2 training steps. Checks checkpoints, the MLflow
run and registry, the routes to 68 points (nearest dense, label transfer, real head),
evaluation in original image coordinates, the benchmark helpers and data errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from models.data import ArraySource, ConcatSource, ShardSource
from models.predictor import OutputLayout
from realdata.real_faces import load_real_faces
from realdata.splits import split_face_folder
from synth.face_model import IBUG68_MIRROR
from synth.shards import BatchReader, write_status
from synthloop.errors import DataFormatError
from synthloop.landmarks.evaluate import evaluate_landmarks_model
from synthloop.landmarks.load import load_landmark_predictor
from synthloop.landmarks.source import synthetic_labels
from synthloop.landmarks.train import train_landmarks
from synthloop.landmarks.transfer import fit_transfer_on_real

# slow: trains, registers and evaluates landmark models through MLflow (about 30 s)
pytestmark = pytest.mark.slow

TINY = {"width": 8, "depths": (1, 1, 1, 1), "head_channels": 8}  # landmark_resnet_s, tiny
FAST = {"eval_every": 2, "log_every": 1, "warmup": 1}
KEYS = {"nme_inter_ocular", "nme_inter_pupil", "failure_rate_010", "n", "slices", "model",
        "data", "route"}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def data(face_data):
    return face_data


def _train(out, data, **kw):
    args = dict(steps=2, seed=0, out=str(out), source=data["batch"], model_kwargs=TINY,
                batch_size=4, transfer_steps=5, train_overrides=FAST, log=lambda *_: None)
    return train_landmarks(data["settings"], **{**args, **kw})


def _check_result(res: dict, n: int) -> None:
    assert set(res) >= KEYS and res["n"] == n
    assert all(math.isfinite(res[k]) for k in ("nme_inter_ocular", "nme_inter_pupil"))
    assert 0.0 <= res["failure_rate_010"] <= 1.0 and res["slices"]
    assert json.loads(json.dumps(res)) == res  # plain JSON, nothing to convert


# --------------------------------------------------------------------------- data


def test_sources_are_step_keyed_and_mix_with_padded_labels(data):
    reader = BatchReader(data["batch"])
    name, pts, w, mirror = synthetic_labels(data["batch"])
    assert name == "dense500" and pts.shape == (12, 500, 2) and w.shape == (12, 500)
    assert sorted(mirror) == list(range(500)) and np.array_equal(mirror[mirror], np.arange(500))
    ibug = synthetic_labels(data["batch"], "68")
    assert np.array_equal(pts[:, :68], ibug.points)  # first 68 = iBug
    assert np.array_equal(ibug.mirror, IBUG68_MIRROR)
    a = ShardSource(reader, 3, 7, {"points": pts}).batch(5)
    b = ShardSource(reader, 3, 7, {"points": pts}).batch(5)
    assert a["image"].shape == (3, 3, 128, 128) and a["image"].dtype == torch.uint8
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["points"], b["points"])
    real = ArraySource(reader.images()[:4], 2, 1, labels={"points": pts[:4]})
    mix = ConcatSource(ShardSource(reader, 3, 7, {"points": pts}), real).batch(5)
    assert mix["points"].shape == (5, 500, 2) and mix["image"].shape[0] == 5


def test_real_faces_are_cropped_by_the_protocol_and_cached(data, monkeypatch):
    import os

    from realdata import face_crop

    faces = load_real_faces(data["real"])
    assert faces.images.shape == (6, 128, 128, 3) and faces.points.shape == (6, 68, 2)
    back = np.stack([tf.from_crop(p) for tf, p in zip(faces.transforms, faces.points, strict=True)])
    assert np.allclose(back, faces.face_set.points)
    # cached: loading the same faces again crops none of them...
    cropped, crop = [], face_crop.crop_face_set
    monkeypatch.setattr(face_crop, "crop_face_set",
                        lambda fs, *a, **kw: cropped.append(list(fs.names)) or crop(fs, *a, **kw))
    again = load_real_faces(faces.face_set)
    assert cropped == []
    assert again.images is not faces.images  # a new stack...
    assert np.array_equal(again.images, faces.images)  # ...same crops
    # ...and a face whose image file changed is cropped again, alone
    path = faces.face_set.image_paths[2]
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert np.array_equal(load_real_faces(data["real"]).images, faces.images)
    assert cropped == [[faces.face_set.names[2]]]


def test_split_face_folder_is_fixed_disjoint_and_sorted(data):
    train, test = split_face_folder(data["real"], n_test=2, seed=0)
    assert len(train) == 4 and len(test) == 2 and not set(train.names) & set(test.names)
    assert list(test.names) == sorted(test.names)
    again = split_face_folder(data["real"], n_test=2, seed=0)
    assert again[1].names == test.names
    with pytest.raises(ValueError, match="n_test"):
        split_face_folder(data["real"], n_test=6)


# --------------------------------------------------------------------------- train + evaluate


def test_train_logs_registers_and_evaluates_in_image_coordinates(data, tmp_path):
    import mlflow

    run = _train(tmp_path / "run", data)
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "best.pt").is_file()
    assert run.route == "dense68" and run.layout == {"point_set": "dense500", "num_dense": 500,
                                                      "real_head": False}
    got = mlflow.get_run(run.run_id)
    assert got.data.params["task"] == "landmarks" and got.data.params["point_set"] == "dense500"
    assert got.data.params["method"] == "source_only" and "source_nme_crop" in got.data.metrics
    assert mlflow.get_experiment(got.info.experiment_id).name == "synthloop-landmarks"
    assert run.model_version is not None and run.model_uri

    res = evaluate_landmarks_model(str(tmp_path / "run"), data["real"])
    _check_result(res, 6)
    assert res["route"] == "dense68"
    registered = evaluate_landmarks_model(f"models:/synthloop-landmarks/{run.model_version}",
                                          data["real"])
    assert registered["nme_inter_ocular"] == pytest.approx(res["nme_inter_ocular"])

    # the NME is computed in the photo's coordinates: the same as in crop coordinates
    pred = load_landmark_predictor(str(tmp_path / "run"))
    faces = load_real_faces(data["real"], pred.net.input_size)  # crops at the model's size
    crop_pred = pred.predict_batches(torch.from_numpy(faces.nchw())).numpy()
    from analysis.landmark_eval import nme

    assert nme(crop_pred, faces.points).mean() == pytest.approx(res["nme_inter_ocular"], rel=1e-6)


def test_syn_real_training_fits_transfer_and_offers_every_route(data, tmp_path):
    run = _train(tmp_path / "run", data, real_labeled=data["real"], register=False)
    assert run.layout["real_head"] and set(run.real_val_nme) == {"dense68", "transfer", "head68"}
    assert run.route == min(run.real_val_nme, key=run.real_val_nme.get)
    assert (tmp_path / "run" / "transfer.pt").is_file()
    from models.registry import load_model

    assert load_model(tmp_path / "run").num_points == 568  # 500 dense + a 68 head for real labels
    for route in ("dense68", "transfer", "head68"):
        res = evaluate_landmarks_model(str(tmp_path / "run"), data["real"], route=route)
        _check_result(res, 6)
        assert res["route"] == route


def test_synthetic_faces_can_train_the_68_head_through_a_fitted_transfer(data, tmp_path):
    from synthloop.landmarks.source import training_data
    from synthloop.landmarks.syn_head68 import transferred_synthetic_68

    _train(tmp_path / "dense", data, register=False)
    label = transferred_synthetic_68(tmp_path / "dense")
    d = training_data(data["settings"], source=data["batch"], n_source=0, seed=0, points="dense",
                      dense_set=None, supervise_occluded=True, real_labeled=data["real"],
                      real_fraction=0.5, real_val_fraction=0.0, target=None, batch_size=4,
                      log=lambda *_: None, syn_head68=label)
    syn = d.source.parts[0].gather(np.arange(3))  # synthetic faces: both heads labeled
    lo, hi = d.layout.channels("head68")
    assert torch.isfinite(syn["points"][:, lo:hi]).all() and (syn["visible"][:, lo:hi] == 1).all()
    assert torch.isfinite(syn["points"][:, :lo]).all()
    plain = training_data(data["settings"], source=data["batch"], n_source=0, seed=0,
                          points="dense", dense_set=None, supervise_occluded=True,
                          real_labeled=data["real"], real_fraction=0.5, real_val_fraction=0.0,
                          target=None, batch_size=4, log=lambda *_: None)
    assert (plain.source.parts[0].gather(np.arange(3))["visible"][:, lo:hi] == 0).all()
    run = _train(tmp_path / "sh68", data, real_labeled=data["real"], syn_head68=True,
                 init_weights=str(tmp_path / "dense"), register=False)
    assert run.layout["real_head"]
    with pytest.raises(ValueError, match="syn_head68 needs syn\\+real"):
        _train(tmp_path / "x", data, real_labeled=data["real"], syn_head68=True)


def test_test_time_label_transfer_on_a_split(data, tmp_path):
    _train(tmp_path / "run", data, register=False)
    train, test = split_face_folder(data["real"], n_test=2, seed=0)
    fitted = fit_transfer_on_real(str(tmp_path / "run"), train, steps=3, seed=0)
    faces = load_real_faces(test)
    assert fitted.predictor.predict_batches(torch.from_numpy(faces.nchw())).shape == (2, 68, 2)
    assert fitted.predictor.layout["route"] == "transfer" and fitted.fit.params["n"] == 4
    _check_result(evaluate_landmarks_model(fitted.predictor, test), 2)


def test_dann_on_a_generated_batch_with_unlabeled_target(data, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    for p in sorted((data["root"] / "real").glob("*.jpg"))[:3]:
        (target / p.name).write_bytes(p.read_bytes())  # no .pts: already-cropped faces
    run = _train(tmp_path / "run", data, method="dann", source=None, n_source=6,
                 target=str(target), register=False, model_kwargs=TINY,
                 train_overrides={**FAST, "method_kwargs": {"hidden": 8}})
    assert "domain_acc" in run.metrics and math.isfinite(run.metrics["loss"])
    import mlflow

    batch = mlflow.get_run(run.run_id).data.params["source_batch"]
    generated = next(data["settings"].batches_dir.glob("train-landmarks-*-n6"))
    assert BatchReader(generated).batch_id == batch
    assert BatchReader(generated).status.status == "accepted"  # validated before training


def test_refusals(data, tmp_path):
    with pytest.raises(ValueError, match="needs target"):
        _train(tmp_path / "a", data, method="daln")
    with pytest.raises(ValueError, match="source domain"):
        _train(tmp_path / "b", data, method="dann", target=data["real"], real_labeled=data["real"])
    with pytest.raises(ValueError, match="real labeled"):
        OutputLayout("dense500", 500).channels("head68")
    from models.predictor import LandmarkPredictor

    with pytest.raises(ValueError, match="channels"):
        LandmarkPredictor(torch.nn.Identity(), channels=(5, 5))
    with pytest.raises(ValueError, match="transfer_fit must be one of .*'lasso'"):
        _train(tmp_path / "c", data, real_labeled=data["real"], transfer_fit="lasso")
    two = tmp_path / "two"
    two.mkdir()
    for p in sorted((data["root"] / "real").iterdir())[:4]:  # 2 faces: .jpg + .pts each
        (two / p.name).write_bytes(p.read_bytes())
    with pytest.raises(ValueError, match=f"{two}: 2 labeled training faces.*at least 3"):
        _train(tmp_path / "d", data, real_labeled=str(two), real_val_fraction=0.0)
    assert not (tmp_path / "d" / "last.pt").exists()  # refused before any training


# --------------------------------------------------------------------------- data errors


def test_missing_or_malformed_data_is_a_data_format_error_naming_it(data, tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataFormatError, match="nope"):
        evaluate_landmarks_model(str(data["root"] / "none"), str(missing))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "image_0000.jpg").write_bytes((data["root"] / "real" / "image_0000.jpg").read_bytes())
    (bad / "image_0000.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(DataFormatError, match="image_0000.pts"):
        load_real_faces(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFormatError, match="empty"):
        load_real_faces(empty)
    with pytest.raises(DataFormatError, match="not_a_batch"):
        _train(tmp_path / "run", data, source=str(tmp_path / "not_a_batch"))


def test_quarantined_face_batch_is_refused(data, tmp_path):
    import shutil

    q = tmp_path / "q"
    shutil.copytree(data["batch"], q)
    write_status(q, "quarantined", failing=["something"])
    with pytest.raises(DataFormatError, match="quarantined"):
        _train(tmp_path / "run", data, source=str(q))
