"""Face model: the ICT importer on tiny OBJ files, loading and its errors, the fallback
head, and the derived landmark sets (contour candidates, dense sets)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from synth import face_loading as fl
from synth import face_model as fm
from synth.face_fallback import fallback_face_model
from synth.face_loading import load_face_model
from synth.face_model import (
    IBUG68_MIRROR,
    farthest_point_sampling,
    import_ict,
    model_fingerprint,
    read_obj,
    symmetric_farthest_point_sampling,
)
from synthloop.errors import DataFormatError

ICT = fl.DEFAULT_PATH
needs_ict = pytest.mark.skipif(not ICT.is_file(), reason="ICT-FaceKit asset not in ../shared")


# --------------------------------------------------------------------------- tiny ICT clone


def _grid(n: int = 10) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """An n x n vertex grid bulging toward +z, with (n-1)^2 quads (0-based ids)."""
    ys, xs = np.mgrid[0:n, 0:n].astype(float)
    v = np.stack([xs - n / 2, n / 2 - ys, 3.0 - 0.05 * ((xs - n / 2) ** 2 + (ys - n / 2) ** 2)], -1)
    quads = [(r * n + c, (r + 1) * n + c, (r + 1) * n + c + 1, r * n + c + 1)
             for r in range(n - 1) for c in range(n - 1)]
    return v.reshape(-1, 3), quads


def _write_obj(path: Path, v: np.ndarray, quads=None) -> None:
    lines = ["# test mesh", "mtllib none.mtl", "o head"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v]
    lines += [f"vt {i / len(v):.4f} 0.5" for i in range(len(v))]
    lines += ["vn 0 0 1"]
    if quads:
        lines += ["f " + " ".join(f"{i + 1}/{i + 1}/1" for i in q) for q in quads]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def tiny_ict(tmp_path: Path) -> tuple[Path, np.ndarray, dict]:
    src = tmp_path / "ICT-FaceKit" / "FaceXModel"
    src.mkdir(parents=True)
    v, quads = _grid()
    _write_obj(src / "generic_neutral_mesh.obj", v, quads)
    rng = np.random.default_rng(0)
    shapes = {}
    for name in ("identity000", "identity001", "identity002", "jawOpen", "eyeBlink_L"):
        d = rng.normal(0, 0.1, v.shape)
        shapes[name] = d
        _write_obj(src / f"{name}.obj", v + d, quads)
    cfg = {"expressions": ["jawOpen", "eyeBlink_L"],
           "idx_to_landmark_verts": [int(i) for i in rng.integers(0, len(v), 68)]}
    (src / "vertex_indices.json").write_text(json.dumps(cfg))
    return src.parent, v, {"shapes": shapes, "quads": quads, "cfg": cfg}


def test_import_ict_converts_a_clone(tiny_ict, tmp_path):
    root, v, info = tiny_ict
    out = import_ict(root, tmp_path / "out" / "ict.npz")  # the clone root or FaceXModel/
    assert out.is_file() and not list(out.parent.glob(".*tmp*"))
    with np.load(out) as z:
        assert set(fm.REQUIRED_KEYS) <= set(z.files)
        assert z["identity_basis"].dtype == np.float16 and z["identity_basis"].shape == (3, 100, 3)
        tris = z["triangles"]
        assert len(tris) == 2 * len(info["quads"])  # quads split in two
        a, b, c, d = info["quads"][0]
        assert tris[:2].tolist() == [[a, b, c], [a, c, d]]
        np.testing.assert_allclose(z["vertices"], v, atol=1e-5)
        np.testing.assert_allclose(z["expression_basis"][0], info["shapes"]["jawOpen"], atol=2e-3)
        np.testing.assert_allclose(z["identity_basis"][2], info["shapes"]["identity002"], atol=2e-3)
        assert list(z["expression_names"]) == ["jawOpen", "eyeBlink_L"]
        assert z["landmarks68"].tolist() == info["cfg"]["idx_to_landmark_verts"]
    m = load_face_model(out)
    assert m.n_vertices == 100 and m.n_identity == 3 and m.expression_names == ("jawOpen", "eyeBlink_L")
    assert len(m.contour_candidates) == 17 and m.source == str(out)


def test_import_ict_refuses_a_broken_clone(tiny_ict, tmp_path):
    root, v, _ = tiny_ict
    folder = root / "FaceXModel"
    _write_obj(folder / "eyeBlink_L.obj", v[:-1])
    with pytest.raises(DataFormatError, match="99 vertices"):
        import_ict(folder, tmp_path / "x.npz")
    (folder / "eyeBlink_L.obj").unlink()
    with pytest.raises(DataFormatError, match="missing morph target"):
        import_ict(folder, tmp_path / "x.npz")
    with pytest.raises(DataFormatError, match="not an ICT-FaceKit clone"):
        import_ict(tmp_path / "nowhere", tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_read_obj_reports_file_and_line(tmp_path):
    p = tmp_path / "bad.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 x\n")
    with pytest.raises(DataFormatError) as e:
        read_obj(p)
    assert e.value.line == 4 and "bad.obj:4" in str(e.value)
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3 4\nf -1 -2 -3\n")
    v, f = read_obj(p)
    assert f.tolist() == [[0, 1, 2], [0, 2, 3], [3, 2, 1]]


# --------------------------------------------------------------------------- load errors


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _valid_arrays(n: int = 80) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"vertices": rng.normal(size=(n, 3)).astype(np.float32),
            "triangles": rng.integers(0, n, (40, 3)).astype(np.int32),
            "identity_basis": np.zeros((2, n, 3), np.float16),
            "expression_basis": np.zeros((1, n, 3), np.float16),
            "expression_names": np.array(["jawOpen"]),
            "landmarks68": np.arange(68, dtype=np.int32)}


def test_missing_asset_says_how_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(DataFormatError, match="import-ict") as e:
        load_face_model(tmp_path / "nope.npz")
    assert "nope.npz" in str(e.value) and "ICT-FaceKit" in str(e.value)
    monkeypatch.setenv(fl.ENV_VAR, str(tmp_path / "also-missing.npz"))
    with pytest.raises(DataFormatError, match="also-missing.npz"):
        load_face_model()


def test_absent_default_asset_falls_back(monkeypatch, tmp_path):
    monkeypatch.delenv(fl.ENV_VAR, raising=False)
    monkeypatch.setattr(fl, "DEFAULT_PATH", tmp_path / "absent.npz")
    m = load_face_model()
    assert m.is_fallback and m is fallback_face_model()


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("landmarks68"), "lacks landmarks68"),
    (lambda a: a.update(vertices=np.zeros((80, 2), np.float32)), "vertices must be"),
    (lambda a: a.update(identity_basis=np.zeros((2, 79, 3), np.float16)), "identity_basis must be"),
    (lambda a: a.update(triangles=np.full((4, 3), 80, np.int32)), "outside 0..79"),
    (lambda a: a.update(landmarks68=np.full(68, 500, np.int32)), "landmarks68 has vertex ids"),
    (lambda a: a.update(landmarks68=np.arange(60, dtype=np.int32)), "68 vertex ids"),
    (lambda a: a.update(expression_names=np.array(["a", "b"])), "2 expression names"),
    (lambda a: a.update(triangles=np.zeros((4, 3), np.float32)), "integer vertex ids"),
])
def test_malformed_asset_is_a_data_format_error(tmp_path, change, message):
    arrays = _valid_arrays()
    change(arrays)
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataFormatError, match=message) as e:
        load_face_model(path)
    assert "bad.npz" in str(e.value) and "import-ict" in str(e.value)


def test_truncated_asset(tmp_path):
    path = _npz(tmp_path / "m.npz", **_valid_arrays())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataFormatError, match="unreadable face model"):
        load_face_model(path)


# --------------------------------------------------------------------------- fallback head


def test_fallback_head_landmarks_sit_in_sensible_places():
    m = fallback_face_model()
    L = m.vertices[m.landmarks68]
    y = L[:, 1]
    assert y[17:27].min() > y[36:48].max()  # brows above the eyes
    assert y[36:48].min() > y[30] > y[51] > y[57] > y[8]  # eyes, nose tip, lips, chin
    assert L[30, 2] == pytest.approx(L[:, 2].max())  # the nose tip sticks out most
    np.testing.assert_allclose(L[:17, 0], -L[16::-1, 0], atol=0.2)  # jaw mirror-symmetric
    assert L[36, 0] < L[39, 0] < L[42, 0] < L[45, 0]  # eye corners left to right
    assert np.all(m.landmarks68 < m.face_vertex_count)
    assert {"jawOpen", "eyeBlink_L", "mouthSmile_R"} <= set(m.expression_names)
    assert 2000 < len(m.triangles) < 20000


def test_dense_sets_and_contour_candidates():
    m = fallback_face_model()
    d5, d10 = m.dense_sets["dense500"], m.dense_sets["dense1001"]
    assert len(d5) == 500 and len(d10) == 1001
    assert np.array_equal(d10[:500], d5) and np.array_equal(d5[:68], m.landmarks68)
    assert len(np.unique(d10)) == 1001 and d10.max() < m.face_vertex_count
    cc = m.contour_candidates
    assert len(cc) == 17 and cc[8].tolist() == [m.landmarks68[8]]
    for j in (*range(8), *range(9, 17)):
        assert cc[j][0] == m.landmarks68[j] and len(cc[j]) >= 3
        xs = m.vertices[cc[j], 0]
        assert np.all(np.sign(xs) == np.sign(xs[0]))  # one side of the face
        assert np.all(np.abs(xs) <= abs(xs[0]) + 1e-5)  # medial to the landmark


def test_farthest_point_sampling_is_deterministic_and_spread():
    rng = np.random.default_rng(3)
    pts = rng.random((400, 3))
    a = farthest_point_sampling(pts, 50, seeds=[5, 5, 7])
    assert np.array_equal(a, farthest_point_sampling(pts, 50, seeds=[5, 7]))
    assert a[:2].tolist() == [5, 7] and len(np.unique(a)) == 50
    with pytest.raises(ValueError):
        farthest_point_sampling(pts, 1, seeds=[1, 2])


def test_fingerprint_tracks_content():
    m = fallback_face_model()
    assert model_fingerprint(m) == model_fingerprint(m) and len(model_fingerprint(m)) == 12
    # the dense sets are derived, but a batch's dense labels depend on how: they count
    other = dataclasses.replace(m, dense_sets={k: v[::-1].copy() for k, v in m.dense_sets.items()})
    assert model_fingerprint(other) != model_fingerprint(m)


# --------------------------------------------------------------------------- mirror symmetry


def test_ibug68_mirror_is_the_annotation_schemes_involution():
    m = np.asarray(IBUG68_MIRROR)
    assert sorted(m) == list(range(68)) and np.array_equal(m[m], np.arange(68))
    assert m[:17].tolist() == list(range(16, -1, -1))  # jaw: ear to ear
    assert m[36:42].tolist() == [45, 44, 43, 42, 47, 46]  # outer, upper lid, inner, lower lid
    assert set(m[36:42]) == set(range(42, 48))
    assert np.array_equal(np.nonzero(m == np.arange(68))[0], [8, 27, 28, 29, 30, 33, 51, 57, 62, 66])


def assert_mirror_consistent(model, atol):
    """Every dense set is closed under the mesh's mirror: reflecting point i about x = 0
    (the plane of both models) lands on point perm[i]; the first 68 use IBUG68_MIRROR."""
    assert set(model.dense_mirror) == set(model.dense_sets)
    for name, ids in model.dense_sets.items():
        perm = model.dense_mirror[name]
        assert np.array_equal(perm[perm], np.arange(len(ids)))
        assert np.array_equal(perm[:68], IBUG68_MIRROR)
        v = model.vertices[ids].astype(np.float64)
        np.testing.assert_allclose(v[perm] * [-1, 1, 1], v, atol=atol)
        assert np.array_equal(model.dense_mirror["dense1001"][:len(ids)], perm)  # a prefix
        midline = perm == np.arange(len(ids))
        assert midline.sum() >= 10 and np.abs(v[midline, 0]).max() < atol


def test_dense_sets_are_sampled_in_mirror_pairs():
    assert_mirror_consistent(fallback_face_model(), atol=1e-6)


def test_symmetric_sampling_fills_odd_sizes_from_the_midline():
    rng = np.random.default_rng(0)
    half = rng.random((60, 2)) + [0.1, 0.0]
    mid = np.c_[np.zeros(5), rng.random(5)]
    pts = np.concatenate([half, half * [-1, 1], mid])
    partner = np.concatenate([np.arange(60, 120), np.arange(60), np.arange(120, 125)])
    ids = symmetric_farthest_point_sampling(pts, [11, 30, 41], [0, 60, 120], partner)
    assert len(ids) == 41 and len(np.unique(ids)) == 41 and ids[:3].tolist() == [0, 60, 120]
    for k in (11, 30, 41):
        assert set(partner[ids[:k]]) == set(ids[:k])  # each prefix closed under mirroring
    with pytest.raises(ValueError, match="mirror pairs"):  # an odd size and no midline point
        symmetric_farthest_point_sampling(pts[:120], [5], [0, 60], partner[:120])


# --------------------------------------------------------------------------- the real asset


@needs_ict
def test_ict_asset_loads_with_derived_sets():
    m = load_face_model(ICT)
    assert m.n_vertices == fm.ICT_VERTEX_COUNT and m.n_identity == 100 and m.n_expression == 53
    assert m.face_vertex_count == fm.ICT_FACE_VERTICES and not m.is_fallback
    assert len(m.dense_sets["dense500"]) == 500 and len(m.dense_sets["dense1001"]) == 1001
    assert_mirror_consistent(m, atol=0.02)  # ICT is symmetric to ~50 um
    assert all(len(c) >= 3 for j, c in enumerate(m.contour_candidates) if j != 8)
    parts = np.bincount(m.vertex_part, minlength=len(fm.PART_NAMES))
    assert parts[fm.SCLERA] and parts[fm.IRIS] and parts[fm.TEETH] and parts[fm.LASH]
    assert (m.eyeball_id == 1).sum() == (m.eyeball_id == 2).sum() > 1000
