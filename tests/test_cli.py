"""The command-line contract, run as a user runs it (a subprocess, real exit codes).

The validate and preview checks call the same entry point in-process (``run_cli``): a
subprocess that imports Great Expectations costs ~5 s, and what they assert (exit code,
stdout, stderr lines) is the entry point's own behaviour."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synth.shards import BatchReader
from tests.cli_inprocess import run_cli


def run(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "synthloop.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300, env={**os.environ, **(env or {})})


#: Face commands on the built-in head: fast, and the same wherever ../shared is absent.
BUILTIN_FACES = {"SYNTHLOOP_FACE_MODEL": "builtin"}


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
    r = run_cli("validate", str(good), "--json", "--no-docs")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["status"] == "accepted"

    # malformed input: exit 2, one line naming the file, no traceback
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    shard = broken / "shards" / "images-00000.npy"
    shard.write_bytes(shard.read_bytes()[:1000])
    r = run_cli("validate", str(broken))
    assert r.returncode == 2
    assert "images-00000.npy" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_cli("validate", str(tmp_path / "nowhere"))
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
            rows["yaw"][:3] = np.nan
            w.add(c.images, rows)
    r = run_cli("validate", str(out), "--no-docs")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "quarantined" in r.stdout and "yaw" in r.stdout
    assert BatchReader(out).status.status == "quarantined"


def test_os_errors_are_one_line_exit_2(tmp_path):
    r = run("distribution", "--out", str(tmp_path))  # a folder, not a file
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(tmp_path) in r.stderr and len(r.stderr.strip().splitlines()) == 1


# --- face batches -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def face_batch(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-faces") / "faces"
    r = run("generate", "--task", "landmarks", "-n", "32", "--seed", "1", "--out", str(out),
            "--landmark-set", "dense1001", env=BUILTIN_FACES)
    assert r.returncode == 0, r.stderr
    return out, r


def test_generate_landmarks_writes_a_face_batch(face_batch):
    from synth.generate_faces import read_face_labels

    out, r = face_batch
    batch_id, path = r.stdout.strip().split("\t")
    reader = BatchReader(out)
    assert batch_id == reader.batch_id and Path(path) == out.resolve()
    assert reader.task == "landmarks" and reader.n == 32 and reader.image_shape == (128, 128, 3)
    assert "built-in fallback head" in r.stderr
    labels = read_face_labels(out)
    assert labels["dense1001"].shape == (32, 1001, 2) and "dense500" not in labels
    # eye-only options are refused for faces, face-only ones for eyes
    r = run("generate", "--task", "landmarks", "-n", "4", "--seed", "0", "--out", str(out.parent / "x"),
            "--device", "cuda", env=BUILTIN_FACES)
    assert r.returncode == 2 and "CPU" in r.stderr and not (out.parent / "x").exists()
    r = run("generate", "-n", "4", "--seed", "0", "--out", str(out.parent / "y"), "--landmark-set", "dense500")
    assert r.returncode == 2 and "--landmark-set" in r.stderr


@pytest.mark.gx
def test_validate_and_preview_a_face_batch(face_batch, tmp_path):
    out, _ = face_batch
    b = tmp_path / "faces"
    shutil.copytree(out, b)
    r = run_cli("validate", str(b), "--json", "--no-docs")
    assert r.returncode == 0, r.stdout + r.stderr
    verdict = json.loads(r.stdout.strip().splitlines()[-1])
    assert verdict["status"] == "accepted" and verdict["failing"] == []
    result = json.loads((b / "validation" / "result.json").read_text())
    assert set(result["suites"]) == {"face_batch.samples", "face_batch.coverage"}
    r = run_cli("preview", str(b), "--out", str(tmp_path / "grid.png"), "--count", "8")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_distribution_for_landmarks_is_the_face_distribution():
    from synth.face_distribution import FACE_FACTORS

    r = run("distribution", "--task", "landmarks")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["task"] == "landmarks" and [f["name"] for f in d["factors"]] == list(FACE_FACTORS)


def _tiny_ict_clone(root: Path) -> Path:
    """A 10 x 10 vertex grid in ICT-FaceKit's file layout: neutral mesh, identity and
    expression OBJs, vertex_indices.json (the importer reads nothing else)."""
    import numpy as np

    src = root / "ICT-FaceKit" / "FaceXModel"
    src.mkdir(parents=True)
    n = 10
    ys, xs = np.mgrid[0:n, 0:n].astype(float)
    v = np.stack([xs - n / 2, n / 2 - ys, 3.0 - 0.05 * ((xs - n / 2) ** 2 + (ys - n / 2) ** 2)], -1)
    v = v.reshape(-1, 3)
    quads = [(r * n + c, (r + 1) * n + c, (r + 1) * n + c + 1, r * n + c + 1)
             for r in range(n - 1) for c in range(n - 1)]
    faces = ["f " + " ".join(str(i + 1) for i in q) for q in quads]
    rng = np.random.default_rng(0)
    for name in ("generic_neutral_mesh", "identity000", "identity001", "jawOpen"):
        w = v if name == "generic_neutral_mesh" else v + rng.normal(0, 0.1, v.shape)
        (src / f"{name}.obj").write_text("\n".join([f"v {x:.5f} {y:.5f} {z:.5f}" for x, y, z in w]
                                                   + faces) + "\n")
    cfg = {"expressions": ["jawOpen"], "idx_to_landmark_verts": rng.integers(0, len(v), 68).tolist()}
    (src / "vertex_indices.json").write_text(json.dumps(cfg))
    return src.parent


def test_assets_import_ict(tmp_path):
    import numpy as np

    clone = _tiny_ict_clone(tmp_path / "src")
    out = tmp_path / "models" / "ict.npz"
    r = run("assets", "import-ict", str(clone), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(out.resolve())) and "100 vertices, 2 identity modes, 1 expressions" in r.stdout
    with np.load(out) as z:
        assert z["identity_basis"].shape == (2, 100, 3) and list(z["expression_names"]) == ["jawOpen"]
    # without --out: where SYNTHLOOP_FACE_MODEL points (never the shared asset in a test)
    env_out = tmp_path / "env" / "face.npz"
    r = run("assets", "import-ict", str(clone / "FaceXModel"), env={"SYNTHLOOP_FACE_MODEL": str(env_out)})
    assert r.returncode == 0, r.stderr
    assert env_out.is_file()
    # a folder that is not a clone: one line naming it, exit 2
    r = run("assets", "import-ict", str(tmp_path / "src"), "--out", str(tmp_path / "no.npz"))
    assert r.returncode == 2 and "not an ICT-FaceKit clone" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "no.npz").exists()


# --- error policy -------------------------------------------------------------------------

def _failing(exc):
    def cmd(_args):
        raise exc
    return cmd


def test_a_bug_keeps_its_traceback_and_exits_3(monkeypatch, capsys):
    from synthloop import cli
    from synthloop.cli import data_commands

    monkeypatch.setattr(data_commands, "cmd_distribution",
                        _failing(RuntimeError("mat1 and mat2 shapes cannot be multiplied")))
    assert cli.main(["distribution"]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "mat1 and mat2" in err
    assert err.strip().splitlines()[-1].startswith("synthloop distribution: unexpected RuntimeError")


@pytest.mark.parametrize("debug", [False, True])
def test_user_errors_are_one_line_unless_debugging(monkeypatch, capsys, debug):
    from synthloop import cli
    from synthloop.cli import data_commands
    from synthloop.errors import UsageError

    monkeypatch.setattr(data_commands, "cmd_distribution", _failing(UsageError("--x must be 2")))
    if debug:
        monkeypatch.setenv("SYNTHLOOP_DEBUG", "1")
    else:
        monkeypatch.delenv("SYNTHLOOP_DEBUG", raising=False)
    assert cli.main(["distribution"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "synthloop distribution: error: --x must be 2"
    assert ("Traceback" in err) == debug
