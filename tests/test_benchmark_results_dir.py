"""Where benchmarks write: the folder exists before the first plot is saved into it."""

from benchmarks.common import results_dir


def test_results_dir_creates_a_missing_bench_dir(tmp_path, monkeypatch):
    target = tmp_path / "not" / "yet"
    monkeypatch.setenv("SYNTHLOOP_BENCH_DIR", str(target))
    assert results_dir() == target
    assert target.is_dir()  # a plot written to results_dir() / "x.png" before save() works
