"""Batch folders under hostile or careless use (reliability audit: D1, D4, D9, D13).

Writers of one folder exclude each other and never replace a folder they did not mean
to; a killed or terminated writer leaves nothing that outlives the next write; a reader
opens nothing outside the batch folder and names manifest.json for every bad entry."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import synth.shards as shards
from synth.eye_distribution import default_eye_distribution
from synth.generate import generate_batch
from synth.generate_faces import read_face_labels
from synth.shards import BatchReader, BatchWriter, open_for_training, write_status
from synthloop.cli import main
from synthloop.errors import DataFormatError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("b") / "batch"
    generate_batch(out, n=16, seed=0, shard_size=8)
    return out


def _copy(batch: Path, tmp_path: Path, name: str = "copy") -> Path:
    dst = tmp_path / name
    shutil.copytree(batch, dst)
    return dst


def _edit_manifest(folder: Path, change) -> None:
    p = folder / "manifest.json"
    m = json.loads(p.read_text())
    change(m)
    p.write_text(json.dumps(m))


def _write_tiny(out: Path, **kw) -> BatchWriter:
    """A 4-sample batch without rendering (fast)."""
    w = BatchWriter(out, task="gaze", dist=default_eye_distribution(), seed=0, n=4, generator={}, **kw)
    return w


def _fill(w: BatchWriter) -> None:
    w.add(np.zeros((4, 36, 60), np.uint8), pd.DataFrame({"pitch": np.zeros(4)}))


def _one_line_naming(err: BaseException, path: Path) -> str:
    msg = str(err)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


# --- D1: two writers of one folder ------------------------------------------------------

def test_two_concurrent_writers_of_one_folder_exactly_one_wins(tmp_path):
    out = tmp_path / "same"
    # each thread meets the other once: mid-render (after its first chunk is in the
    # partial folder) or after its attempt failed, so the two writes overlap for sure
    meet = threading.Barrier(2, timeout=300)
    results: dict[int, object] = {}

    def write(seed: int) -> None:
        met = False

        def first_chunk(_k: int) -> None:
            nonlocal met
            if not met:
                met = True
                meet.wait()

        try:
            results[seed] = generate_batch(out, n=16, seed=seed, shard_size=8, progress=first_chunk)[0]
        except FileExistsError as e:
            results[seed] = e
        finally:
            if not met:
                meet.wait()

    threads = [threading.Thread(target=write, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results.values() if isinstance(r, str)]
    lost = [r for r in results.values() if isinstance(r, FileExistsError)]
    assert len(won) == 1 and len(lost) == 1, results
    assert "another writer" in _one_line_naming(lost[0], out)
    assert BatchReader(out).batch_id == won[0]
    assert os.listdir(tmp_path) == ["same"]  # no partial, no lock file


def test_final_rename_never_replaces_a_folder_that_appeared_meanwhile(tmp_path):
    out = tmp_path / "b"
    with pytest.raises(FileExistsError) as e, _write_tiny(out) as w:
        _fill(w)
        out.mkdir()  # someone else's folder, made while the batch was written
        (out / "keep.txt").write_text("theirs")
    assert "not replaced" in _one_line_naming(e.value, out)
    assert os.listdir(out) == ["keep.txt"] and (out / "keep.txt").read_text() == "theirs"
    assert os.listdir(tmp_path) == ["b"]


class _Killed(BaseException):
    """Stands for a kill: nothing after it runs in the writer."""


def test_overwrite_interrupted_mid_swap_never_leaves_the_folder_missing(batch, tmp_path, monkeypatch):
    out = _copy(batch, tmp_path, "b")
    real_replace, calls = os.replace, []

    def killed_after_first(src, dst):  # the process dies between the two renames of a swap
        calls.append(src)
        if len(calls) == 2:
            raise _Killed
        real_replace(src, dst)

    monkeypatch.setattr(shards.os, "replace", killed_after_first)
    with contextlib.suppress(_Killed), _write_tiny(out, overwrite=True) as w:
        _fill(w)
    monkeypatch.undo()
    assert BatchReader(out).n == 4  # the new batch, swapped in atomically
    assert os.listdir(tmp_path) == ["b"]


def test_old_batch_left_by_a_killed_overwrite_is_put_back(batch, tmp_path):
    old = _copy(batch, tmp_path, ".b.old-0123abcd")  # killed between the swap's two renames
    with _write_tiny(tmp_path / "other") as w:  # the next write into the same parent
        _fill(w)
    assert BatchReader(tmp_path / "b").batch_id == BatchReader(batch).batch_id
    assert not old.exists()


# --- D13: interrupted writers -----------------------------------------------------------

_PARTIAL_THEN_SLEEP = """
import sys, time
from synth.eye_distribution import default_eye_distribution
from synth.shards import BatchWriter
for out in sys.argv[1:]:
    w = BatchWriter(out, task="gaze", dist=default_eye_distribution(), seed=0, n=4, generator={})
    w.__enter__()
print("ready", flush=True)
time.sleep(600)
"""


def _partials(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}.partial-"))


def test_partials_of_killed_writers_are_swept_and_live_ones_kept(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", _PARTIAL_THEN_SLEEP, str(tmp_path / "big"),
                              str(tmp_path / "third")], stdout=subprocess.PIPE, cwd=REPO, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.kill()  # SIGKILL: no cleanup runs
        child.wait()
    assert _partials(tmp_path, "big") and _partials(tmp_path, "third")
    with _write_tiny(tmp_path / "live") as live:  # a writer still at work in the same parent
        generate_batch(tmp_path / "big", n=16, seed=0, shard_size=8)
        assert _partials(tmp_path, "big") == [] and _partials(tmp_path, "third") == []
        assert live.tmp.is_dir()
        _fill(live)
    assert sorted(os.listdir(tmp_path)) == ["big", "live"]


def test_sigterm_of_generate_cleans_up_like_ctrl_c(tmp_path):
    out = tmp_path / "big"
    cmd = [sys.executable, "-c", "import sys; from synthloop.cli import main; sys.exit(main())",
           "generate", "-n", "20000", "--seed", "3", "--out", str(out), "--no-compile"]
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not _partials(tmp_path, "big"):  # rendering has started
            assert child.poll() is None, child.stderr.read()
            threading.Event().wait(0.05)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=300)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1] == "synthloop generate: interrupted"
    assert os.listdir(tmp_path) == []


def test_a_stop_that_lands_in_a_gc_callback_is_not_dropped():
    """Raised inside a garbage-collector callback (the in-process Dask scheduler of
    ``generate --workers`` installs one), a KeyboardInterrupt is printed as "Exception
    ignored" and dropped, and the command ran on to the end (seen in one of nine kills)."""
    code = """
import gc, os, signal, threading, time
from synthloop.cli.common import stop_on_sigterm
stop_on_sigterm()
def slow_callback(phase, info):
    if phase == "start":
        time.sleep(0.5)  # the signal arrives in here
gc.callbacks.append(slow_callback)
threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
try:
    gc.collect()
    gc.callbacks.remove(slow_callback)
    time.sleep(10)
    print("ran on")
except KeyboardInterrupt:
    print("stopped")
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["stopped"], r.stderr


# --- D4: manifest paths stay inside the batch folder --------------------------------------

def _outside_copy(batch: Path, tmp_path: Path, rel: str) -> Path:
    outside = tmp_path / "outside" / Path(rel).name
    outside.parent.mkdir(exist_ok=True)
    shutil.copy(batch / rel, outside)
    return outside


ENTRIES = {  # manifest entry -> its file in the batch
    "shards": "shards/images-00000.npy", "metadata": "metadata.parquet",
    "distribution": "distribution.json",
}


def _entry(m: dict, key: str) -> dict:
    return m["shards"][0] if key == "shards" else m[key]


@pytest.mark.parametrize("key", sorted(ENTRIES))
@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_manifest_paths_leaving_the_folder_are_refused_before_anything_is_opened(
        batch, tmp_path, monkeypatch, key, how):
    d = _copy(batch, tmp_path)
    rel = ENTRIES[key]
    outside = _outside_copy(batch, tmp_path, rel)  # same bytes: the checksum would pass
    (d / rel).unlink()
    if how == "symlink":
        (d / rel).symlink_to(outside)
    else:
        target = "../outside/" + outside.name if how == "dotdot" else str(outside)
        _edit_manifest(d, lambda m: _entry(m, key).update(file=target))
    touched: list[Path] = []
    real_sha, real_load = shards.sha256_file, np.load
    monkeypatch.setattr(shards, "sha256_file", lambda p: touched.append(Path(p)) or real_sha(p))
    monkeypatch.setattr(np, "load", lambda p, *a, **k: touched.append(Path(p)) or real_load(p, *a, **k))
    with pytest.raises(DataFormatError) as e:
        BatchReader(d)
    msg = _one_line_naming(e.value, d / "manifest.json")
    assert f"{key}" in msg and ("outside" in msg or "not a relative path" in msg)
    assert not [p for p in touched if not p.resolve().is_relative_to(d.resolve())]


def test_extra_file_leaving_the_folder_is_refused(batch, tmp_path):
    d = _copy(batch, tmp_path)
    outside = _outside_copy(batch, tmp_path, "distribution.json")
    sha = hashlib.sha256(outside.read_bytes()).hexdigest()
    _edit_manifest(d, lambda m: m.update(extra_files=[{"file": "../outside/distribution.json",
                                                        "sha256": sha}]))
    with pytest.raises(DataFormatError, match=r"extra_files\[0\]\.file"):
        BatchReader(d)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_landmark_paths_leaving_the_folder_are_refused(tmp_path, how):
    root, outside = tmp_path / "faces", tmp_path / "outside.npy"
    (root / "landmarks").mkdir(parents=True)
    np.save(outside, np.zeros((2, 68, 2), np.float32))
    rel = {"dotdot": "../outside.npy", "absolute": str(outside), "symlink": "landmarks/p.npy"}[how]
    if how == "symlink":
        (root / rel).symlink_to(outside)
    doc = {"files": {"points68": {"file": rel, "sha256": hashlib.sha256(outside.read_bytes()).hexdigest(),
                                  "shape": [2, 68, 2], "dtype": "float32"}}}
    (root / "landmarks/landmarks.json").write_text(json.dumps(doc))
    with pytest.raises(DataFormatError) as e:
        read_face_labels(root)
    assert "points68" in _one_line_naming(e.value, root / "landmarks/landmarks.json")


# --- D9: ill-typed manifests and status files name their file ------------------------------

BAD_MANIFESTS = {
    "n as text": lambda m: m.update(n="three hundred"),
    "n as float": lambda m: m.update(n=16.5),
    "shard without sha256": lambda m: m["shards"][1].pop("sha256"),
    "shard file not a string": lambda m: m["shards"][0].update(file=7),
    "shard n not an integer": lambda m: m["shards"][0].update(n="8"),
    "image_shape not a list": lambda m: m.update(image_shape="36x60"),
    "image_shape of strings": lambda m: m.update(image_shape=["36", "60"]),
    "shards not a list": lambda m: m.update(shards={"a": 1}),
    "metadata not an object": lambda m: m.update(metadata="metadata.parquet"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_ill_typed_manifest_is_a_one_line_error_naming_it(batch, tmp_path, case):
    d = _copy(batch, tmp_path)
    _edit_manifest(d, BAD_MANIFESTS[case])
    with pytest.raises(DataFormatError) as e:
        BatchReader(d)
    _one_line_naming(e.value, d / "manifest.json")


def test_ill_typed_manifest_through_the_cli(batch, tmp_path, capsys):
    d = _copy(batch, tmp_path)
    _edit_manifest(d, BAD_MANIFESTS["shard without sha256"])
    assert main(["preview", str(d), "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"synthloop preview: error: {d / 'manifest.json'}: shards[1] lacks 'sha256'"]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"status": 3}', '{"status": "accepted", "failing": 5}'])
def test_corrupt_status_file_is_a_one_line_error_naming_it(batch, tmp_path, text):
    d = _copy(batch, tmp_path)
    write_status(d, "accepted")
    (d / "validation/status.json").write_text(text)
    with pytest.raises(DataFormatError) as e:
        open_for_training(d)
    _one_line_naming(e.value, d / "validation/status.json")
