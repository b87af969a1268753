"""Tests for the real eye-image readers (realdata.eyes) and the gaze convention."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from realdata.eyes import (
    EyeImages,
    read_eye_folder,
    read_eye_labels,
    read_eye_manifest,
    read_mpiigaze_mat,
)
from realdata.gaze import gaze_vector_to_pitchyaw, pitchyaw_to_gaze_vector
from synthloop.errors import DataFormatError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REAL_UNLABELED = SHARED / "data" / "real" / "mpiigaze-eyes-unlabeled"


def _patch(seed: int, shape: tuple[int, int] = (36, 60)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _write_folder(
    folder: Path, rows: list[str], header: str = "image,pitch,yaw", name: str = "labels.csv"
) -> Path:
    """Write images/NN.png for each row (first field) and the CSV itself."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        rel = row.split(",")[0]
        if rel.startswith("images/"):
            Image.fromarray(_patch(i)).save(folder / rel)
    csv_path = folder / name
    csv_path.write_text("\n".join([header, *rows]) + "\n")
    return csv_path


# --------------------------------------------------------------------------- labeled CSV


def test_labels_round_trip(tmp_path):
    _write_folder(tmp_path, ["images/a.png,0.1,-0.25", "images/b.png,-0.5,1.5"])
    eyes = read_eye_labels(tmp_path)
    assert isinstance(eyes, EyeImages)
    assert eyes.images.shape == (2, 36, 60) and eyes.images.dtype == np.uint8
    np.testing.assert_array_equal(eyes.images[0], _patch(0))
    np.testing.assert_array_equal(eyes.images[1], _patch(1))
    assert eyes.pitchyaw.dtype == np.float32
    np.testing.assert_allclose(eyes.pitchyaw, [[0.1, -0.25], [-0.5, 1.5]], rtol=1e-6)
    assert eyes.paths == ("images/a.png", "images/b.png")
    assert eyes.source == str(tmp_path)


def test_labels_read_optional_head_pose(tmp_path):
    _write_folder(tmp_path / "a", ["images/a.png,0.1,-0.25", "images/b.png,-0.5,1.5"])
    assert read_eye_labels(tmp_path / "a").headpose is None
    _write_folder(tmp_path / "h", ["images/a.png,0.1,-0.25,-0.3,0.2", "images/b.png,-0.5,1.5,0.05,-1.0"],
                  header="image,pitch,yaw,head_pitch,head_yaw")
    eyes = read_eye_labels(tmp_path / "h")
    assert eyes.headpose.dtype == np.float32
    np.testing.assert_allclose(eyes.headpose, [[-0.3, 0.2], [0.05, -1.0]], rtol=1e-6)
    np.testing.assert_allclose(eyes.pitchyaw, [[0.1, -0.25], [-0.5, 1.5]], rtol=1e-6)


def test_head_pose_needs_both_columns_and_radians(tmp_path):
    csv = _write_folder(tmp_path / "one", ["images/a.png,0.1,-0.25,0.2"],
                        header="image,pitch,yaw,head_yaw")
    with pytest.raises(DataFormatError, match="head_yaw but not head_pitch") as e:
        read_eye_labels(tmp_path / "one")
    assert str(csv) in str(e.value)
    _write_folder(tmp_path / "deg", ["images/a.png,0.1,-0.25,0.2,0.1", "images/b.png,0,0,-30,0"],
                  header="image,pitch,yaw,head_pitch,head_yaw")
    with pytest.raises(DataFormatError, match=r":3: head_pitch -30 is outside"):
        read_eye_labels(tmp_path / "deg")


def test_labels_accepts_csv_path_and_resizes_rgb(tmp_path):
    (tmp_path / "images").mkdir()
    rgb = np.zeros((72, 120, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red -> PIL 'L' luma 76
    Image.fromarray(rgb).save(tmp_path / "images" / "big.png")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("image,pitch,yaw\nimages/big.png,0,0\n")
    eyes = read_eye_labels(csv_path)
    assert eyes.images.shape == (1, 36, 60)
    assert np.all(eyes.images == 76)
    assert eyes.source == str(csv_path)


def test_bad_number_names_file_and_line(tmp_path):
    _write_folder(tmp_path, ["images/a.png,0.1,0.2", "images/b.png,abc,0.2"])
    with pytest.raises(DataFormatError) as exc:
        read_eye_labels(tmp_path)
    assert "labels.csv:3" in str(exc.value)
    assert "pitch" in str(exc.value) and "'abc'" in str(exc.value)
    assert exc.value.line == 3


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_value(tmp_path, value):
    _write_folder(tmp_path, ["images/a.png,0.1,0.2", f"images/b.png,0.1,{value}"])
    with pytest.raises(DataFormatError, match=r"labels\.csv:3: yaw is not finite"):
        read_eye_labels(tmp_path)


@pytest.mark.parametrize(
    ("row", "name"), [("images/a.png,1.6,0", "pitch"), ("images/a.png,0,3.2", "yaw")]
)
def test_out_of_range_angle(tmp_path, row, name):
    _write_folder(tmp_path, [row])
    with pytest.raises(DataFormatError, match=rf"labels\.csv:2: {name} .* outside"):
        read_eye_labels(tmp_path)


def test_missing_column(tmp_path):
    _write_folder(tmp_path, ["images/a.png,0.1"], header="image,pitch")
    with pytest.raises(DataFormatError, match=r"labels\.csv:1: missing column\(s\) yaw"):
        read_eye_labels(tmp_path)


def test_missing_image_file(tmp_path):
    _write_folder(tmp_path, ["images/a.png,0,0", "images/a.png,0,0", "nothere.png,0,0"])
    with pytest.raises(DataFormatError, match=r"labels\.csv:4: image file not found: nothere"):
        read_eye_labels(tmp_path)


def test_undecodable_image(tmp_path):
    _write_folder(tmp_path, ["images/a.png,0,0", "images/bad.png,0,0"])
    (tmp_path / "images" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataFormatError, match=r"labels\.csv:3: image images/bad\.png cannot"):
        read_eye_labels(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "labels.csv").write_text("")
    with pytest.raises(DataFormatError, match=r"labels\.csv:1: file is empty"):
        read_eye_labels(tmp_path)


def test_header_only(tmp_path):
    (tmp_path / "labels.csv").write_text("image,pitch,yaw\n")
    with pytest.raises(DataFormatError, match=r"labels\.csv:1: .*no data rows"):
        read_eye_labels(tmp_path)


def test_wrong_field_count_and_inner_blank_line(tmp_path):
    _write_folder(tmp_path, ["images/a.png,0,0", "images/a.png,0,0,9"])
    with pytest.raises(DataFormatError, match=r"labels\.csv:3: expected 3 fields, found 4"):
        read_eye_labels(tmp_path)
    _write_folder(tmp_path, ["images/a.png,0,0", "", "images/a.png,0,0"])
    with pytest.raises(DataFormatError, match=r"labels\.csv:3: blank line"):
        read_eye_labels(tmp_path)


def test_missing_csv(tmp_path):
    with pytest.raises(DataFormatError, match=r"labels\.csv: no such file"):
        read_eye_labels(tmp_path)


# --------------------------------------------------------------------------- manifest / folder


def test_manifest_round_trip(tmp_path):
    _write_folder(
        tmp_path,
        ["images/a.png", "images/b.png", "images/c.png"],
        header="image",
        name="manifest.csv",
    )
    for arg in (tmp_path, tmp_path / "manifest.csv"):
        eyes = read_eye_manifest(arg)
        assert eyes.pitchyaw is None
        assert len(eyes) == 3
        for i in range(3):
            np.testing.assert_array_equal(eyes.images[i], _patch(i))
        assert eyes.paths == ("images/a.png", "images/b.png", "images/c.png")


def test_manifest_missing_image_column(tmp_path):
    (tmp_path / "manifest.csv").write_text("file\nimages/a.png\n")
    with pytest.raises(DataFormatError, match=r"manifest\.csv:1: missing column\(s\) image"):
        read_eye_manifest(tmp_path)


def test_folder_prefers_labels(tmp_path):
    _write_folder(tmp_path, ["images/a.png"], header="image", name="manifest.csv")
    assert read_eye_folder(tmp_path).pitchyaw is None
    _write_folder(tmp_path, ["images/a.png,0.3,0.4"])
    np.testing.assert_allclose(read_eye_folder(tmp_path).pitchyaw, [[0.3, 0.4]], rtol=1e-6)


def test_folder_with_neither(tmp_path):
    with pytest.raises(DataFormatError, match="neither labels.csv nor manifest.csv"):
        read_eye_folder(tmp_path)


@pytest.mark.skipif(not (REAL_UNLABELED / "manifest.csv").exists(), reason="no shared data")
def test_real_unlabeled_manifest():
    eyes = read_eye_folder(REAL_UNLABELED)
    n_rows = len((REAL_UNLABELED / "manifest.csv").read_text().strip().splitlines()) - 1
    assert eyes.images.shape == (n_rows, 36, 60)
    assert eyes.pitchyaw is None
    assert eyes.paths[0] == "images/00000.png"
    assert eyes.images.std() > 1.0  # real content, not blank


# --------------------------------------------------------------------------- MPIIGaze .mat


def _eye_struct(gaze: np.ndarray, seed: int) -> dict:
    n = len(gaze)
    images = np.stack([_patch(seed + i) for i in range(n)])
    return {"image": images, "gaze": gaze, "pose": np.zeros((n, 3))}


GAZE_RIGHT = np.array(
    [
        [0.0, 0.0, -1.0],
        [-math.sin(0.3), 0.0, -math.cos(0.3)],
        [0.0, -math.sin(0.2), -math.cos(0.2)],
    ]
)
EXPECTED_RIGHT = np.array([[0.0, 0.0], [0.0, 0.3], [0.2, 0.0]])
GAZE_LEFT = np.array([[-math.sin(0.1), 0.0, -math.cos(0.1)], [0.0, math.sin(0.4), -math.cos(0.4)]])
EXPECTED_LEFT = np.array([[0.0, 0.1], [-0.4, 0.0]])


@pytest.fixture
def mat_file(tmp_path) -> Path:
    path = tmp_path / "day01.mat"
    scipy.io.savemat(
        path,
        {"data": {"right": _eye_struct(GAZE_RIGHT, 0), "left": _eye_struct(GAZE_LEFT, 10)}},
    )
    return path


def test_mat_right_eye_conversion(mat_file):
    eyes = read_mpiigaze_mat(mat_file, eye="right")
    assert eyes.images.shape == (3, 36, 60)
    np.testing.assert_array_equal(eyes.images[2], _patch(2))
    np.testing.assert_allclose(eyes.pitchyaw, EXPECTED_RIGHT, atol=1e-6)
    assert eyes.paths[1] == f"{mat_file}#right/1"


def test_mat_left_eye_flip(mat_file):
    flipped = read_mpiigaze_mat(mat_file, eye="left")
    np.testing.assert_array_equal(flipped.images[0], _patch(10)[:, ::-1])
    np.testing.assert_allclose(flipped.pitchyaw, EXPECTED_LEFT * [1, -1], atol=1e-6)
    raw = read_mpiigaze_mat(mat_file, eye="left", flip_left=False)
    np.testing.assert_array_equal(raw.images[0], _patch(10))
    np.testing.assert_allclose(raw.pitchyaw, EXPECTED_LEFT, atol=1e-6)


def test_mat_both_eyes(mat_file):
    eyes = read_mpiigaze_mat(mat_file)
    assert len(eyes) == 5
    assert eyes.paths[3].endswith("#left/0")
    np.testing.assert_allclose(eyes.pitchyaw[:3], EXPECTED_RIGHT, atol=1e-6)


def test_mat_missing_key(tmp_path):
    path = tmp_path / "day02.mat"
    scipy.io.savemat(path, {"data": {"right": {"image": np.zeros((1, 36, 60), np.uint8)}}})
    with pytest.raises(DataFormatError, match=r"day02\.mat: data\.right has no field 'gaze'"):
        read_mpiigaze_mat(path, eye="right")
    with pytest.raises(DataFormatError, match=r"day02\.mat: data has no field 'left'"):
        read_mpiigaze_mat(path, eye="left")


def test_mat_wrong_shape(tmp_path):
    path = tmp_path / "day03.mat"
    bad = _eye_struct(GAZE_RIGHT, 0)
    bad["gaze"] = GAZE_RIGHT[:, :2]
    scipy.io.savemat(path, {"data": {"right": bad, "left": bad}})
    with pytest.raises(DataFormatError, match=r"day03\.mat: data\.right\.gaze must be 3 x 3"):
        read_mpiigaze_mat(path)


@pytest.mark.parametrize("content", [b"", b"MATLAB 5.0 MAT-file garbage", b"\x00" * 300])
def test_mat_garbage(tmp_path, content):
    path = tmp_path / "day04.mat"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=r"day04\.mat: "):
        read_mpiigaze_mat(path)


def test_mat_truncated(mat_file):
    data = mat_file.read_bytes()
    mat_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"day01\.mat: "):
        read_mpiigaze_mat(mat_file)


# --------------------------------------------------------------------------- gaze convention


def test_gaze_round_trip():
    rng = np.random.default_rng(0)
    py = np.stack([rng.uniform(-1.4, 1.4, 200), rng.uniform(-3.1, 3.1, 200)], axis=1)
    g = pitchyaw_to_gaze_vector(py)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0)
    np.testing.assert_allclose(gaze_vector_to_pitchyaw(g), py, atol=1e-12)
    np.testing.assert_allclose(gaze_vector_to_pitchyaw(GAZE_RIGHT), EXPECTED_RIGHT, atol=1e-12)
    # Non-unit input is normalised first.
    np.testing.assert_allclose(gaze_vector_to_pitchyaw(3 * GAZE_RIGHT), EXPECTED_RIGHT, atol=1e-12)


def test_gaze_rejects_zero_vector():
    with pytest.raises(ValueError, match="zero length"):
        gaze_vector_to_pitchyaw(np.zeros((1, 3)))


def test_realdata_is_pure():
    import realdata  # noqa: F401

    heavy = {"prefect", "mlflow", "optuna", "great_expectations"}
    loaded = {m.split(".")[0] for m in sys.modules} & heavy
    # Other tests in the same process may import these; only check realdata's own source.
    src = "\n".join(p.read_text() for p in Path(realdata.__file__).parent.glob("*.py"))
    assert not any(f"import {h}" in src or f"from {h}" in src for h in heavy), loaded


# --------------------------------------------------------------------------- meta.csv


def _labeled_with_meta(folder: Path, meta: list[str], header: str = "image,subject,head_deg,note"):
    _write_folder(folder, ["images/a.png,0.1,-0.25", "images/b.png,-0.5,1.5",
                           "images/c.png,0.0,0.0"])
    (folder / "meta.csv").write_text("\n".join([header, *meta]) + "\n")


def test_meta_gives_subjects_and_numeric_columns_in_the_labels_order(tmp_path):
    # meta rows in another order than labels.csv; a text column is provenance, not kept
    _labeled_with_meta(tmp_path, ["images/c.png,s2,30,x", "images/a.png,s1,-15,y",
                                  "images/b.png,s1,0,z"])
    eyes = read_eye_folder(tmp_path)
    assert eyes.groups == ("s1", "s1", "s2")
    assert sorted(eyes.meta) == ["head_deg"]
    np.testing.assert_array_equal(eyes.meta["head_deg"], [-15.0, 0.0, 30.0])
    sub = eyes.subset([2, 0])
    assert sub.groups == ("s2", "s1") and sub.paths == ("images/c.png", "images/a.png")
    np.testing.assert_array_equal(sub.meta["head_deg"], [30.0, -15.0])
    np.testing.assert_array_equal(sub.images[0], eyes.images[2])


@pytest.mark.parametrize("rows, message, line", [
    (["images/a.png,s1,0,x", "images/b.png,s1,0,x"], "no row for 1 image", None),
    (["images/a.png,s1,0,x", "images/b.png,s1,0,x", "images/c.png,s1,0,x",
      "images/d.png,s1,0,x"], "images/d.png is not in the folder", 5),
    (["images/a.png,s1,0,x", "images/a.png,s2,0,x", "images/c.png,s1,0,x"],
     "listed twice", 3),
    (["images/a.png,s1,0,x", "images/b.png,,0,x", "images/c.png,s1,0,x"], "empty subject", 3),
])
def test_meta_errors_name_the_file_and_line(tmp_path, rows, message, line):
    _labeled_with_meta(tmp_path, rows)
    with pytest.raises(DataFormatError, match=message) as err:
        read_eye_folder(tmp_path)
    assert err.value.path == tmp_path / "meta.csv" and err.value.line == line


@pytest.mark.skipif(not (SHARED / "data/real/columbia-gaze-eyes/meta.csv").is_file(),
                    reason="columbia-gaze-eyes not in ../shared")
def test_columbia_eyes_carry_24_subjects_head_pose_and_sides():
    eyes = read_eye_folder(SHARED / "data/real/columbia-gaze-eyes")
    assert len(eyes) == 2462 and len(set(eyes.groups)) == 24
    assert set(np.unique(eyes.meta["head_pose_P_deg"])) == {-30.0, -15.0, 0.0, 15.0, 30.0}
    assert set(eyes.sides) == {"L", "R"} and "eye" not in eyes.meta


def test_meta_eye_column_gives_each_patch_its_side(tmp_path):
    _labeled_with_meta(tmp_path, ["images/c.png,s2,R", "images/a.png,s1,L", "images/b.png,s1,R"],
                       header="image,subject,eye")
    eyes = read_eye_folder(tmp_path)
    assert eyes.sides == ("L", "R", "R") and eyes.meta == {}
    assert eyes.subset([2, 0]).sides == ("R", "L")


def test_meta_eye_column_refuses_other_values(tmp_path):
    _labeled_with_meta(tmp_path, ["images/a.png,s1,L", "images/b.png,s1,left", "images/c.png,s1,R"],
                       header="image,subject,eye")
    with pytest.raises(DataFormatError, match="eye must be L or R, got left") as err:
        read_eye_folder(tmp_path)
    assert err.value.path == tmp_path / "meta.csv" and err.value.line == 3
