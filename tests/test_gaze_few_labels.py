"""A few labeled real eyes for gaze training: which people, the batch mix, the people held
out for checkpoint selection, and the refusals."""

import numpy as np
import pytest
import torch

from synthloop.errors import UsageError
from synthloop.gaze.few_labels import FewLabels, choose_subjects
from tests.test_loop_real import _eyes


def test_choose_subjects_is_seeded_and_whole_people():
    groups = [f"p{i % 5}" for i in range(20)]
    idx, people = choose_subjects(groups, 2, seed=0)
    assert len(people) == 2 and {groups[i] for i in idx} == set(people) and len(idx) == 8
    assert choose_subjects(groups, 2, seed=0)[1] == people
    assert len(choose_subjects(groups, None, seed=0)[1]) == 5
    with pytest.raises(UsageError, match="5 people"):
        choose_subjects(groups, 6, seed=0)


def test_few_labels_mix_batches_and_hold_out_a_person_for_selection(tmp_path):
    folder = _eyes(tmp_path / "real", n=40, subjects=8)
    real = FewLabels.read(str(folder), 5, 0.25, 16, seed=1)
    assert real.per_batch == 4 and len(real.people) == 5
    # a fifth of the five people (one) selects the checkpoint, the other four train
    assert len(real.val["image"]) == 5 and len(real.images) == 20
    from models.data import ArraySource

    syn = ArraySource(np.zeros((30, 36, 60), np.uint8), 12, 0,
                      labels={"pitchyaw": np.full((30, 2), 0.5, np.float32)})
    batch = real.source(syn).batch(3)
    assert batch["image"].shape[0] == 16
    assert torch.all(batch["pitchyaw"][:12] == 0.5) and not torch.all(batch["pitchyaw"][12:] == 0.5)
    assert real.record()["real_n_train"] == 20


def test_refusals(tmp_path):
    assert FewLabels.read(None, None, 0.5, 64, 0) is None
    with pytest.raises(UsageError, match="needs --real-labeled"):
        FewLabels.read(None, 3, 0.5, 64, 0)
    plain = _eyes(tmp_path / "plain", n=20, meta=False)
    from synthloop.errors import DataFormatError

    with pytest.raises(DataFormatError, match="needs meta.csv"):
        FewLabels.read(str(plain), 2, 0.5, 64, 0)
    one = FewLabels.read(str(plain), None, 0.5, 64, 0)  # no people named: all of it, no selection
    assert one.val is None and len(one.images) == 20
