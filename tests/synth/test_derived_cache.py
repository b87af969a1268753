"""The per-machine cache of derived arrays: computed once per file content and code,
recomputed when either changes or the entry is damaged, never in the way of a result."""

from __future__ import annotations

import numpy as np
import pytest

from synth import face_model as fm
from synth.derived_cache import cache_root, cached_arrays
from synth.face_loading import load_face_model


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _counting(value):
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(5, dtype=np.int32) * value, "b": np.array([value], np.float64)}
    return compute, calls


def test_computed_once_per_file_content_and_code(cache, tmp_path):
    src = tmp_path / "input.bin"
    src.write_bytes(b"one")
    compute, calls = _counting(2)
    first = cached_arrays("kind", src, "code-v1", compute)
    again = cached_arrays("kind", src, "code-v1", compute)
    assert len(calls) == 1 and cache_root() == cache
    assert np.array_equal(first["a"], again["a"]) and again["a"].dtype == np.int32
    cached_arrays("kind", src, "code-v2", compute)  # the deriving code changed
    src.write_bytes(b"two")  # the file changed
    cached_arrays("kind", src, "code-v2", compute)
    assert len(calls) == 3


def test_a_damaged_entry_is_recomputed_and_replaced(cache, tmp_path):
    src = tmp_path / "input.bin"
    src.write_bytes(b"x")
    compute, calls = _counting(3)
    cached_arrays("kind", src, "c", compute)
    (entry,) = (cache / "kind").glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:40])
    out = cached_arrays("kind", src, "c", compute)
    assert len(calls) == 2 and out["b"][0] == 3
    assert cached_arrays("kind", src, "c", compute)["b"][0] == 3 and len(calls) == 2


def test_an_unwritable_cache_costs_the_computation_not_the_result(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SYNTHLOOP_CACHE", str(blocker))
    src = tmp_path / "input.bin"
    src.write_bytes(b"x")
    compute, calls = _counting(4)
    assert cached_arrays("kind", src, "c", compute)["b"][0] == 4
    assert cached_arrays("kind", src, "c", compute)["b"][0] == 4 and len(calls) == 2


def test_a_face_model_file_derives_its_sets_once_per_machine(cache, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    n = 1100  # room for both dense sets
    v = rng.normal(size=(n, 3)).astype(np.float32)
    path = tmp_path / "m.npz"
    np.savez(path, vertices=v, triangles=rng.integers(0, n, (100, 3)).astype(np.int32),
             identity_basis=np.zeros((2, n, 3), np.float16),
             expression_basis=np.zeros((1, n, 3), np.float16),
             expression_names=np.array(["jawOpen"]), landmarks68=np.arange(68, dtype=np.int32),
             face_vertex_count=np.array(n))
    first = load_face_model(path)
    fm._CACHE.clear()  # the in-process cache; a new process starts without it

    def no_derivation(*a, **k):
        raise AssertionError("derived again")
    monkeypatch.setattr(fm, "dense_sets", no_derivation)
    monkeypatch.setattr(fm, "contour_candidates", no_derivation)
    monkeypatch.setattr(fm, "mirror_partners", no_derivation)
    second = load_face_model(path)
    assert second.dense_mirror == first.dense_mirror == {}  # a random mesh has no mirror
    assert second is not first
    assert fm.model_fingerprint(second) == fm.model_fingerprint(first)
    assert list(second.dense_sets) == list(first.dense_sets) == ["dense500", "dense1001"]
    assert len(first.contour_candidates) > 0
    assert all(np.array_equal(a, b) for a, b in zip(second.contour_candidates,
                                                     first.contour_candidates, strict=True))


def test_the_mirror_permutations_come_from_the_cache_too(cache, monkeypatch):
    from synth.face_loading import default_model_path

    path = default_model_path()
    if path is None:
        pytest.skip("needs the ICT-FaceKit model in ../shared (a symmetric mesh)")
    first = load_face_model(path)
    derived = fm.mirror_permutations(first.vertices[: first.face_vertex_count], first.landmarks68,
                                     first.dense_sets)
    assert set(derived) == set(first.dense_sets)  # every ICT set is closed under the mirror
    fm._CACHE.clear()
    monkeypatch.setattr(fm, "mirror_partners", lambda *a, **k: pytest.fail("derived again"))
    second = load_face_model(path)
    assert set(second.dense_mirror) == set(derived)
    assert all(np.array_equal(second.dense_mirror[k], derived[k]) for k in derived)
