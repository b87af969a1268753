"""The command-line contract, run as a user runs it (a subprocess, real exit codes)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synth.shards import BatchReader


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "synthloop.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "batch"
    r = run("generate", "--task", "gaze", "-n", "400", "--seed", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out, r


def test_generate_prints_id_and_path(generated):
    out, r = generated
    batch_id, path = r.stdout.strip().split("\t")
    assert batch_id == BatchReader(out).batch_id
    assert Path(path) == out.resolve()
    assert BatchReader(out).n == 400


def test_generate_refuses_to_clobber_and_bad_distribution_is_named(generated, tmp_path):
    out, _ = generated
    r = run("generate", "-n", "10", "--seed", "0", "--out", str(out))
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "dist.json"
    bad.write_text('{"name": "x"}')
    r = run("generate", "-n", "10", "--seed", "0", "--out", str(tmp_path / "b"), "--distribution", str(bad))
    assert r.returncode == 2 and str(bad) in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.gx
def test_validate_exit_codes(generated, tmp_path):
    out, _ = generated
    good = tmp_path / "good"
    shutil.copytree(out, good)
    r = run("validate", str(good), "--json", "--no-docs")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["status"] == "accepted"

    # malformed input: exit 2, one line naming the file, no traceback
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    shard = broken / "shards" / "images-00000.npy"
    shard.write_bytes(shard.read_bytes()[:1000])
    r = run("validate", str(broken))
    assert r.returncode == 2
    assert "images-00000.npy" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run("validate", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "nowhere" in r.stderr


@pytest.mark.gx
def test_validate_fails_with_exit_1_and_names_the_expectation(tmp_path):
    import numpy as np

    from synth.eye_distribution import default_eye_distribution
    from synth.eye_generator import EyeGenerator, sample_scenes
    from synth.generate import eye_metadata
    from synth.shards import BatchWriter

    d = default_eye_distribution()
    scenes = sample_scenes(d, 300, 0)
    gen = EyeGenerator(d)
    out = tmp_path / "nan"
    with BatchWriter(out, task="gaze", dist=d, seed=0, n=300, generator=gen.settings) as w:
        for c in gen.iter_chunks(300, 0, scenes=scenes):
            rows = eye_metadata({k: v[c.start:c.start + len(c.images)] for k, v in scenes.items()}, c.geometry)
            rows.loc[rows.index[:3], "yaw"] = np.nan
            w.add(c.images, rows)
    r = run("validate", str(out), "--no-docs")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "quarantined" in r.stdout and "yaw" in r.stdout
    assert BatchReader(out).status.status == "quarantined"


def test_os_errors_are_one_line_exit_2(tmp_path):
    r = run("distribution", "--out", str(tmp_path))  # a folder, not a file
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(tmp_path) in r.stderr and len(r.stderr.strip().splitlines()) == 1
