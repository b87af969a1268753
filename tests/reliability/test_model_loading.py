"""Loading models never unpickles (audit D3, #98), and training reads the user's folders
and its checkpoint folder's records first (D14 #58 #71, D9 #116).

- A crafted MLflow model whose pickle would create a marker file, given to ``evaluate``
  as a ``file://`` folder or registered as the champion, is refused with one line naming
  the reference; the marker never appears.
- A model registered the way training registers it carries its checkpoint and loads from
  ``models:/``, ``runs:/`` and its logged-model URI with MLflow's pickle loading switched
  off, predicting exactly what the local checkpoint predicts (gaze, and landmarks with
  their label-transfer network); MLflow's own loader serves it without pickle too.
- A damaged target or real-labeled folder fails before any source batch is generated; a
  corrupt ``data.json`` or ``landmarks.json`` is one line naming it (fuzzed).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from models.checkpoint import save_checkpoint
from models.predictor import GazePredictor, OutputLayout, make_predictor
from models.registry import create_model, load_model
from realdata.errors import DataFormatError, UsageError
from realdata.landmarks import write_pts
from synth.targets import write_simulated_target
from synthloop.cli import main
from synthloop.landmarks.load import LAYOUT_FILE, TRANSFER_FILE, read_layout_record
from synthloop.runs import DATA_RECORD, TrainingRun, claim_output_dir
from synthloop.settings import Settings

SCALE = int(os.environ.get("SYNTHLOOP_FUZZ_SCALE", "1"))


@pytest.fixture(autouse=True)
def _mlflow_reset():
    yield
    import mlflow

    mlflow.set_tracking_uri("")
    mlflow.set_registry_uri("")


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    return write_simulated_target(tmp_path_factory.mktemp("t") / "target", 8, 0)


def _one_line_error(capsys, command: str) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert err and err[-1].startswith(f"synthloop {command}: error: "), err[-5:]
    assert "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Settings:
    """One MLflow store for the module: creating one costs seconds."""
    settings = Settings(home=tmp_path_factory.mktemp("registry-home"))
    settings.ensure_home()
    return settings


# --------------------------------------------------------------------------- crafted models


class _Payload:
    """Unpickling this creates ``marker``: what any code run by a crafted model could do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _crafted_model(folder: Path, marker: Path, *, pickled_checkpoint: bool) -> Path:
    """An MLflow pytorch model folder (pickle format) whose model.pth is the payload;
    optionally with an ``extra_files/best.pt`` that is a payload too."""
    (folder / "data").mkdir(parents=True)
    (folder / "MLmodel").write_text(
        "flavors:\n  pytorch:\n    model_data: data\n    pytorch_version: 2.13.0\n"
        "  python_function:\n    data: data\n    loader_module: mlflow.pytorch\n"
        "    pickle_module_name: mlflow.pytorch.pickle_module\nmlflow_version: 3.17.2\n")
    (folder / "data" / "pickle_module_info.txt").write_text("mlflow.pytorch.pickle_module")
    torch.save(_Payload(marker), folder / "data" / "model.pth")
    if pickled_checkpoint:
        (folder / "extra_files").mkdir()
        torch.save(_Payload(marker), folder / "extra_files" / "best.pt")
    # the payload is live: whoever unpickles it creates the marker
    torch.load(folder / "data" / "model.pth", weights_only=False)
    assert marker.exists()
    marker.unlink()
    return folder


def _register_as_champion(folder: Path, settings: Settings, name: str) -> None:
    from mlflow.tracking import MlflowClient

    from synthloop import tracking

    tracking.configure(settings.tracking_uri, "gaze", settings.artifact_root)
    client = MlflowClient()
    client.create_registered_model(name)
    version = client.create_model_version(name, str(folder)).version
    client.set_registered_model_alias(name, "champion", version)


@pytest.mark.parametrize("how,pickled_checkpoint", [("file", False), ("file", True),
                                                    ("champion", False)])
def test_evaluate_refuses_a_crafted_mlflow_model_and_runs_none_of_it(
        how, pickled_checkpoint, home, target, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "PWNED"
    folder = _crafted_model(tmp_path / "evil" / "model", marker,
                            pickled_checkpoint=pickled_checkpoint)
    if how == "champion":  # e.g. through the MLflow server `synthloop ui` runs, without auth
        _register_as_champion(folder, home, "crafted")
        monkeypatch.setenv("SYNTHLOOP_HOME", str(home.home))
        ref = "models:/crafted@champion"
    else:
        ref = folder.as_uri()
    assert main(["evaluate", "--model", ref, "--data", str(target), "--json"]) == 2
    line = _one_line_error(capsys, "evaluate")
    assert line.startswith(f"synthloop evaluate: error: {ref}: ")
    if pickled_checkpoint:
        assert "extra_files/best.pt: unreadable or corrupt checkpoint" in line
    else:
        assert "not a synthloop model" in line
    assert not marker.exists()


# --------------------------------------------------------------------------- our own models


def _register(settings: Settings, task: str, predictor, example, files) -> tuple[str, str, str]:
    """What training does after training: register and promote, in one run."""
    with TrainingRun(settings, task, "t", tags={}, params={}, curves_title="") as run:
        uri, version = run.register(predictor, example, files)
        run.promote(version, "score", 1.0, higher_is_better=False, comparable_on={})
    return run.run_id, uri, version


def test_a_registered_gaze_model_loads_from_its_checkpoint_without_pickle(
        home, target, tmp_path, monkeypatch, capsys):
    import mlflow

    from synthloop.gaze.evaluate import load_gaze_model
    from synthloop.runs import serving_files

    torch.manual_seed(0)
    out = tmp_path / "ckpt"
    # a one-stage net: torch.export's tracing time grows with the graph
    save_checkpoint(out / "best.pt", create_model("gaze_resnet_s", widths=(8,), depths=(1,),
                                                  feature_dim=16),
                    None, None, 3, {"model": "gaze_resnet_s", "task": "gaze"})
    local = load_model(out)
    x = torch.randint(0, 256, (5, 1, 36, 60), dtype=torch.uint8)
    run_id, uri, version = _register(home, "gaze", GazePredictor(load_model(out)), x[:1],
                                     serving_files(out))
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with torch.no_grad():
        want = local(x).pitchyaw
        for ref in ("models:/synthloop-gaze@champion", f"models:/synthloop-gaze/{version}", uri,
                    f"runs:/{run_id}/model"):
            assert torch.equal(load_gaze_model(ref)(x).pitchyaw, want), ref
    # MLflow's own loader (serving) needs no pickle either, and takes any batch size
    served = mlflow.pyfunc.load_model("models:/synthloop-gaze@champion").predict(x.numpy())
    assert np.allclose(served, want.numpy(), atol=1e-5)
    assert mlflow.MlflowClient().get_run(run_id).data.tags["serving_format"] == "pt2"

    monkeypatch.setenv("SYNTHLOOP_HOME", str(home.home))
    results = []
    for ref in (str(out), "models:/synthloop-gaze@champion"):
        assert main(["evaluate", "--model", ref, "--data", str(target), "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert results[0]["mean_angular_error_deg"] == results[1]["mean_angular_error_deg"]


def test_a_gaze_model_trained_with_one_side_mirrored_says_so_on_its_version(home, tmp_path):
    """The served model takes bare patches, so the side to mirror is written where a
    user of the registry reads: the version's description and its ``mirror_eye`` tag."""
    import mlflow

    from synthloop.gaze.evaluate import serving_predictor
    from synthloop.runs import serving_files

    predictors = {}
    for side in ("R", None):
        out = tmp_path / f"ckpt-{side}"
        config = {"model": "gaze_resnet_s", "task": "gaze",
                  **({"task_kwargs": {"mirror_eye": side}} if side else {})}
        save_checkpoint(out / "best.pt", create_model("gaze_resnet_s", widths=(8,), depths=(1,),
                                                      feature_dim=16), None, None, 3, config)
        predictors[side] = (serving_predictor(out), serving_files(out))
        assert predictors[side][0].mirror_eye == side
    assert predictors[None][0].serving_notes() == {}  # nothing to add to a plain version
    predictor, files = predictors["R"]
    x = torch.randint(0, 256, (2, 1, 36, 60), dtype=torch.uint8)
    version = _register(home, "gaze", predictor, x, files)[2]
    mirrored = mlflow.MlflowClient().get_model_version("synthloop-gaze", version)
    assert mirrored.tags["mirror_eye"] == "R"
    assert "Mirror R eye patches left to right before predicting" in mirrored.description
    assert "negate the predicted yaw" in mirrored.description
    with pytest.raises(ValueError, match="mirror_eye must be None, 'L' or 'R'"):
        GazePredictor(predictor.net, mirror_eye="left")


def test_a_version_registered_before_models_carried_a_checkpoint_loads_its_runs(
        home, tmp_path, monkeypatch):
    """Registered as training did before (a pickled model, the checkpoint logged to the
    run only): loaded from the run's ``checkpoint/``, still without unpickling."""
    import mlflow.pytorch

    from synthloop.gaze.evaluate import load_gaze_model

    out = tmp_path / "ckpt"
    save_checkpoint(out / "best.pt", create_model("gaze_resnet_s", widths=(8,), depths=(1,),
                                                  feature_dim=16),
                    None, None, 3, {"model": "gaze_resnet_s", "task": "gaze"})
    with TrainingRun(home, "gaze", "legacy", tags={}, params={}, curves_title="") as run:
        run.log_checkpoints(out)
        info = mlflow.pytorch.log_model(GazePredictor(load_model(out)), name="model",
                                        serialization_format="pickle", pip_requirements=["torch"],
                                        registered_model_name="legacy-gaze")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    x = torch.randint(0, 256, (2, 1, 36, 60), dtype=torch.uint8)
    with torch.no_grad():
        got = load_gaze_model(f"models:/legacy-gaze/{info.registered_model_version}")(x)
        assert torch.equal(got.pitchyaw, load_model(out)(x).pitchyaw)


def test_a_registered_landmark_model_carries_its_label_transfer(home, tmp_path, monkeypatch):
    from synthloop.landmarks.load import load_landmark_predictor
    from synthloop.runs import serving_files

    torch.manual_seed(0)
    out = tmp_path / "ckpt"
    net = create_model("hourglass_s", channels=8, stacks=1, depth=1, num_points=500, input_size=32)
    save_checkpoint(out / "best.pt", net, None, None, 2, {"model": "hourglass_s",
                                                          "task": "landmarks"})
    transfer = create_model("label_transfer", num_dense=500, hidden=8, layers=1)
    with torch.no_grad():
        transfer.linear.weight.normal_(0, 0.01)  # not the baseline: the route must matter
    save_checkpoint(out / TRANSFER_FILE, transfer, None, None, 5,
                    {"model": "label_transfer", "task": "label_transfer"})
    layout = OutputLayout("dense500", 500)
    (out / LAYOUT_FILE).write_text(json.dumps({"layout": layout.to_dict(), "route": "dense68",
                                               "transfer": TRANSFER_FILE}))
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    _, _, version = _register(home, "landmarks", make_predictor(load_model(out), layout, "dense68"),
                              x[:2], serving_files(out, LAYOUT_FILE, TRANSFER_FILE))
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    ref = f"models:/synthloop-landmarks/{version}"
    with torch.no_grad():
        for route in (None, "transfer", "dense68"):
            want = load_landmark_predictor(str(out), route)(x)
            assert torch.equal(load_landmark_predictor(ref, route)(x), want), route
        assert not torch.equal(load_landmark_predictor(ref, "transfer")(x)[:, :68],
                               load_landmark_predictor(ref)(x))
    with pytest.raises(UsageError, match="head68"):  # a route it was not trained for
        load_landmark_predictor(ref, "head68")


# --------------------------------------------------------------------------- train: read first


def _corrupt_png(folder: Path) -> Path:
    png = sorted((folder / "images").glob("*.png"))[3]
    png.write_bytes(png.read_bytes()[:40] + b"\0" * 64)
    return png


def _face_folder(folder: Path, n: int = 3) -> Path:
    """Real-labeled faces: noise photos with 68 points on an ellipse (enough to read)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    pts = np.stack([100 + 40 * np.cos(t), 85 + 50 * np.sin(t)], 1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (170, 200, 3), np.uint8)).save(folder / f"f{i}.jpg")
        write_pts(folder / f"f{i}.pts", pts)
    return folder


def _bad_input(kind: str, target: Path, tmp_path: Path) -> tuple[list[str], str]:
    """``(train arguments, the file the error must name)``."""
    if kind in ("gaze target", "gaze real-labeled"):
        bad = tmp_path / "bad"
        shutil.copytree(target, bad)
        png = _corrupt_png(bad)
        args = ["--method", "dann", "--target", str(bad if kind == "gaze target" else target)]
        if kind == "gaze real-labeled":
            args += ["--real-labeled", str(bad)]
        return args + ["--batch-size", "4"], png.name
    faces = _face_folder(tmp_path / "faces")
    (faces / "f1.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 50)
    if kind == "landmarks real-labeled":
        return ["--task", "landmarks", "--method", "source_only", "--real-labeled", str(faces)], "f1.jpg"
    return ["--task", "landmarks", "--method", "dann", "--target", str(faces)], "f1.jpg"


@pytest.mark.parametrize("kind", ["gaze target", "gaze real-labeled", "landmarks real-labeled",
                                  "landmarks target"])
def test_train_reads_the_users_folders_before_generating_a_source_batch(
        kind, target, tmp_path, capsys, _isolated_home):
    args, bad_file = _bad_input(kind, target, tmp_path)
    out = tmp_path / "ckpt"
    code = main(["train", *args, "--steps", "1", "--seed", "0", "--n-source", "8",
                 "--out", str(out), "--no-register"])
    assert code == 2
    assert bad_file in _one_line_error(capsys, "train")
    batches = _isolated_home / "batches"
    assert not batches.exists() or not any(batches.iterdir())
    assert not out.exists()


@pytest.mark.parametrize("record", [b'{"source_batch": "b', b"[1, 2]", b"\xff\xfe{}"])
def test_a_corrupt_data_record_fails_first_in_one_line_naming_it(
        record, target, tmp_path, capsys, _isolated_home):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / DATA_RECORD).write_bytes(record)
    code = main(["train", "--method", "source_only", "--target", str(target), "--steps", "1",
                 "--seed", "0", "--n-source", "8", "--out", str(out), "--no-register"])
    assert code == 2
    assert f"{out / DATA_RECORD}: " in _one_line_error(capsys, "train")
    batches = _isolated_home / "batches"
    assert not batches.exists() or not any(batches.iterdir())
    assert (out / DATA_RECORD).read_bytes() == record


# --------------------------------------------------------------------------- fuzz the records


def _fuzz(n: int) -> settings:
    return settings(derandomize=True, max_examples=n * SCALE, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


@st.composite
def mutated(draw, valid: bytes, keys: list[str]) -> bytes:
    """A valid record with bytes cut, replaced or inserted, or one of its values swapped
    for any JSON value (a type confusion the bytes rarely reach)."""
    kind = draw(st.sampled_from(["cut", "replace", "insert", "value", "whole"]))
    if kind == "value":
        rec = json.loads(valid)
        rec[draw(st.sampled_from(keys))] = draw(JSON)
        return json.dumps(rec).encode()
    if kind == "whole":
        return json.dumps(draw(JSON)).encode()
    i = draw(st.integers(0, len(valid)))
    if kind == "cut":
        return valid[:i]
    junk = draw(st.binary(min_size=1, max_size=6) | st.sampled_from(
        [b'"', b"}", b"{", b",", b"\xff", b"NaN", b"null", b"[]", b"../", b"\\u0000"]))
    return valid[:i] + junk + valid[i + (len(junk) if kind == "replace" else 0):]


def _check_user_error(e: Exception, path: Path) -> None:
    assert isinstance(e, DataFormatError | UsageError), repr(e)
    msg = str(e)
    assert "\n" not in msg and (isinstance(e, UsageError) or str(path) in msg), msg


DATA = {"source_batch": "batch-1", "target": "/t", "target_n": 10, "target_paths": "abc"}
VALID_DATA = json.dumps(DATA).encode()


@_fuzz(150)
@given(content=mutated(VALID_DATA, list(DATA)))
def test_fuzz_data_record(content, tmp_path):
    rec = tmp_path / DATA_RECORD
    rec.write_bytes(content)
    try:
        claim_output_dir(tmp_path, DATA)
    except Exception as e:  # noqa: BLE001 (sorted by _check_user_error)
        _check_user_error(e, rec)
    assert rec.read_bytes() == content  # never rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == [DATA_RECORD]


LAYOUT = {"layout": {"point_set": "dense500", "num_dense": 500, "real_head": True},
          "route": "transfer", "transfer": TRANSFER_FILE, "crop_size": 128}
VALID_LAYOUT = json.dumps(LAYOUT).encode()


@_fuzz(150)
@given(content=mutated(VALID_LAYOUT, list(LAYOUT)))
def test_fuzz_layout_record(content, tmp_path):
    from models.predictor import ROUTES

    rec = tmp_path / LAYOUT_FILE
    rec.write_bytes(content)
    try:
        got = read_layout_record(tmp_path)
    except Exception as e:  # noqa: BLE001 (sorted by _check_user_error)
        _check_user_error(e, rec)
    else:  # what loading goes on to use is usable
        assert got is not None and got["route"] in ROUTES
        OutputLayout.from_dict(got["layout"])
        name = got.get("transfer")
        assert name is None or (tmp_path / name).parent == tmp_path
    assert rec.read_bytes() == content
