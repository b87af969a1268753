"""Mirrored training patches (GazeTaskConfig.mirror): a patch flipped left to right is the
same eye looking the other way, so its yaw is negated and its pitch kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.tasks.gaze import GazeTaskConfig, mirror_patches
from tests.synth.test_eye_renderer import render


def test_a_mirrored_rendered_eye_is_the_eye_looking_the_other_way():
    (eye, other), _ = render([(0.1, 0.3), (0.1, -0.3)])
    mirrored = eye[:, ::-1]
    # the renderer's clean eye is left-right symmetric: only pixel rounding differs
    assert np.abs(mirrored.astype(int) - other).mean() < 1.0
    assert np.abs(eye.astype(int) - other).mean() > 5.0  # and the yaw does show


def test_flips_negate_the_yaw_of_labeled_rows_only():
    x = torch.arange(4 * 1 * 2 * 3, dtype=torch.float32).view(4, 1, 2, 3)
    labels = {"pitchyaw": torch.tensor([[0.1, 0.2], [0.3, -0.4]])}  # 2 labeled, 2 target rows
    out, lab = mirror_patches(x, labels, torch.Generator().manual_seed(0), 1.0)
    assert torch.equal(out, x.flip(-1))
    assert torch.equal(lab["pitchyaw"], torch.tensor([[0.1, -0.2], [0.3, 0.4]]))
    same, kept = mirror_patches(x, labels, torch.Generator().manual_seed(0), 0.0)
    assert torch.equal(same, x) and torch.equal(kept["pitchyaw"], labels["pitchyaw"])
    # about half the rows flip at p = 0.5, each with its own label
    big = torch.rand(2000, 1, 2, 3, generator=torch.Generator().manual_seed(1))
    py = torch.rand(2000, 2, generator=torch.Generator().manual_seed(2))
    out, lab = mirror_patches(big, {"pitchyaw": py}, torch.Generator().manual_seed(3), 0.5)
    flipped = (lab["pitchyaw"][:, 1] != py[:, 1])
    assert 900 < int(flipped.sum()) < 1100
    assert torch.equal(out[flipped], big[flipped].flip(-1)) and torch.equal(out[~flipped], big[~flipped])


def test_no_mirroring_draws_nothing_and_bad_probabilities_are_refused():
    """mirror = 0 leaves the augmentation stream as it was (old runs reproduce bit for
    bit); mirror > 0 draws after it."""
    from types import SimpleNamespace

    from models.augment import augment
    from models.tasks.gaze import GazeTask

    x = torch.rand(8, 1, 36, 60)
    labels = {"pitchyaw": torch.zeros(8, 2)}
    states = {}
    for name, kwargs in (("plain", None), ("off", {}), ("on", {"mirror": 0.5})):
        g = torch.Generator().manual_seed(0)
        if kwargs is None:
            augment(x, g)
        else:
            GazeTask().augment(x, labels, g, SimpleNamespace(task_kwargs=kwargs))
        states[name] = g.get_state()
    assert torch.equal(states["off"], states["plain"])
    assert not torch.equal(states["on"], states["plain"])
    with pytest.raises(ValueError, match="mirror must be a probability"):
        GazeTaskConfig(mirror=1.5)
