"""The pseudo-label-gaze flow labels eyes with its teachers' mean answer and the train-gaze
flow trains a student on them as labeled real eyes, from the dashboard's forms."""

import numpy as np
import pytest

from realdata.eyes import read_eye_folder
from tests.test_gaze_mirror_eye import _with_sides
from tests.test_loop_real import _eyes
from tests.test_pseudo_label import _teacher

pytestmark = [pytest.mark.slow, pytest.mark.flow, pytest.mark.gx]  # a training with a new batch


def test_teachers_label_the_eyes_and_a_student_trains_on_them(prefect_harness, tmp_path):
    from flows.train_gaze import PseudoLabelParams, TrainParams, pseudo_label_gaze, train_gaze

    data = _with_sides(_eyes(tmp_path / "real", n=24, subjects=4), sides="LR")
    _teacher(tmp_path / "a", "L", 0)
    _teacher(tmp_path / "b", "L", 1)
    out = tmp_path / "pseudo"
    state = pseudo_label_gaze(PseudoLabelParams(models=[str(tmp_path / "a"), str(tmp_path / "b")],
                                                data=str(data), out=str(out), tta_shift=1),
                              return_state=True)
    assert state.is_completed(), state.message
    res = state.result()
    assert res["n"] == 24 and res["data_labels_ignored"] and len(res["teachers"]) == 2
    labeled = read_eye_folder(out)
    assert not np.allclose(labeled.pitchyaw, read_eye_folder(data).pitchyaw, atol=1e-3)
    # an existing folder is refused and left as it was
    again = pseudo_label_gaze(PseudoLabelParams(models=[str(tmp_path / "a")], data=str(data),
                                                out=str(out)), return_state=True)
    assert again.is_failed() and "not an empty folder" in again.message
    student = train_gaze(TrainParams(method="source_only", target=str(data), steps=4, seed=0,
                                     out=str(tmp_path / "student"), n_source=256, batch_size=8,
                                     real_labeled=str(out), real_fraction=0.5, mirror_eye="L"),
                         return_state=True)
    assert student.is_completed(), student.message
    import mlflow

    run = mlflow.get_run(student.result()["run_id"])
    assert run.data.params["real_labeled"] == str(out.resolve())
    assert run.data.params["real_n_train"] != "0"
