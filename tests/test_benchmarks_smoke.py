"""The benchmark commands keep working (tiny budgets; results go to a temporary folder)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# slow: each runs a benchmark in a subprocess (tens of seconds to a minute)
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _needs_lfpw() -> None:
    if not (REPO.parent / "shared" / "data" / "real" / "lfpw-train").is_dir():
        pytest.skip("needs ../shared (LFPW)")


def _call(module, *args, tmp_path, **env_vars) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYNTHLOOP_BENCH_DIR": str(tmp_path), **env_vars}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _run(module, *args, tmp_path, **env_vars):
    r = _call(module, *args, tmp_path=tmp_path, **env_vars)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def _add_meta_column(real: Path, name: str, value_of_row) -> None:
    meta = (real / "meta.csv").read_text().splitlines()
    (real / "meta.csv").write_text("\n".join([f"{meta[0]},{name}"] + [
        f"{row},{value_of_row(i)}" for i, row in enumerate(meta[1:])]) + "\n")


def test_eye_generation_benchmark_prints_a_table_and_writes_json(tmp_path):
    out = _run("benchmarks.bench_eye_generation", "--quick", "--no-compile", tmp_path=tmp_path)
    assert "img_s_median" in out and "best one-core median" in out
    rows = json.loads((tmp_path / "eye_generation_quick.json").read_text())["rows"]
    assert {r["threads"] for r in rows if r["config"] == "renderer"} >= {1}
    assert all(r["img_s_median"] > 0 for r in rows)


def test_generate_e2e_benchmark(tmp_path):
    out = _run("benchmarks.bench_generate_e2e", "--quick", tmp_path=tmp_path)
    assert "Dask fan-out per-core efficiency" in out
    result = json.loads((tmp_path / "generate_e2e_quick.json").read_text())
    assert {r["config"] for r in result["rows"]} >= {"eyes, Dask 2 workers (--workers 2)",
                                                     "faces, Dask 2 workers (--workers 2)"}
    assert all(r["img_s_median"] > 0 for r in result["rows"])
    assert result["fanout_efficiency"] > 0 and result["face_fanout_efficiency"] > 0
    # which face model a face row timed (the built-in head renders ~2x faster than ICT)
    assert all((r["face_model"] is not None) == r["config"].startswith("faces") for r in result["rows"])


def test_train_throughput_benchmark(tmp_path):
    out = _run("benchmarks.bench_train_throughput", "--quick", tmp_path=tmp_path)
    assert "ms_per_step" in out
    rows = json.loads((tmp_path / "train_throughput_quick.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"source_only", "dann", "daln"}


def test_real_gaze_benchmark_scores_held_out_people(tmp_path):
    from tests.test_loop_real import _eyes

    real = _eyes(tmp_path / "real", n=48, subjects=6)
    out = _run("benchmarks.bench_real_gaze", "--real", str(real), "--quick", "--arms", "constant",
               "source_only", "iwdan", "real_1", "syn+real_all", "dann+real_1",
               "--real-share", "0.25", tmp_path=tmp_path)
    assert "mean_deg" in out
    res = json.loads((tmp_path / "real_gaze_quick.json").read_text())
    assert res["real_share"] == 0.25
    assert res["split"] == {"analysis_subjects": 3, "holdout_subjects": 3, "n_analysis": 24,
                            "n_holdout": 24}
    assert {r["arm"] for r in res["rows"]} == {"constant", "source_only", "iwdan", "real_1",
                                              "syn+real_all", "dann+real_1"}
    labeled = res["runs"]["real_1"][0]["labeled_subjects"]
    assert len(labeled) == 1 and (tmp_path / "real_gaze_quick.png").is_file()
    # a DA arm with labels: the same person labeled as in real_1 (drawn per seed)
    assert res["runs"]["dann+real_1"][0]["labeled_subjects"] == labeled
    assert set(res["runs"]["source_only"][0]["gain"]) == {"pitch", "yaw"}
    run = res["runs"]["source_only"][0]
    assert run["subject_offsets_removed_deg"] >= 0.0 and run["recalibrated_deg"] >= 0.0


def test_real_gaze_benchmark_mirrors_one_eye_side(tmp_path):
    from tests.test_loop_real import _eyes

    real = _eyes(tmp_path / "real", n=48, subjects=6)
    args = ["--real", str(real), "--quick", "--arms", "constant", "syn+real_1", "--mirror-eye", "R"]
    # without an eye column the option is refused, naming the folder, and nothing is written
    r = _call("benchmarks.bench_real_gaze", *args, "--name", "rg_no", tmp_path=tmp_path)
    assert r.returncode == 2 and "no eye side per image" in r.stderr and str(real) in r.stderr
    assert not (tmp_path / "rg_no_quick.json").exists()
    _add_meta_column(real, "eye", lambda i: "LR"[i % 2])
    _run("benchmarks.bench_real_gaze", *args, "--name", "rg_side", tmp_path=tmp_path)
    res = json.loads((tmp_path / "rg_side_quick.json").read_text())
    assert res["mirror_eye"] == "R"
    # scored against the labels as stated: the constant answer is unchanged by mirroring
    _run("benchmarks.bench_real_gaze", *args[:5], "--name", "rg_plain", tmp_path=tmp_path)
    plain = json.loads((tmp_path / "rg_plain_quick.json").read_text())
    assert res["runs"]["constant"] == plain["runs"]["constant"] and plain["mirror_eye"] is None


def test_real_gaze_benchmark_refines_the_synthetic_eyes_with_the_mean_patch(tmp_path):
    from tests.test_loop_real import _eyes

    real = _eyes(tmp_path / "real", n=48, subjects=6)
    _run("benchmarks.bench_real_gaze", "--real", str(real), "--quick", "--arms", "source_only",
         "--refine", "mean-patch", "--strength", "0.7", "--name", "rg_patch", tmp_path=tmp_path)
    res = json.loads((tmp_path / "rg_patch_quick.json").read_text())
    assert res["refine"] == "mean-patch" and res["strength"] == 0.7
    assert res["rows"][0]["arm"] == "source_only" and res["rows"][0]["mean_deg"] > 0
    assert (tmp_path / "rg_patch_quick_samples.png").is_file()


def test_real_gaze_benchmark_patches_each_head_pose(tmp_path):
    from tests.test_loop_real import _eyes

    real = _eyes(tmp_path / "real", n=48, subjects=6)
    args = ["--real", str(real), "--quick", "--arms", "source_only", "--refine", "pose-mean-patch",
            "--pose-column", "head_deg"]
    # without the pose column: refused naming the folder and the column, nothing written
    r = _call("benchmarks.bench_real_gaze", *args, "--name", "rg_nopose", tmp_path=tmp_path)
    assert r.returncode == 2 and "'head_deg'" in r.stderr and str(real) in r.stderr
    assert not (tmp_path / "rg_nopose_quick.json").exists()
    # a pose too rare for its mean: refused naming the pose, nothing written
    _add_meta_column(real, "rare_deg", lambda i: 30 if i < 2 else 0)
    r = _call("benchmarks.bench_real_gaze", *args[:-1], "rare_deg", "--name", "rg_rare",
              tmp_path=tmp_path)
    assert r.returncode == 2 and "at head pose 30 deg" in r.stderr and str(real) in r.stderr
    assert not (tmp_path / "rg_rare_quick.json").exists()
    _add_meta_column(real, "head_deg", lambda i: (-15, 15)[i // 6 % 2])  # both poses per person
    out = _run("benchmarks.bench_real_gaze", *args, "--name", "rg_pose", tmp_path=tmp_path)
    assert "pose mean patch: real poses [-15.0, 15.0]" in out
    res = json.loads((tmp_path / "rg_pose_quick.json").read_text())
    assert res["refine"] == "pose-mean-patch" and res["pose_column"] == "head_deg"
    assert res["rows"][0]["mean_deg"] > 0 and (tmp_path / "rg_pose_quick_pose_patch.png").is_file()


def test_patch_gap_benchmark_measures_each_patch_against_both_real_sets(tmp_path):
    from tests.test_loop_real import _eyes

    real = _eyes(tmp_path / "real", n=48, subjects=6)
    args = ["--real", str(real), "--mpii", str(real), "--quick", "--pose-column", "head_deg"]
    r = _call("benchmarks.bench_patch_gap", *args, tmp_path=tmp_path)
    assert r.returncode == 2 and "head_deg" in r.stderr and str(real) in r.stderr
    assert not (tmp_path / "patch_gap_quick.json").exists()
    _add_meta_column(real, "head_deg", lambda i: (-15, 15)[i // 6 % 2])
    _add_meta_column(real, "eye", lambda i: "LR"[i % 2])
    out = _run("benchmarks.bench_patch_gap", *args, tmp_path=tmp_path)
    assert "frechet_columbia_refined" in out
    res = json.loads((tmp_path / "patch_gap_quick.json").read_text())
    assert [r["refiner"] for r in res["medians"]] == ["mean patch 0.5", "pose patch 0.5",
                                                      "pose patch 1.0"]
    gaps = res["per_seed"]["0"]["pose patch 1.0"]
    assert gaps["frechet_columbia_unrefined"] > 0 and gaps["label_shift_deg"] >= 0


def test_real_gaze_benchmark_self_training_and_seed_ensembles(tmp_path):
    from tests.test_loop_real import _eyes

    real = _eyes(tmp_path / "real", n=48, subjects=6)
    common = ["--real", str(real), "--seeds", "0", "1", "--steps", "20", "--n-synthetic", "256"]
    _run("benchmarks.bench_real_gaze", *common, "--arms", "source_only", "selftrain", "real_1",
         "--ensemble", "--ensemble-arms", "--name", "rg_self", tmp_path=tmp_path)
    res = json.loads((tmp_path / "rg_self.json").read_text())
    assert [r["arm"] for r in res["rows"]] == ["source_only", "source_only@ensemble",
                                               "selftrain", "selftrain@ensemble", "real_1",
                                               "real_1@ensemble", "source_only+selftrain+real_1@mix"]
    # the mixed ensemble: per seed, one model of each arm
    mix = res["runs"]["source_only+selftrain+real_1@mix"]
    assert sorted(r["seed"] for r in mix) == [0, 1]
    assert all(r["members"] == ["source_only", "selftrain", "real_1"] for r in mix)
    assert (tmp_path / "rg_self.png").is_file()  # the plot leaves the ensemble rows out
    assert [r["seed"] for r in res["runs"]["selftrain"]] == [0, 1]
    assert all(r["teacher"] == "source_only" and r["teacher_seeds"] == [0, 1]
               for r in res["runs"]["selftrain"])
    assert res["runs"]["source_only@ensemble"][0]["members"] == [0, 1]
    # a few-label teacher labels with its own seed's model; the student keeps its people
    _run("benchmarks.bench_real_gaze", *common[:3], "0", *common[5:], "--arms", "syn+real_1",
         "selftrain", "--teacher", "syn+real_1", "--name", "rg_k1", tmp_path=tmp_path)
    runs = json.loads((tmp_path / "rg_k1.json").read_text())["runs"]
    assert runs["selftrain"][0]["teacher_seeds"] == [0]
    assert runs["selftrain"][0]["labeled_subjects"] == runs["syn+real_1"][0]["labeled_subjects"]
    # a student without its teacher is refused, naming the missing arm
    r = _call("benchmarks.bench_real_gaze", *common, "--arms", "selftrain", "--name", "rg_bad",
              tmp_path=tmp_path)
    assert r.returncode != 0 and "teacher arm 'source_only'" in r.stderr
    assert not (tmp_path / "rg_bad.json").exists()


def test_real_gaze_benchmark_fine_tunes_from_an_earlier_arm(tmp_path):
    from tests.test_loop_real import _eyes

    real = _eyes(tmp_path / "real", n=48, subjects=6)
    # one step at a vanishing rate: the fine-tuned arm answers as the model it started from
    _run("benchmarks.bench_real_gaze", "--real", str(real), "--quick", "--arms", "source_only",
         "real_1", "--init-from", "source_only", "--finetune-steps", "1", "--finetune-lr",
         "1e-12", "--name", "rg_ft", tmp_path=tmp_path)
    res = json.loads((tmp_path / "rg_ft_quick.json").read_text())
    assert (res["init_from"], res["finetune_steps"], res["finetune_lr"]) == ("source_only", 1, 1e-12)
    pre, ft = res["runs"]["source_only"][0], res["runs"]["real_1"][0]
    assert ft["init_from"] == "source_only" and "init_from" not in pre
    for k in ("pitch", "yaw"):  # a fresh model's answers would differ (its pitch bias by degrees)
        assert abs(ft["bias_deg"][k] - pre["bias_deg"][k]) < 0.2
        assert abs(ft["spread_deg"][k] - pre["spread_deg"][k]) < 0.2
    # the arm to start from must train first
    r = _call("benchmarks.bench_real_gaze", "--real", str(real), "--quick", "--arms", "real_1",
              "source_only", "--init-from", "source_only", "--name", "rg_ft_bad", tmp_path=tmp_path)
    assert r.returncode != 0 and "first trained arm" in r.stderr


def test_landmark_step_benchmark(tmp_path):
    out = _run("benchmarks.bench_landmark_step", "--quick", tmp_path=tmp_path)
    assert "landmark_resnet_s" in out
    rows = json.loads((tmp_path / "landmark_step_quick.json").read_text())["rows"]
    assert rows and all(r["ms_median"] > 0 for r in rows if "ms_median" in r)


def test_refiner_speed_benchmark(tmp_path):
    out = _run("benchmarks.bench_refiner_speed", "--quick", tmp_path=tmp_path)
    assert "bf16+channels_last" in out
    res = json.loads((tmp_path / "refiner_speed_quick.json").read_text())
    assert {(r["images"], r["precision"]) for r in res["rows"]} == {
        (k, p) for k in ("eyes", "faces") for p in ("float32", "bf16+channels_last")}
    assert all(r["ms_per_step"] > 0 and r["refine_img_s"] > 0 for r in res["rows"])


def test_landmark_label_efficiency_benchmark(tmp_path):
    _needs_lfpw()
    out = _run("benchmarks.bench_landmark_label_efficiency", "--quick", tmp_path=tmp_path)
    assert "nme_io_median" in out
    res = json.loads((tmp_path / "landmark_label_efficiency_quick.json").read_text())
    rows = res["rows"]
    assert [r["arm"][0] for r in rows] == ["a", "b", "c", "d", "e"]  # every arm ran and was scored
    assert all(r["n"] == 8 and r["nme_io"] > 0 and 0 <= r["failure_010"] <= 1 for r in rows)
    # arm c is also scored through its dense head and the transfer (another prediction)
    (c,) = [r for r in rows if r["arm"].startswith("c")]
    assert c["transfer_nme_io"] > 0 and c["transfer_nme_io"] != c["nme_io"]


def test_landmark_label_efficiency_self_trained_arms_learn_from_their_teachers(tmp_path):
    _needs_lfpw()
    home = tmp_path / "home"
    every = _call("benchmarks.bench_landmark_label_efficiency", "--arms", "cst", "--n", "645",
                  tmp_path=tmp_path, SYNTHLOOP_HOME=str(home))
    assert every.returncode == 2 and "need unlabeled training faces" in every.stderr
    _run("benchmarks.bench_landmark_label_efficiency", "--quick", "--arms", "ast", "cst",
         tmp_path=tmp_path, SYNTHLOOP_HOME=str(home))
    rows = json.loads((tmp_path / "landmark_label_efficiency_quick.json").read_text())["rows"]
    assert [r["arm"][:4] for r in rows] == ["a+st", "c+st"]
    assert all(r["nme_io"] > 0 and r["pseudo_nme_io"] > 0 for r in rows)
    runs = home / "label-efficiency-quick"
    # each student trained beside its teacher (arm a's and arm c's own runs)
    for teacher, student in (("-a-n8-", "-ast-n8-"), ("-c-n8", "-cst-n8")):
        assert [p for p in runs.iterdir() if teacher in p.name]
        assert [p for p in runs.iterdir() if student in p.name]


def test_landmark_label_efficiency_benchmark_trains_on_a_given_batch(tmp_path, face_data):
    _needs_lfpw()
    bad = _call("benchmarks.bench_landmark_label_efficiency", "--quick", "--source-batch",
                str(tmp_path), tmp_path=tmp_path)
    assert bad.returncode == 2 and f"{tmp_path}: not a batch folder" in bad.stderr
    home = tmp_path / "home"
    _run("benchmarks.bench_landmark_label_efficiency", "--quick", "--arms", "b",
         "--source-batch", face_data["batch"], tmp_path=tmp_path, SYNTHLOOP_HOME=str(home))
    (row,) = json.loads((tmp_path / "landmark_label_efficiency_quick.json").read_text())["rows"]
    assert row["arm"].startswith("b") and row["nme_io"] > 0
    assert home.is_dir() and not list(home.glob("batches/train-landmarks-*"))  # none generated


def test_dense_synthetic_benchmark_scores_a_dense_model_on_fresh_faces(tmp_path):
    from models.checkpoint import save_checkpoint
    from models.registry import create_model

    tiny = {"width": 8, "depths": (1, 1, 1, 1), "head_channels": 8, "input_size": 48,
            "num_points": 500}
    ckpt = save_checkpoint(tmp_path / "dense" / "last.pt", create_model("landmark_resnet_s", **tiny),
                           None, None, 0, {"model": "landmark_resnet_s", "task": "landmarks",
                                           "model_kwargs": tiny})
    out = _run("benchmarks.bench_dense_synthetic", "--model", str(ckpt.parent), "--n", "6",
               "--shape-prior", "--prior-n", "48", tmp_path=tmp_path,
               SYNTHLOOP_HOME=str(tmp_path / "home"))
    assert "nme_io_all" in out
    row, constrained = json.loads((tmp_path / "dense_synthetic.json").read_text())["rows"]
    assert row["point_set"] == "dense500" and row["n"] == 6
    # an untrained model puts every point near the crop centre: far from the faces' points
    assert row["nme_io_visible"] > 20 and row["median_io_all"] > 20
    # the shape prior (fitted on 48 other faces) pulls the collapsed points toward face shapes
    assert constrained["decoding"] == "shape prior" and 0 <= constrained["visibility_accuracy"] <= 1
    assert constrained["nme_io_hidden"] < row["nme_io_hidden"]
    assert constrained["nme_io_all"] < row["nme_io_all"]


def test_refine_faces_benchmark(tmp_path):
    _needs_lfpw()
    out = _run("benchmarks.bench_refine_faces", "--quick", tmp_path=tmp_path)
    assert "change_vs_unrefined" in out
    res = json.loads((tmp_path / "refine_faces_quick.json").read_text())
    assert sorted(r["arm"] for r in res["rows"]) == ["refined", "unrefined"]
    (ref,) = res["refinements"]
    assert ref["status"] == "accepted" and ref["label_check"]["column"] == "landmark_structure_ncc"
    assert (tmp_path / "refine_faces_samples.png").is_file()


def test_refine_faces_benchmark_with_the_face_aligned_patch(tmp_path):
    _needs_lfpw()
    out = _run("benchmarks.bench_refine_faces", "--quick", "--refine-method", "landmark-patch",
               tmp_path=tmp_path)
    res = json.loads((tmp_path / "refine_faces_quick.json").read_text())
    (ref,) = res["refinements"]
    # the landmarker is the unrefined arm's model after 4 steps: every real face's points on
    # one spot, which the product refuses to align by, saying so; the benchmark goes on
    assert ref["status"] == "not refined" and "canonical face" in ref["failing"][0]
    assert "refused" in out and {r["arm"] for r in res["rows"]} == {"unrefined"}


def test_refine_faces_benchmark_with_the_real_context(tmp_path):
    _needs_lfpw()
    out = _run("benchmarks.bench_refine_faces", "--quick", "--refine-method", "real-context",
               tmp_path=tmp_path)
    res = json.loads((tmp_path / "refine_faces_quick.json").read_text())
    (ref,) = res["refinements"]
    # the 4-step landmarker puts every real face's points on one spot: refused, named
    assert ref["status"] == "not refined" and "span no face" in ref["failing"][0]
    assert "refused" in out and {r["arm"] for r in res["rows"]} == {"unrefined"}


def _prepare_quick(tmp_path, strength: str):
    _needs_lfpw()
    out = tmp_path / "prep"
    return out, _call("benchmarks.prepare_refined_faces", "--quick", "--out", str(out),
                      "--strength", strength, tmp_path=tmp_path, SYNTHLOOP_HOME=str(tmp_path / "home"))


def test_preparing_a_refined_face_batch_runs_the_product_s_steps_and_names_a_refusal(tmp_path):
    out, r = _prepare_quick(tmp_path, "1")
    # the 4-step landmarker puts every photograph's points on one spot: refused, named
    assert r.returncode == 1 and "not refined:" in r.stderr and "span no face" in r.stderr
    assert (out / "synthetic" / "manifest.json").is_file() and (out / "landmarker").is_dir()
    assert not (out / "refined-real-context").exists()  # nothing half-written


def test_refine_gaze_benchmark(tmp_path):
    from tests.test_loop_real import _eyes

    real = _eyes(tmp_path / "real", n=48, subjects=6)
    out = _run("benchmarks.bench_refine_gaze", "--real", str(real), "--mpii", str(real),
               "--quick", tmp_path=tmp_path)
    assert "median over seeds" in out
    res = json.loads((tmp_path / "refine_gaze_quick.json").read_text())
    (run,) = res["runs"]
    assert run["unrefined"]["mean_deg"] > 0 and run["refined"]["mean_deg"] > 0
    assert run["mean_abs_change"] >= 0 and "label_shift_deg" in run["gap"]


def test_preparing_a_refined_face_batch_refuses_a_bad_strength_before_any_work(tmp_path):
    out, r = _prepare_quick(tmp_path, "1.5")
    assert r.returncode == 2 and "--strength 1.5" in r.stderr and "0 to 1" in r.stderr
    assert not out.exists()  # nothing rendered, nothing trained
