"""Scene distribution files a careless or hostile user edits (audit cases #23-39, defects
D6, D9, D16): ``synthloop generate --distribution FILE`` refuses what no renderer can use
before anything is written, in one line naming the file and what is wrong (the factor,
the image field); validation holds batches to physics, not only to their own
distribution, and quarantines noise (#5)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from synth.distribution import Factor, read_distribution
from synth.eye_distribution import default_eye_distribution
from synthloop.cli import main
from synthloop.errors import DataFormatError


def _export(tmp_path: Path, task: str = "gaze") -> dict:
    """The task's default distribution as ``synthloop distribution --out`` writes it."""
    path = tmp_path / f"{task}-default.json"
    assert main(["distribution", "--task", task, "--out", str(path)]) == 0
    return json.loads(path.read_text())


def _factor(doc: dict, name: str) -> dict:
    return next(f for f in doc["factors"] if f["name"] == name)


def _write(tmp_path: Path, doc: dict, name: str, keep_id: bool = False) -> Path:
    if not keep_id:
        doc.pop("id", None)  # what the message for an edited file asks for
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def _generate(path: Path, out: Path, capsys, task: str = "gaze") -> tuple[int, str]:
    """``synthloop generate`` in-process: (exit code, stderr)."""
    capsys.readouterr()
    fast = ["--no-compile"] if task == "gaze" else []
    code = main(["generate", "--task", task, "-n", "8", "--seed", "1", *fast,
                 "--distribution", str(path), "--out", str(out)])
    return code, capsys.readouterr().err


def _assert_refused_in_one_line(code: int, err: str, path: Path, out: Path, *words: str) -> None:
    """Exit 2, the last line of stderr names the file and the problem, no traceback (a face
    generate first says which face model it uses), nothing written."""
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err, err
    assert last.startswith("synthloop generate: error: ") and str(path) in last, last
    assert all(w in last for w in words), last
    assert not out.exists() and not any(p.name.startswith(".partial") for p in out.parent.iterdir())


# --- D9: bin weights and image specs (#23, #25, #29, #30, #31) -------------------------

@pytest.mark.parametrize("bad", [-0.5, float("nan"), "zero"])
def test_a_bad_bin_weight_is_named_by_factor_in_one_line(tmp_path, bad):
    doc = _export(tmp_path)
    if bad == "zero":
        _factor(doc, "gaze_yaw")["weights"] = [0.0] * 16
        factor = "gaze_yaw"
    else:
        _factor(doc, "gaze_pitch")["weights"][0] = bad
        factor = "gaze_pitch"
    path = _write(tmp_path, doc, "weights")
    with pytest.raises(DataFormatError) as e:
        read_distribution(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message and f"factor '{factor}'" in message
    assert "0.0236" not in message and len(message) < len(str(path)) + 150  # no array printed


@pytest.mark.parametrize(("field", "value"), [
    ("height", 0), ("height", -5), ("width", 0), ("width", 100_000), ("channels", 7),
    ("channels", 2), ("height", 36.5), ("width", "60"), ("height", True),
])
def test_an_impossible_image_spec_is_refused_when_the_file_is_read(tmp_path, field, value):
    doc = _export(tmp_path)
    doc["image"][field] = value
    path = _write(tmp_path, doc, "image")
    with pytest.raises(DataFormatError) as e:
        read_distribution(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value) and f"image.{field}" in str(e.value)


# --- D6: what no renderer reads, or no scene can be (#24, #27, #33, #35, #36) -----------

def _edit_gaze_pitch_400(doc):
    f = _factor(doc, "gaze_pitch")
    f["edges"] = [x * 10 for x in f["edges"]]  # +-400 deg: labels up to 7 rad


def _edit_jpeg_negative(doc):
    f = _factor(doc, "jpeg_quality")
    f["edges"] = list(np.linspace(-500, 1, len(f["edges"])))


def _edit_noise_x1000(doc):
    f = _factor(doc, "noise_sigma")
    f["edges"] = [x * 1000 for x in f["edges"]]


def _edit_moon_phase(doc):
    doc["factors"].append({"name": "moon_phase", "kind": "continuous", "weights": [1, 1],
                           "edges": [0.0, 0.5, 1.0]})


def _edit_no_jpeg(doc):
    doc["factors"] = [f for f in doc["factors"] if f["name"] != "jpeg_quality"]


def _edit_head_yaw_750(doc):
    f = _factor(doc, "head_yaw")
    f["edges"] = [x * 10 for x in f["edges"]]


def _edit_preset_12(doc):
    _factor(doc, "expression_preset")["values"][-1] = 12.0  # no such preset


def _edit_not_square(doc):
    doc["image"]["width"] = 96


def _edit_eye_512(doc):
    doc["image"].update(height=512, width=512)  # ~16 GB per 128-eye chunk


@pytest.mark.parametrize(("task", "edit", "words"), [
    ("gaze", _edit_gaze_pitch_400, ("'gaze_pitch'", "-400..400 deg", "-90..90 deg")),
    ("gaze", _edit_jpeg_negative, ("'jpeg_quality'", "1..100")),
    ("gaze", _edit_noise_x1000, ("'noise_sigma'",)),
    ("gaze", _edit_moon_phase, ("unknown factor 'moon_phase'",)),
    ("gaze", _edit_no_jpeg, ("lacks factor 'jpeg_quality'",)),
    ("gaze", _edit_eye_512, ("image.height = 512", "at most 256")),
    ("landmarks", _edit_moon_phase, ("unknown factor 'moon_phase'",)),
    ("landmarks", _edit_head_yaw_750, ("'head_yaw'", "-90..90 deg")),
    ("landmarks", _edit_preset_12, ("'expression_preset'",)),
    ("landmarks", _edit_not_square, ("square RGB", "128x96x3")),
])
def test_generate_refuses_what_the_renderer_cannot_use_naming_file_and_factor(
        tmp_path, capsys, task, edit, words):
    doc = _export(tmp_path, task)
    edit(doc)
    path = _write(tmp_path, doc, edit.__name__)
    out = tmp_path / "batch"
    _assert_refused_in_one_line(*_generate(path, out, capsys, task), path, out, *words)


def test_the_defaults_and_every_loop_update_stay_within_the_physical_limits():
    """Physics is a bound on what people write, never on what the project proposes: the
    default distributions, the simulated targets and loop updates (which re-weight bins
    inside the default's support) pass."""
    from analysis.update_policy import update_distribution
    from synth.eye_distribution import EYE_TASK
    from synth.face_distribution import FACE_TASK, default_face_distribution
    from synth.targets import shifted_eye_distribution

    eyes = [default_eye_distribution(), default_eye_distribution(channels=3),
            shifted_eye_distribution(version="v1"), shifted_eye_distribution(version="v2"),
            shifted_eye_distribution(label_shift=False)]
    rng = np.random.default_rng(0)
    n = 400
    real = {name: rng.uniform(-math.radians(80), math.radians(80), n)  # beyond the support
            for name in ("gaze_pitch", "gaze_yaw", "head_pitch", "head_yaw")}
    errors = rng.gamma(2.0, 3.0, n) + 10 * (real["gaze_pitch"] > 0.3)
    d = default_eye_distribution()
    for _ in range(3):
        d, _ = update_distribution(d, errors=errors, real_values=real)
        eyes.append(d)
    for dist in eyes:
        assert EYE_TASK.problems(dist) == [], dist.name
    assert FACE_TASK.problems(default_face_distribution()) == []


# --- D16: an exported file edited by hand, its id kept (#28) ---------------------------

def test_an_edited_file_that_keeps_its_id_is_refused_with_the_fix(tmp_path, capsys):
    doc = _export(tmp_path)
    _factor(doc, "gaze_pitch")["weights"][0] *= 3
    path = _write(tmp_path, doc, "edited", keep_id=True)
    out = tmp_path / "batch"
    code, err = _generate(path, out, capsys)
    _assert_refused_in_one_line(code, err, path, out, 'delete the "id" line')
    fixed = read_distribution(_write(tmp_path, dict(doc), "fixed"))  # the advice, followed
    assert fixed.id in err  # the message prints the id the content has
    doc["id"] = fixed.id  # the other advice: set it to that id
    assert read_distribution(_write(tmp_path, doc, "set", keep_id=True)).id == fixed.id


# --- validation: physics in the suites, unknown factors, noise (#5, #24, #33) ----------

@pytest.mark.gx
def test_validation_quarantines_what_physics_rules_out_even_if_the_batch_claims_it(tmp_path):
    """A batch made without ``generate``'s checks: its distribution has an unknown factor
    and a +-400 deg gaze support (its labels agree with it), and half its images are
    uniform noise with valid checksums. Each is quarantined under its own name."""
    from expectations.validate import validate_batch
    from synth.eye_generator import EyeGenerator
    from synth.generate import eye_metadata
    from synth.shards import BatchWriter

    base = default_eye_distribution()
    wide = Factor("gaze_pitch", "continuous", (1.0,) * 4, tuple(np.linspace(-7.0, 7.0, 5)), unit="rad")
    moon = Factor.uniform("moon_phase", 0.0, 1.0, 2)
    claimed = base.derive("hand-made", factors=tuple(
        wide if f.name == "gaze_pitch" else f for f in base.factors) + (moon,))
    n = 64
    images, scenes = EyeGenerator(base).render_all(n, seed=3)
    scenes.update(claimed.sample(np.random.default_rng(3), n))  # labels from the claim
    images[: n // 2] = np.random.default_rng(0).integers(0, 256, images[: n // 2].shape, np.uint8)
    geometry = {"pupil_x_px": np.full(n, 30.0), "pupil_y_px": np.full(n, 18.0)}
    with BatchWriter(tmp_path / "b", task="gaze", dist=claimed, seed=3, n=n,
                     generator=EyeGenerator(base).settings) as w:
        w.add(images, eye_metadata(scenes, geometry))
    failing = validate_batch(tmp_path / "b", docs=False).failing
    assert "coverage: factor 'moon_phase' not in the suite's set " \
           "(expect_column_values_to_be_in_set(factor))" in failing
    assert any(f.startswith("distribution: factor 'gaze_pitch': support -7..7 rad") for f in failing)
    assert "expect_column_max_to_be_between(pitch)" in failing
    assert "expect_column_values_to_be_between(img_roughness)" in failing
