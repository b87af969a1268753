"""The benchmark commands keep working (tiny budgets; results go to a temporary folder)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# slow: each runs a benchmark in a subprocess (tens of seconds to a minute)
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _run(module, *args, tmp_path):
    env = {**os.environ, "SYNTHLOOP_BENCH_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_eye_generation_benchmark_prints_a_table_and_writes_json(tmp_path):
    out = _run("benchmarks.bench_eye_generation", "--quick", "--no-compile", tmp_path=tmp_path)
    assert "img_s_median" in out and "best one-core median" in out
    rows = json.loads((tmp_path / "eye_generation_quick.json").read_text())["rows"]
    assert {r["threads"] for r in rows if r["config"] == "renderer"} >= {1}
    assert all(r["img_s_median"] > 0 for r in rows)


def test_train_throughput_benchmark(tmp_path):
    out = _run("benchmarks.bench_train_throughput", "--quick", tmp_path=tmp_path)
    assert "ms_per_step" in out
    rows = json.loads((tmp_path / "train_throughput_quick.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"source_only", "dann", "daln"}
