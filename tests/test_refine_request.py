"""A refine request refuses settings its method would ignore."""

from __future__ import annotations

import pytest

from synthloop.errors import UsageError
from synthloop.refine import RefineRequest
from synthloop.refine_methods import MEAN_PATCH_STRENGTH, POSE_MEAN_PATCH_STRENGTH, REFINE_METHODS


def test_simgan_settings_with_the_mean_patch_are_named_and_refused():
    ok = RefineRequest(batch="b", real="r", out="o", method="mean-patch", strength=1.0)
    assert ok.strength == 1.0
    with pytest.raises(UsageError, match="trains nothing; these are simgan settings: --steps, "
                                         "--pretrain-steps"):
        RefineRequest(batch="b", real="r", out="o", method="mean-patch", steps=50,
                      pretrain_discriminator=3)


def test_a_strength_without_the_mean_patch_is_refused():
    assert RefineRequest(batch="b", real="r", out="o").strength is None
    with pytest.raises(UsageError, match="mean-patch, pose-mean-patch, landmark-patch and "
                                         r"real-context settings: --strength \(add --method mean-patch"):
        RefineRequest(batch="b", real="r", out="o", strength=0.3)


@pytest.mark.parametrize("method, default", [("mean-patch", MEAN_PATCH_STRENGTH),
                                             ("pose-mean-patch", POSE_MEAN_PATCH_STRENGTH),
                                             ("landmark-patch", MEAN_PATCH_STRENGTH)])
def test_each_patch_takes_its_own_default_strength_unless_one_is_given(method, default):
    extra = {"landmarker": "run"} if method == "landmark-patch" else {}
    config = REFINE_METHODS[method].config
    unset = RefineRequest(batch="b", real="r", out="o", method=method, **extra)
    assert config(unset).strength == default
    given = RefineRequest(batch="b", real="r", out="o", method=method, strength=0.3, **extra)
    assert config(given).strength == 0.3 and config(given).to_dict()["strength"] == 0.3


def test_the_pose_column_belongs_to_the_per_pose_patch_alone():
    ok = RefineRequest(batch="b", real="r", out="o", method="pose-mean-patch", strength=1.0,
                       pose_column="yaw_deg")
    assert ok.pose_column == "yaw_deg"
    with pytest.raises(UsageError, match="pose-mean-patch settings: --pose-column"):
        RefineRequest(batch="b", real="r", out="o", method="mean-patch", pose_column="yaw_deg")
    with pytest.raises(UsageError, match="pose-mean-patch trains nothing; these are simgan "
                                         "settings: --steps"):
        RefineRequest(batch="b", real="r", out="o", method="pose-mean-patch", steps=10)


def test_the_landmarker_belongs_to_the_methods_that_align_by_the_points():
    for method in ("landmark-patch", "real-context"):
        ok = RefineRequest(batch="b", real="r", out="o", method=method, landmarker="run")
        assert ok.landmarker == "run"
        assert REFINE_METHODS[method].config(ok).to_dict()["landmarker"] == "run"
    with pytest.raises(UsageError, match="landmark-patch and real-context settings: --landmarker"):
        RefineRequest(batch="b", real="r", out="o", method="mean-patch", landmarker="run")


def test_the_command_line_says_so_before_reading_anything(tmp_path):
    from tests.cli_inprocess import run_cli

    r = run_cli("refine", str(tmp_path / "no-batch"), "--real", str(tmp_path), "--out",
                str(tmp_path / "o"), "--method", "mean-patch", "--consistency", "0.3",
                env={"SYNTHLOOP_HOME": str(tmp_path / "home")})
    assert r.returncode == 2 and "--consistency" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_an_unknown_method_is_refused_with_the_known_ones():
    with pytest.raises(UsageError, match="one of simgan, mean-patch, pose-mean-patch, "
                                         "landmark-patch, real-context, got 'cyclegan'"):
        RefineRequest(batch="b", real="r", out="o", method="cyclegan")


def test_the_real_context_needs_a_landmarker_and_its_strength_is_the_shading_share():
    bare = RefineRequest(batch="b", real="r", out="o", method="real-context")
    with pytest.raises(UsageError, match="--method real-context needs --landmarker MODEL"):
        REFINE_METHODS["real-context"].config(bare)
    config = REFINE_METHODS["real-context"].config
    unset = RefineRequest(batch="b", real="r", out="o", method="real-context", landmarker="run")
    assert config(unset).shading == 0.0  # the photograph's shading only when asked for
    given = RefineRequest(batch="b", real="r", out="o", method="real-context", landmarker="run",
                          strength=0.5)
    assert config(given).to_dict()["shading"] == 0.5
    too_far = RefineRequest(batch="b", real="r", out="o", method="real-context", landmarker="run",
                            strength=1.5)
    with pytest.raises(UsageError, match="--strength 1.5 for real-context .* 0 to 1"):
        config(too_far)
