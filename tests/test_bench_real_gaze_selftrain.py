"""What the self-training students of ``bench_real_gaze`` are taught: a label-free teacher's
seed-ensemble mean for every analysis eye, and with ``selftrain+real_<k>`` the true labels
of k people instead of it for theirs."""

from types import SimpleNamespace

import numpy as np
import pytest

import benchmarks.bench_real_gaze as bench


def _setup(monkeypatch):
    rng = np.random.default_rng(0)
    groups = tuple(f"p{i % 4}" for i in range(16))
    eyes = SimpleNamespace(groups=groups, images=rng.integers(0, 256, (16, 36, 60), dtype=np.uint8),
                           pitchyaw=rng.uniform(-0.3, 0.3, (16, 2)).astype(np.float32))
    analysis = np.arange(12)  # people p0..p3 in the pool; eyes 12-15 stand for held-out ones
    taught = {}

    def fake_train(parts, *_, **kw):
        taught["parts"], taught["out"], taught["steps"] = parts, kw["out"], kw["steps"]
        return np.zeros((16, 2)), 1.0

    monkeypatch.setattr(bench, "train_and_predict", fake_train)
    monkeypatch.setattr(bench, "_synthetic_for", lambda *a: ("synthetic", None))
    teacher = {0: rng.normal(size=(16, 2)), 1: rng.normal(size=(16, 2))}
    a = SimpleNamespace(teacher="dann", rotate_people=True, mirror=0.0, real_share=0.5, ema=None,
                        tta_shift=0, init_from=None, steps=10, labeled_repeat=1,
                        student_steps=None)
    return eyes, analysis, teacher, a, taught


def test_a_label_free_teacher_labels_every_analysis_eye_with_its_seed_mean(monkeypatch, tmp_path):
    eyes, analysis, teacher, a, taught = _setup(monkeypatch)
    _, info = bench._self_train("selftrain", 1, eyes, analysis, a, tmp_path, {"dann": teacher})
    images, labels = taught["parts"][1]
    np.testing.assert_array_equal(images, eyes.images[analysis])
    np.testing.assert_allclose(labels, ((teacher[0] + teacher[1]) / 2)[analysis], rtol=1e-6)
    assert info["teacher_seeds"] == [0, 1] and "labeled_subjects" not in info
    assert taught["steps"] == a.steps and "steps" not in info  # the teachers' budget


def test_a_student_can_train_longer_than_its_teachers(monkeypatch, tmp_path, capsys):
    eyes, analysis, teacher, a, taught = _setup(monkeypatch)
    a.student_steps = 40
    _, info = bench._self_train("selftrain", 1, eyes, analysis, a, tmp_path, {"dann": teacher})
    assert taught["steps"] == 40 and info["steps"] == 40
    with pytest.raises(SystemExit):
        bench.main(["--arms", "dann", "--student-steps", "40"])
    assert "--student-steps 40: a positive budget for a selftrain arm" in capsys.readouterr().err


def test_the_labeled_people_keep_their_true_labels(monkeypatch, tmp_path):
    eyes, analysis, teacher, a, taught = _setup(monkeypatch)
    _, info = bench._self_train("selftrain+real_1", 1, eyes, analysis, a, tmp_path,
                                {"dann": teacher})
    labels = taught["parts"][1][1]
    assert info["labeled_subjects"] == ["p1"]  # seed 1 in turn
    person = np.array([eyes.groups[i] == "p1" for i in analysis])
    np.testing.assert_array_equal(labels[person], eyes.pitchyaw[analysis][person])
    mean = ((teacher[0] + teacher[1]) / 2)[analysis]
    np.testing.assert_allclose(labels[~person], mean[~person], rtol=1e-6)
    assert taught["out"].name == "selftrain+real_1-s1"
    a.labeled_repeat = 3  # the person's eyes twice more after every analysis eye
    _, info = bench._self_train("selftrain+real_1", 1, eyes, analysis, a, tmp_path,
                                {"dann": teacher})
    images, labels = taught["parts"][1]
    assert len(images) == len(analysis) + 2 * person.sum() and info["labeled_repeat"] == 3
    np.testing.assert_array_equal(images[len(analysis):], np.tile(eyes.images[analysis][person],
                                                                  (2, 1, 1)))
    np.testing.assert_array_equal(labels[len(analysis):], np.tile(eyes.pitchyaw[analysis][person],
                                                                  (2, 1)))


def test_a_student_cannot_keep_other_people_than_its_few_label_teacher(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--arms", "syn+real_1", "selftrain+real_3", "--teacher", "syn+real_1"])
    assert e.value.code == 2 and "saw 1 labeled people, the student 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--arms", "selftrain+real_1", "dann", "--teacher", "dann"])
    assert "teacher arm 'dann' earlier" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--arms", "dann", "selftrain", "--teacher", "dann", "--labeled-repeat", "3"])
    assert "no selftrain arm keeps labeled people" in capsys.readouterr().err
