"""What a loop leaves in the model registry: its best round's model (by the error on the
analysis part, never the held-out part), registered once however often the loop is run,
and the champion alias moved only when the new version beats the champion on the same
analysis part."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.flow, pytest.mark.gx, pytest.mark.slow]  # four whole small loops

TINY = dict(n_per_round=64, steps_per_round=2, patience=None)


@pytest.fixture(scope="module")
def sim_target(tmp_path_factory):
    from synth.targets import write_simulated_target

    return write_simulated_target(tmp_path_factory.mktemp("target") / "sim", 120, 3, labeled=True)


def _run(params):
    from flows.feedback_loop import feedback_loop

    state = feedback_loop(params, return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def test_the_best_round_is_registered_once_and_the_alias_moves_only_on_evidence(
        prefect_harness, sim_target):
    from mlflow.tracking import MlflowClient

    from catalog import Catalog
    from flows.feedback_loop import LoopParams
    from synthloop.settings import get_settings

    settings = get_settings()
    cat = Catalog(settings.catalog)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)

    def champion() -> str:
        return str(client.get_model_version_by_alias("synthloop-gaze", "champion").version)

    def versions() -> int:
        return len(client.search_model_versions("name='synthloop-gaze'"))

    first = LoopParams(real=str(sim_target), seed=3, rounds=2, **TINY)
    a = _run(first)
    ra = a["registered"]
    analysis = {r["round"]: cat.get_analysis(f"{a['loop_id']}-r{r['round']}-analysis")
                ["metrics"]["evaluation"]["real_error_analysis"] for r in a["rounds"]}
    assert ra["round"] == min(analysis, key=analysis.get)  # the analysis part chooses
    assert ra["analysis_error"] == pytest.approx(analysis[ra["round"]])
    assert ra["promoted"] and champion() == ra["version"]

    # the same loop again: reported, not registered twice
    assert _run(first)["registered"] == ra and versions() == 1

    # another loop scored on the same analysis part is comparable: the alias follows the
    # lower analysis error
    b = _run(LoopParams(real=str(sim_target), seed=4, rounds=1, open_loop=True, **TINY))
    rb = b["registered"]
    better = rb["analysis_error"] < ra["analysis_error"]
    assert rb["promoted"] == better
    assert champion() == (rb if better else ra)["version"]
    assert rb["reason"] == ("better than the champion" if better else "not better than the champion")

    # a loop validated on another analysis part (another split) is never compared with it
    held = champion()
    c = _run(LoopParams(real=str(sim_target), seed=5, rounds=1, holdout_frac=0.3, **TINY))
    rc = c["registered"]
    assert not rc["promoted"] and rc["reason"].startswith("not comparable with the champion")
    assert champion() == held and versions() == 3
