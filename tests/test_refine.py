"""``synthloop refine``: a refined batch with lineage, validated with a label check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from synth.shards import BatchReader
from tests.cli_inprocess import run_cli as run

# slow: each test refines a batch end to end (a refiner trained, a probe, GX, MLflow)
pytestmark = [pytest.mark.slow, pytest.mark.gx]


TINY = ["--steps", "6", "--pretrain-steps", "10", "--probe-steps", "60", "--width", "8",
        "--blocks", "1", "--batch-size", "16"]


@pytest.fixture(scope="module")
def refined(tmp_path_factory):
    """A 300-eye parent in 3 shards, 200 simulated 'real' eyes, and the parent refined
    toward them (in this process), all in one project home."""
    root = tmp_path_factory.mktemp("refine")
    env = {"SYNTHLOOP_HOME": str(root / "home")}
    parent, real, child = root / "parent", root / "real", root / "child"
    for args in (("generate", "--task", "gaze", "-n", "300", "--seed", "1", "--shard-size", "128",
                  "--out", str(parent)),
                 ("simulate-target", "--out", str(real), "-n", "200", "--unlabeled")):
        r = run(*args, env=env)
        assert r.returncode == 0, r.stderr
    r = run("refine", str(parent), "--real", str(real), "--out", str(child), "--json", *TINY, env=env)
    return {"root": root, "env": env, "parent": parent, "real": real, "child": child, "run": r}


def test_refined_batch_keeps_labels_and_names_its_parent(refined):
    r = refined["run"]
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    parent, child = BatchReader(refined["parent"]), BatchReader(refined["child"])
    assert rec["status"] == "accepted" and rec["parent"] == parent.batch_id
    assert child.batch_id == rec["batch_id"] != parent.batch_id
    assert child.manifest["parent"]["batch_id"] == parent.batch_id
    assert child.manifest["refiner"]["mlflow_run_id"] == rec["mlflow_run"]
    assert {"refiner/refiner.pt", "refiner/label_probe.pt"} <= set(child.extra_files)
    assert child.metadata.equals(parent.metadata)  # labels and factors carried unchanged
    assert (refined["child"] / "metadata.parquet").read_bytes() == (refined["parent"] / "metadata.parquet").read_bytes()
    assert child.distribution.id == parent.distribution.id and child.n == parent.n
    assert child.status.status == "accepted"
    shift = json.loads((refined["child"] / "validation" / "result.json").read_text())
    assert shift["statistics"]["label_preservation"]["column"] == "label_shift_deg"
    assert rec["label_shift"]["mean"] == pytest.approx(
        shift["statistics"]["label_preservation"]["mean"])
    # six refiner steps barely move anything, and the command says so
    changed = np.abs(child.images().astype(int) - parent.images()).mean()
    assert rec["mean_abs_change"] == pytest.approx(changed, abs=1e-3)
    assert (changed < 0.5) == ("left the images nearly unchanged" in r.stderr)


def test_catalog_and_mlflow_record_the_refinement(refined, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_HOME", refined["env"]["SYNTHLOOP_HOME"])
    from synthloop.lineage import open_catalog
    from synthloop.settings import get_settings

    rec = json.loads(refined["run"].stdout.strip().splitlines()[-1])
    row = open_catalog().get_batch(rec["batch_id"])
    assert row["parent_id"] == rec["parent"] and row["refiner"] == rec["mlflow_run"]
    assert open_catalog().get_batch(rec["parent"])["parent_id"] is None

    import mlflow

    from synthloop import tracking

    settings = get_settings()
    tracking.configure(settings.tracking_uri, "refine", settings.artifact_root)  # local artifacts
    client = mlflow.MlflowClient(settings.tracking_uri)
    run = client.get_run(rec["mlflow_run"])
    assert run.data.tags["refined_batch"] == rec["batch_id"]
    assert run.data.tags["parent_batch"] == rec["parent"]
    assert {"loss_discriminator", "label_shift_mean", "seconds_refine",
            "mean_abs_change"} <= set(run.data.metrics)
    assert run.data.tags["refined_batch_status"] == "accepted"
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"refiner", "samples", "validation.json"} <= arts


def test_a_refiner_trained_to_keep_a_gaze_probe_still_logs_that_term(refined, tmp_path,
                                                                     monkeypatch):
    out = tmp_path / "consistent"
    r = run("refine", str(refined["parent"]), "--real", str(refined["real"]), "--out", str(out),
            "--consistency", "0.3", "--json", *TINY, env=refined["env"])
    assert r.returncode == 0, r.stderr
    assert "consistency" in r.stderr  # the progress lines name the term
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    monkeypatch.setenv("SYNTHLOOP_HOME", refined["env"]["SYNTHLOOP_HOME"])
    import mlflow

    from synthloop.settings import get_settings

    run_ = mlflow.MlflowClient(get_settings().tracking_uri).get_run(rec["mlflow_run"])
    assert run_.data.params["consistency"] == "0.3"
    assert "loss_consistency" in run_.data.metrics and "seconds_consistency_probe" in run_.data.metrics
    # the lineage records the refiner's objective
    assert BatchReader(out).manifest["refiner"]["config"]["consistency"] == 0.3


@pytest.mark.slow  # a second refine run in a subprocess, on a Dask cluster
def test_a_reused_refiner_refines_the_same_way_on_dask_workers(refined, tmp_path):
    child = refined["child"]
    again = tmp_path / "again"
    r = run("refine", str(refined["parent"]), "--real", str(refined["real"]), "--out", str(again),
            "--refiner", str(child / "refiner" / "refiner.pt"), "--probe-steps", "60",
            "--workers", "2", env=refined["env"])
    assert r.returncode == 0, r.stderr
    assert "reusing refiner" in r.stderr and "2 worker processes" in r.stderr
    shards = BatchReader(child).manifest["shards"]
    assert len(shards) == 3
    # each shard refined by whichever worker took it: the same bytes as in one process
    assert [s["sha256"] for s in BatchReader(again).manifest["shards"]] == \
        [s["sha256"] for s in shards]
    assert BatchReader(again).metadata.equals(BatchReader(child).metadata)


def test_the_mean_patch_method_moves_every_eye_by_the_real_mean_minus_the_batch_s(
        refined, tmp_path, monkeypatch):
    from models.mean_patch import MeanPatchRefiner
    from models.simgan import load_refiner
    from realdata.eyes import read_eye_folder

    out = tmp_path / "mean-patch"
    r = run("refine", str(refined["parent"]), "--real", str(refined["real"]), "--out", str(out),
            "--method", "mean-patch", "--strength", "0.5", "--probe-steps", "60", "--json",
            env=refined["env"])
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == (0 if rec["status"] == "accepted" else 1), r.stderr
    assert "mean patch fitted" in r.stderr and "refiner step" not in r.stderr  # nothing trained
    parent, child = BatchReader(refined["parent"]), BatchReader(out)
    assert child.manifest["refiner"]["config"] == {"method": "mean-patch", "strength": 0.5}
    net = load_refiner(out / "refiner" / "refiner.pt", channels=1)
    assert isinstance(net, MeanPatchRefiner) and net.cfg.strength == 0.5
    real = read_eye_folder(refined["real"]).images.astype(float)
    half_way = parent.images().astype(float) + 0.5 * (real.mean(0) - parent.images().mean(0))
    # every image moved by the same patch: what clipping to 0..255 and rounding leave of it
    assert np.abs(child.images() - np.clip(half_way, 0, 255)).max() <= 0.5 + 1e-6
    assert child.metadata.equals(parent.metadata)
    monkeypatch.setenv("SYNTHLOOP_HOME", refined["env"]["SYNTHLOOP_HOME"])
    import mlflow

    from synthloop.settings import get_settings

    run_ = mlflow.MlflowClient(get_settings().tracking_uri).get_run(rec["mlflow_run"])
    assert run_.data.params["method"] == "mean-patch" and run_.data.params["strength"] == "0.5"
    assert "seconds_fit_refiner" in run_.data.metrics
    # a patch is checked by whether the labels can still be learned, not by a frozen probe
    from expectations.refined import LEARNABILITY_FILE

    assert "label learnability: two gaze_resnet_s probes" in r.stderr
    assert LEARNABILITY_FILE in child.extra_files
    assert child.manifest["refiner"]["label_learnability"] == LEARNABILITY_FILE
    stats = json.loads((out / "validation" / "result.json").read_text())["statistics"]
    assert stats["label_preservation"]["column"] == rec["label_shift"]["column"] == "relative_error_excess"
    assert stats["frozen_probe_shift"]["column"] == "label_shift_deg"  # reported, not a criterion
    assert "seconds_label_learnability" in run_.data.metrics


def _real_with_head_poses(real: Path, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """A copy of the simulated real folder with a meta.csv of head poses (-15, 0, +15
    deg) and eye sides; returns both, in the manifest's order."""
    import csv

    shutil.copytree(real, out)
    with (real / "manifest.csv").open(newline="") as f:
        images = [row["image"] for row in csv.DictReader(f)]
    rng = np.random.default_rng(3)
    poses, sides = rng.choice([-15.0, 0.0, 15.0], len(images)), rng.choice(["L", "R"], len(images))
    with (out / "meta.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "head_pose_P_deg", "eye"])
        w.writerows(zip(images, poses, sides, strict=True))
    return poses, sides


def test_the_pose_mean_patch_moves_each_eye_by_its_head_pose_s_difference(refined, tmp_path):
    from models.pose_mean_patch import fit_pose_mean_patch
    from models.pose_mean_patch_refiner import PoseMeanPatchRefiner
    from models.simgan import load_refiner
    from realdata.eyes import read_eye_folder

    real = tmp_path / "real-posed"
    poses, sides = _real_with_head_poses(refined["real"], real)
    out = tmp_path / "pose-patch"
    r = run("refine", str(refined["parent"]), "--real", str(real), "--out", str(out),
            "--method", "pose-mean-patch", "--strength", "1", "--mirror-eye", "L",
            "--probe-steps", "60", "--json", env=refined["env"])
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == (0 if rec["status"] == "accepted" else 1), r.stderr
    assert "pose mean patch fitted: real head poses [-15.0, 0.0, 15.0]" in r.stderr
    parent, child = BatchReader(refined["parent"]), BatchReader(out)
    assert child.manifest["refiner"]["config"] == {
        "method": "pose-mean-patch", "strength": 1.0, "pose_column": "head_pose_P_deg"}
    assert isinstance(load_refiner(out / "refiner" / "refiner.pt", 1), PoseMeanPatchRefiner)
    # what the fit on the same eyes gives: the left eyes mirrored, their head pose negated
    left = sides == "L"
    eyes = read_eye_folder(real).images.copy()
    eyes[left] = eyes[left][:, :, ::-1]
    yaw = np.degrees(parent.metadata["head_yaw"].to_numpy())
    expected = fit_pose_mean_patch(parent.images(), yaw, eyes, np.where(left, -poses, poses),
                                   1.0).apply(parent.images(), yaw)
    assert np.abs(child.images().astype(int) - expected).max() <= 1
    assert child.metadata.equals(parent.metadata)
    # reused (the request's method is not the refiner's): the same bytes, recorded as it is
    again = tmp_path / "again"
    r = run("refine", str(refined["parent"]), "--real", str(real), "--out", str(again),
            "--refiner", str(out / "refiner" / "refiner.pt"), "--probe-steps", "60",
            env=refined["env"])
    assert r.returncode in (0, 1), r.stderr
    reused = BatchReader(again)
    assert [s["sha256"] for s in reused.manifest["shards"]] == \
        [s["sha256"] for s in child.manifest["shards"]]
    config = reused.manifest["refiner"]["config"]
    assert config["reused"] == "pose_mean_patch_refiner" and config["strength"] == 1.0
    assert config["poses_deg"] == [-15.0, 0.0, 15.0]


def test_the_pose_mean_patch_refuses_real_eyes_without_the_pose_column(refined, tmp_path):
    r = run("refine", str(refined["parent"]), "--real", str(refined["real"]), "--out",
            str(tmp_path / "o"), "--method", "pose-mean-patch", env=refined["env"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "meta.csv" in r.stderr and "'head_pose_P_deg'" in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()
    # a pose with too few eyes for its mean: refused naming the pose, nothing written
    real = tmp_path / "rare"
    _real_with_head_poses(refined["real"], real)
    rows = (real / "meta.csv").read_text().splitlines()
    rows[1:] = [",".join([r.split(",")[0], "40" if i < 3 else "0", "R"])
                for i, r in enumerate(rows[1:])]
    (real / "meta.csv").write_text("\n".join(rows) + "\n")
    r = run("refine", str(refined["parent"]), "--real", str(real), "--out", str(tmp_path / "o"),
            "--method", "pose-mean-patch", env=refined["env"])
    assert r.returncode == 2 and "at head pose 40 deg" in r.stderr and str(real) in r.stderr
    assert not (tmp_path / "o").exists()


def test_bad_inputs_fail_before_anything_is_written(refined, tmp_path):
    parent, env = refined["parent"], refined["env"]
    wrong = tmp_path / "not-eyes"
    wrong.mkdir()
    (wrong / "notes.txt").write_text("no images here")
    r = run("refine", str(parent), "--real", str(wrong), "--out", str(tmp_path / "o1"), *TINY, env=env)
    assert r.returncode == 2 and str(wrong) in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o1").exists()

    probe = refined["child"] / "refiner" / "label_probe.pt"  # a gaze model, not a refiner
    r = run("refine", str(parent), "--real", str(refined["real"]), "--out", str(tmp_path / "o2"),
            "--refiner", str(probe), env=env)
    assert r.returncode == 2 and "not a refiner" in r.stderr and str(probe) in r.stderr
    assert not (tmp_path / "o2").exists()

    r = run("refine", str(parent), "--real", str(refined["real"]), "--out", str(refined["child"]),
            *TINY, env=env)
    assert r.returncode == 2 and "already exists" in r.stderr

    for option, value, says in (("--batch-size", "1", "must be >= 2"),  # half of it is history
                                ("--self-reg", "-1", "must be >= 0"),
                                ("--consistency", "-0.5", "must be >= 0"),
                                ("--pretrain-steps", "x", "'x' is not a whole number"),
                                ("--ema", "1", "between 0 and 1")):
        r = run("refine", str(parent), "--real", str(refined["real"]), "--out",
                str(tmp_path / "o3"), option, value, env=env)
        assert r.returncode == 2 and option in r.stderr and says in r.stderr, r.stderr
    assert not (tmp_path / "o3").exists()


def _child_with(refined, images: np.ndarray, out: Path, learnability: Path | None = None) -> Path:
    """A refined batch of ``images`` with the fixture child's refiner, probe, lineage and
    generator settings, written as ``synthloop refine`` writes one (with a learnability
    table, as a patch's batch carries one, where given)."""
    from synth.refined_writer import RefinedBatchWriter
    from synthloop.refine import LEARNABILITY_FILE, PROBE_FILE, REFINER_FILE

    child, parent = BatchReader(refined["child"]), BatchReader(refined["parent"])
    files = {f: child.path / f for f in (REFINER_FILE, PROBE_FILE)}
    if learnability is not None:
        files[LEARNABILITY_FILE] = learnability
    lineage = {k: child.manifest[k] for k in ("parent", "refiner")}
    with RefinedBatchWriter(out, parent=parent, files=files, generator=child.manifest["generator"],
                            lineage=lineage) as w:
        w.add(images, parent.metadata.drop(columns=["sample"]))
    return out


def test_refined_images_that_move_the_labels_are_quarantined(refined, tmp_path):
    from expectations.validate import validate_batch

    parent = BatchReader(refined["parent"])
    swapped = parent.images()[np.random.default_rng(0).permutation(parent.n)]  # other eyes
    report = validate_batch(_child_with(refined, swapped, tmp_path / "moved"), docs=False)
    assert not report.success
    assert any(f.startswith("label preservation: expect_column_mean_to_be_between(label_shift_deg)")
               for f in report.failing), report.failing
    assert report.statistics["label_preservation"]["mean"] > 2.0


def test_a_patched_batch_that_teaches_its_labels_worse_is_quarantined(refined, tmp_path):
    from expectations.validate import MAX_MEAN_RELATIVE_ERROR_EXCESS, validate_batch

    parent = BatchReader(refined["parent"])
    table = tmp_path / "learnability.csv"
    held = np.arange(9, parent.n, 10)
    for excess, ok in ((0.05, True), (MAX_MEAN_RELATIVE_ERROR_EXCESS + 0.1, False)):
        table.write_text("sample,parent_error_deg,refined_error_deg\n" + "".join(
            f"{i},8.0,{8.0 * (1 + excess)}\n" for i in held))
        report = validate_batch(_child_with(refined, parent.images(), tmp_path / f"c{excess}",
                                            learnability=table), docs=False)
        assert report.success == ok, report.failing
        assert report.statistics["label_preservation"]["column"] == "relative_error_excess"
        assert report.statistics["label_preservation"]["mean"] == pytest.approx(excess)
    assert any(f.startswith("label preservation: expect_column_mean_to_be_between("
                            "relative_error_excess)") for f in report.failing), report.failing


def test_a_refined_batch_whose_parent_is_gone_is_not_passed(refined, tmp_path):
    from expectations.validate import validate_batch

    parent_copy = tmp_path / "parent"
    shutil.copytree(refined["parent"], parent_copy)
    child = BatchReader(refined["child"])
    out = _child_with(refined, child.images(), tmp_path / "orphan")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["parent"]["path"] = str(parent_copy)
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert validate_batch(out, docs=False).success
    shutil.rmtree(parent_copy)
    report = validate_batch(out, docs=False)
    assert not report.success
    assert any(f.startswith("label preservation: parent batch") and str(parent_copy) in f
               for f in report.failing), report.failing


def test_the_flow_form_puts_the_refined_batch_beside_its_parent():
    from flows.refine_batch import RefineParams

    assert str(RefineParams(batch="/data/b1", real="/r", seed=3).output()) == "/data/b1-refined-s3"
    assert RefineParams(batch="/data/b1", real="/r", out="/x").output() == Path("/x")


@pytest.mark.slow  # a face refiner, the face validation frame and an MLflow run
def test_a_refined_face_batch_carries_its_landmarks_and_is_checked_without_a_model(
        face_data, tmp_path, one_thread):
    from synthloop.refine import RefineRequest, validate_refined, write_refined_batch

    req = RefineRequest(batch=face_data["batch"], real=face_data["real"], out=str(tmp_path / "f"),
                        steps=2, width=4, blocks=1, batch_size=4, pretrain_discriminator=2)
    batch = write_refined_batch(face_data["settings"], req, log=lambda *_: None)
    verdict = validate_refined(batch)
    parent, child = BatchReader(face_data["batch"]), BatchReader(batch.path)
    assert verdict.status == "accepted", verdict.failing
    assert verdict.label_shift["column"] == "landmark_structure_ncc"
    assert verdict.label_shift["mean"] > 0.9  # two refiner steps barely move anything
    assert "refiner/label_probe.pt" not in child.extra_files
    for rel in parent.extra_files:  # the landmark arrays, byte for byte
        assert (child.path / rel).read_bytes() == (parent.path / rel).read_bytes()

    from dataclasses import replace

    from synthloop.errors import UsageError

    with pytest.raises(UsageError, match="no label probe.*--consistency"):
        write_refined_batch(face_data["settings"], replace(req, out=str(tmp_path / "g"),
                                                           consistency=1.0), log=lambda *_: None)
    assert not (tmp_path / "g").exists()


@pytest.mark.slow  # face crops, the face validation frame and an MLflow run
def test_the_landmark_patch_moves_faces_in_their_own_coordinates_and_needs_a_landmarker(
        face_data, tmp_path, one_thread, monkeypatch):
    from realdata.real_faces import load_real_faces
    from synthloop.errors import UsageError
    from synthloop.landmarks import refining
    from synthloop.refine import RefineRequest, validate_refined, write_refined_batch

    common = dict(batch=face_data["batch"], real=face_data["real"], method="landmark-patch")
    with pytest.raises(UsageError, match="needs --landmarker"):
        write_refined_batch(face_data["settings"], RefineRequest(**common, out=str(tmp_path / "x")),
                            log=lambda *_: None)
    assert not (tmp_path / "x").exists()
    # the landmarker's answer stood in by the real faces' own points: what is under test
    # here is the batch transform (predicted_points has its own test)
    truth = load_real_faces(face_data["real"], 128).points
    seen = []
    monkeypatch.setattr(refining, "predicted_points",
                        lambda images, model: seen.append((len(images), model)) or truth)
    req = RefineRequest(**common, out=str(tmp_path / "f"), landmarker="some/run")
    batch = write_refined_batch(face_data["settings"], req, log=lambda *_: None)
    assert seen == [(6, "some/run")]
    verdict = validate_refined(batch)
    parent, child = BatchReader(face_data["batch"]), BatchReader(batch.path)
    assert verdict.status == "accepted", verdict.failing
    assert batch.mean_change > 0.5
    assert child.manifest["refiner"]["config"] == {"method": "landmark-patch", "strength": 0.5,
                                                   "landmarker": "some/run"}
    before, after = parent.images().astype(int), child.images().astype(int)
    for rel in parent.extra_files:  # the landmark arrays, byte for byte
        assert (child.path / rel).read_bytes() == (parent.path / rel).read_bytes()
    from synth.generate_faces import read_face_labels

    labels = read_face_labels(parent.path, verify=False)
    corner = np.abs(after - before)[:, :6, :6].max()  # far outside every face's points
    assert corner == 0
    moved = np.abs(after - before).sum(-1) > 0
    for i in range(parent.n):  # a face is only moved inside the box of its 68 points
        x0, y0 = np.floor(labels["points68"][i].min(0)).astype(int)
        x1, y1 = np.ceil(labels["points68"][i].max(0)).astype(int)
        outside = moved[i].copy()
        outside[max(y0 - 3, 0):y1 + 4, max(x0 - 3, 0):x1 + 4] = False
        assert not outside.any()


@pytest.mark.slow  # face crops, the face validation frame and an MLflow run
def test_the_real_context_sets_faces_into_the_photographs_and_keeps_the_labels(
        face_data, tmp_path, one_thread, monkeypatch):
    from realdata.real_faces import load_real_faces
    from synth.generate_faces import read_face_labels
    from synthloop.landmarks import refining
    from synthloop.refine import RefineRequest, validate_refined, write_refined_batch

    # the landmarker's answer stood in by the real faces' own points, as above
    truth = load_real_faces(face_data["real"], 128).points
    monkeypatch.setattr(refining, "predicted_points", lambda images, model: truth)
    req = RefineRequest(batch=face_data["batch"], real=face_data["real"], method="real-context",
                        landmarker="some/run", out=str(tmp_path / "c"))
    batch = write_refined_batch(face_data["settings"], req, log=lambda *_: None)
    verdict = validate_refined(batch)
    assert verdict.status == "accepted", verdict.failing
    parent, child = BatchReader(face_data["batch"]), BatchReader(batch.path)
    # the shading is recorded even when off, so the lineage says what was (not) done
    assert child.manifest["refiner"]["config"] == {"method": "real-context",
                                                   "landmarker": "some/run", "shading": 0.0}
    for rel in parent.extra_files:  # the landmark arrays, byte for byte
        assert (child.path / rel).read_bytes() == (parent.path / rel).read_bytes()
    labels = read_face_labels(parent.path, verify=False)
    before, after = parent.images().astype(int), child.images().astype(int)
    set_in = 0
    for i in range(parent.n):
        x0, y0 = np.floor(labels["points68"][i].min(0)).astype(int)
        x1, y1 = np.ceil(labels["points68"][i].max(0)).astype(int)
        around = np.ones(before.shape[1:3], bool)  # beyond the face's box and the feather
        around[max(y0 - 10, 0):y1 + 11, max(x0 - 10, 0):x1 + 11] = False
        if np.abs(after[i] - before[i])[around].mean() > 5:  # another backdrop: set in
            set_in += 1
            # inside, the face's own pixels, moved by one gain and offset per channel
            inner = slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4), slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4)
            for ch in range(3):
                a, b = before[i][inner][..., ch].ravel(), after[i][inner][..., ch].ravel()
                assert np.corrcoef(a, b)[0, 1] > 0.95
        else:
            assert np.array_equal(after[i], before[i])  # no photograph fits: left as it is
    assert set_in >= 2  # six photographs of random poses fit few of twelve faces; LFPW's ~90%
