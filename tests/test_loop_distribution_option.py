"""``synthloop loop --distribution``: the loop starts from a distribution file, and a bad
one is refused in one line before any server starts."""

from __future__ import annotations

import json

from tests.cli_inprocess import run_cli
from tests.test_loop_real import _eyes


def test_a_bad_distribution_file_is_refused_before_the_loop_starts(tmp_path):
    real = _eyes(tmp_path / "eyes", n=24, subjects=4)
    env = {"SYNTHLOOP_HOME": str(tmp_path / "home")}
    r = run_cli("loop", "--real", real, "--distribution", tmp_path / "missing.json", env=env)
    assert r.returncode == 2 and "missing.json: file not found" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not": "a distribution"}))
    r = run_cli("loop", "--real", real, "--distribution", bad, env=env)
    assert r.returncode == 2 and str(bad) in r.stderr and "Traceback" not in r.stderr
    assert not any((tmp_path / "home").rglob("manifest.json"))  # no batch generated


def test_the_file_is_what_the_loop_starts_from(tmp_path, monkeypatch):
    import flows.feedback_loop as flow_module
    from synthloop.loop.rounds import initial_distribution

    real = _eyes(tmp_path / "eyes", n=24, subjects=4)
    dist = "benchmarks/distributions/eyes-columbia-gaze-corners.json"
    seen = {}

    def stop(params, return_state=False):  # the flow itself is tested elsewhere
        seen["cfg"] = params.config()
        raise SystemExit(0)

    monkeypatch.setattr(flow_module, "feedback_loop", stop)
    r = run_cli("loop", "--real", real, "--distribution", dist,
                env={"SYNTHLOOP_HOME": str(tmp_path / "home")})
    assert r.returncode == 0, r.stderr
    assert seen["cfg"].distribution == dist
    assert initial_distribution(seen["cfg"]).image.centre == "corners"
