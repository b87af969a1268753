"""The per-pose mean patch as a refiner (models.pose_mean_patch_refiner): it moves each
eye as the numpy fit does, reads the head yaw beside the images everywhere a refiner
runs, survives its checkpoint, and is refused where no head yaw can reach it."""

import numpy as np
import pytest
import torch

from models.pose_mean_patch import fit_pose_mean_patch
from models.pose_mean_patch_refiner import (
    PoseMeanPatchConfig,
    PoseMeanPatchRefiner,
    fit_pose_mean_patch_refiner,
)
from models.refiners import conditioned_on
from models.simgan import refine_images
from tests.models.test_pose_mean_patch import _sets


@pytest.fixture(scope="module")
def fitted():
    synthetic, yaw_deg, real, real_pose = _sets(-1, n=120)
    net = fit_pose_mean_patch_refiner(synthetic, np.radians(yaw_deg), real, real_pose, 0.75)
    return net, synthetic, yaw_deg, real, real_pose


def test_it_moves_each_eye_as_the_fit_does(fitted):
    net, synthetic, yaw_deg, real, real_pose = fitted
    reference = fit_pose_mean_patch(synthetic, yaw_deg, real, real_pose, 0.75)
    assert net.cfg.sign == reference.sign == -1
    assert net.cfg.poses_deg == tuple(reference.poses_deg.tolist())
    refined = refine_images(net, synthetic, chunk=32, condition=np.radians(yaw_deg))
    # float32 in [0, 1] against float32 grey levels: at most a rounding step apart
    assert np.abs(refined.astype(int) - reference.apply(synthetic, yaw_deg)).max() <= 1
    assert conditioned_on(net) == "head_yaw"


def test_the_head_yaw_is_required_where_it_runs(fitted):
    net, synthetic, yaw_deg, *_ = fitted
    with pytest.raises(ValueError, match="needs each image's 'head_yaw'"):
        refine_images(net, synthetic)
    with pytest.raises(ValueError, match="needs each image's 'head_yaw'"):
        refine_images(net, synthetic, condition=np.radians(yaw_deg[:5]))
    with pytest.raises(ValueError, match="missing or infinite"):
        net(torch.from_numpy(synthetic[:2, None]), np.array([0.1, np.nan]))
    from models.mean_patch import fit_mean_patch

    plain = fit_mean_patch(synthetic, fitted[3])
    with pytest.raises(ValueError, match="images alone"):
        refine_images(plain, synthetic, condition=np.radians(yaw_deg))


def test_the_checkpoint_carries_poses_pairing_and_differences(fitted, tmp_path):
    from models.checkpoint import save_checkpoint
    from models.simgan import load_refiner

    net, synthetic, yaw_deg, *_ = fitted
    path = save_checkpoint(tmp_path / "refiner.pt", net, None, None, 0, {}, model_name=net.model_name)
    back = load_refiner(path, channels=1)
    assert isinstance(back, PoseMeanPatchRefiner) and back.cfg == net.cfg
    yaw = np.radians(yaw_deg)
    assert np.array_equal(refine_images(back, synthetic, condition=yaw),
                          refine_images(net, synthetic, condition=yaw))


def test_training_batches_cannot_refine_with_it(fitted):
    from models.refined_source import RefinedSource

    class Source:
        batch_size = 4

    with pytest.raises(ValueError, match="synthloop refine"):
        RefinedSource(Source(), fitted[0])


@pytest.mark.parametrize("bad, match", [
    ({"poses_deg": (0.0, -15.0)}, "ascending"),
    ({"poses_deg": ()}, "distinct finite"),
    ({"sign": 2}, "sign"),
    ({"strength": 5.0}, "strength"),
])
def test_a_bad_config_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        PoseMeanPatchConfig(**bad)


def test_colour_images_are_refused_by_the_fit():
    rgb = np.zeros((20, 6, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="grayscale"):
        fit_pose_mean_patch_refiner(rgb, np.zeros(20), rgb, np.zeros(20))
