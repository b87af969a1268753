"""Fuzzing a real batch folder: a mutated manifest.json or shard (with its sha256 fixed up,
the way a careless user "repairs" a batch) is either read fine or refused with the
project's user error, one line naming a file of that batch; never another exception,
nothing written, and nothing outside the folder opened or hashed.

``SYNTHLOOP_FUZZ_EXAMPLES=5000`` runs a longer fuzz (default: a quick deterministic one).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import synth.shards as shards
from synth.generate import generate_batch
from synth.shards import BatchReader
from synthloop.errors import DataFormatError, SynthloopError

EXAMPLES = int(os.environ.get("SYNTHLOOP_FUZZ_EXAMPLES", "100"))
FUZZ = settings(derandomize=True, max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SHARD = "shards/images-00000.npy"


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "batch"
    generate_batch(out, n=16, seed=0, shard_size=8)
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzzcases")


# --- what a hostile or careless edit puts into a manifest ------------------------------

PATHS = st.sampled_from([
    "../distribution.json", "../../../../../etc/passwd", "/etc/passwd", "/", "", ".", "..",
    "shards", "shards/../metadata.parquet", "shards/../../x", "manifest.json",
    "validation/status.json", "metadata.parquet", "distribution.json", SHARD,
    "shards/images-00001.npy", "a\x00b", "~/x", "shards//images-00000.npy", "\n", "ü/ñ",
])
NUMBERS = st.one_of(
    st.integers(-10, 40), st.integers(-2**70, 2**70), st.sampled_from([2**63, -2**63, 10**300]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
)
SCALARS = st.one_of(st.none(), NUMBERS, st.text(max_size=8), PATHS)
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)


def _nodes(obj, path=()):
    """Every (path, value) in the JSON tree, the root included."""
    yield path, obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield from _nodes(v, (*path, k))


def _set(root, path, value):
    if not path:
        return value
    parent = root
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    return root


def _delete(root, path):
    if path:
        parent = root
        for k in path[:-1]:
            parent = parent[k]
        del parent[path[-1]]
    return root


def _mutate_tree(data, m, batch: Path):
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path, value = data.draw(st.sampled_from(list(_nodes(m))), label="where")
        op = data.draw(st.sampled_from(["delete", "junk", "path", "number", "retarget"]), label="op")
        if op == "delete":
            m = _delete(m, path)
        elif op == "junk":
            m = _set(m, path, data.draw(JUNK, label="junk"))
        elif op == "path":
            m = _set(m, path, data.draw(PATHS, label="path"))
        elif op == "number":
            m = _set(m, path, data.draw(NUMBERS, label="number"))
        elif isinstance(value, dict) and path:  # retarget an entry at another file, sha fixed
            rel = data.draw(st.sampled_from(["metadata.parquet", "distribution.json", SHARD,
                                             "manifest.json"]), label="retarget")
            raw = (batch / rel).read_bytes()
            value.update(file=rel, sha256=hashlib.sha256(raw).hexdigest(), bytes=len(raw))
    return m


def _mutate_text(data, text: str) -> bytes:
    op = data.draw(st.sampled_from(["keep", "keep", "truncate", "bytes", "deep", "digits"]), label="raw")
    raw = text.encode()
    if op == "truncate":
        return raw[:data.draw(st.integers(0, len(raw)), label="cut")]
    if op == "bytes":
        at = data.draw(st.integers(0, len(raw)), label="at")
        return raw[:at] + data.draw(st.binary(min_size=1, max_size=8), label="junk bytes") + raw[at:]
    if op == "deep":
        return b"[" * 100_000 + b"]" * 100_000
    if op == "digits":
        return raw.replace(b'"n": 16', b'"n": ' + b"9" * 5000, 1)
    return raw


# --- what is checked for every input ----------------------------------------------------

def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _read_everything(folder: Path) -> None:
    r = BatchReader(folder)
    r.metadata, r.distribution, r.status, r.extra_files  # noqa: B018  (each reads a file)
    r.images()
    for _ in r.iter_images(chunk=5):
        pass


def _check(folder: Path) -> None:
    """Read fine, or a one-line user error naming a file of this batch; nothing written,
    nothing outside the folder hashed or loaded."""
    touched: list[Path] = []
    real_sha, real_load = shards.sha256_file, np.load

    def sha(p, *a):
        touched.append(Path(p))
        return real_sha(p, *a)

    def load(p, *a, **k):
        touched.append(Path(p))
        return real_load(p, *a, **k)

    before = _snapshot(folder)
    with mock.patch.object(shards, "sha256_file", sha), mock.patch.object(np, "load", load):
        try:
            _read_everything(folder)
        except SynthloopError as e:
            msg = str(e)
            assert "\n" not in msg, msg
            assert msg.startswith(str(folder)), msg
            if isinstance(e, DataFormatError):
                assert e.path.resolve().is_relative_to(folder.resolve()), msg
    assert _snapshot(folder) == before
    root = folder.resolve()
    assert all(p.resolve().is_relative_to(root) for p in touched), touched


def _case(batch: Path, scratch: Path) -> Path:
    folder = Path(tempfile.mkdtemp(dir=scratch)) / "batch"
    shutil.copytree(batch, folder)
    return folder


@FUZZ
@given(data=st.data())
def test_mutated_manifest_is_read_or_refused_cleanly(batch, scratch, data):
    folder = _case(batch, scratch)
    try:
        m = _mutate_tree(data, json.loads((folder / "manifest.json").read_text()), batch)
        text = json.dumps(m, indent=2)
        (folder / "manifest.json").write_bytes(_mutate_text(data, text))
        _check(folder)
    finally:
        shutil.rmtree(folder.parent)


def _npy_header(data) -> bytes:
    descr = data.draw(st.sampled_from(["|u1", "<f8", "|O", "<i2", "|b1", ">u2", "xyz", "|V3", "<U4"]))
    shape = data.draw(st.lists(st.integers(-2, 10**12) | st.sampled_from([8, 36, 60]), max_size=4))
    order = data.draw(st.booleans())
    head = f"{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {tuple(shape)!r}, }}"
    head = data.draw(st.sampled_from([head, head.replace("'shape'", "'shap'"), "{", "[]", "1/0"]))
    return head.encode("latin1")


def _mutate_shard(data, raw: bytes) -> bytes:
    op = data.draw(st.sampled_from(["truncate", "flip", "header", "version", "append", "empty"]))
    buf = bytearray(raw)
    if op == "truncate":
        return raw[:data.draw(st.integers(0, len(raw) - 1))]
    if op == "flip":
        for i in data.draw(st.lists(st.integers(0, 160), min_size=1, max_size=6)):
            buf[i] ^= data.draw(st.integers(1, 255))
        return bytes(buf)
    if op == "header":  # a new header dict, the pixel bytes kept
        hlen = int.from_bytes(raw[8:10], "little")
        head = _npy_header(data)
        head += b" " * ((-(10 + len(head) + 1)) % 64) + b"\n"
        return raw[:8] + len(head).to_bytes(2, "little") + head + raw[10 + hlen:]
    if op == "version":
        buf[6], buf[7] = data.draw(st.integers(0, 255)), data.draw(st.integers(0, 255))
        return bytes(buf)
    if op == "append":
        return raw + data.draw(st.binary(min_size=1, max_size=64))
    return b""


@FUZZ
@given(data=st.data())
def test_mutated_shard_with_its_checksum_fixed_is_read_or_refused_cleanly(batch, scratch, data):
    folder = _case(batch, scratch)
    try:
        shard = folder / SHARD
        shard.write_bytes(_mutate_shard(data, shard.read_bytes()))
        m = json.loads((folder / "manifest.json").read_text())
        raw = shard.read_bytes()
        m["shards"][0].update(sha256=hashlib.sha256(raw).hexdigest(), bytes=len(raw))
        (folder / "manifest.json").write_text(json.dumps(m))
        _check(folder)
    finally:
        shutil.rmtree(folder.parent)
