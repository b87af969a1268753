"""The morphable face model the face renderer draws from, and how it gets onto disk.

``FaceModel`` holds a neutral mesh, identity and expression delta bases, the 68 iBug
landmark vertices and what the renderer derives from them once per model: the candidate
vertices the 17 jaw-contour points slide along under yaw, and dense landmark sets.

The default model is ICT-FaceKit "Light" (USC ICT, MIT licence), converted to one npz
(schema in DESIGN.md) and kept beside the project in ``../shared/assets/ict-facekit/``,
never inside it. Where that file is absent (a fresh clone) :mod:`synth.face_loading` falls back to a
small procedural head (``synth/face_fallback.py``) so tests and the demo still run; a
file that is named explicitly but missing, or present but malformed, is an error that
says how to rebuild it from a clone of ICT-FaceKit. ``SYNTHLOOP_FACE_MODEL=builtin``
forces the procedural head even where the ICT file exists (fast, asset-free runs:
subprocess tests of the CLI, quick looks at the pipeline).

Coordinates are the asset's: centimetres, x toward the subject's left (image right in a
frontal view), y up, z out of the face toward a frontal camera.
"""

from __future__ import annotations

import json
import os
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from realdata.errors import DataFormatError

#: The environment variable that names the face model file (:mod:`synth.face_loading`).
ENV_VAR = "SYNTHLOOP_FACE_MODEL"
HOW_TO_GET = ("to build it, clone https://github.com/ICT-VGL/ICT-FaceKit (MIT licence) and run "
              "`synthloop assets import-ict <clone>/FaceXModel`, or point "
              f"{ENV_VAR} at a converted ict_facekit.npz")

REQUIRED_KEYS = ("vertices", "triangles", "identity_basis", "expression_basis",
                 "expression_names", "landmarks68")

# Part codes per vertex: which material a vertex carries and whether it is drawn at all.
SKIN, MOUTH, TEETH, SCLERA, IRIS, LASH, HIDDEN = range(7)
PART_NAMES = ("skin", "mouth", "teeth", "sclera", "iris", "lash", "hidden")

#: ICT-FaceKit vertex ranges (README "Face Model Topology"), [start, stop) -> part.
#: The eye sockets, gums, back teeth, lacrimal fluid, blend and occlusion meshes sit
#: behind other surfaces or exist for Unreal's shaders; they are not drawn.
ICT_FACE_VERTICES = 9409
ICT_VERTEX_COUNT = 26719
ICT_PARTS: tuple[tuple[int, int, int], ...] = (
    (0, 9409, SKIN),            # face
    (9409, 11248, SKIN),        # head and neck
    (11248, 13294, MOUTH),      # mouth socket
    (13294, 14062, HIDDEN),     # eye sockets
    (14062, 17039, MOUTH),      # gums and tongue
    (17039, 17895, HIDDEN),     # upper left molars and bicuspids
    (17895, 18391, TEETH),      # upper canines and incisors
    (18391, 20079, HIDDEN),     # upper right back teeth, lower left back teeth
    (20079, 20619, TEETH),      # lower canines and incisors
    (20619, 21451, HIDDEN),     # lower right back teeth
    (21451, 22221, SCLERA),     # eyeball left: sclera
    (22221, 23021, IRIS),       # eyeball left: iris
    (23021, 23791, SCLERA),     # eyeball right: sclera
    (23791, 24591, IRIS),       # eyeball right: iris
    (24591, 25351, HIDDEN),     # lacrimal fluid, eye blend, eye occlusion
    (25351, 26719, LASH),       # eyelashes
)
#: Eyeballs rotate rigidly for gaze: [start, stop) per eye (left = subject's left, +x).
ICT_EYEBALLS = ((21451, 23021), (23021, 24591))

DENSE_SIZES = {"dense500": 500, "dense1001": 1001}
JAW = range(17)
CHIN = 8

#: The iBug-68 left/right permutation (0-based): point ``k`` of a horizontally mirrored face
#: is point ``IBUG68_MIRROR[k]`` of the original. A fact of the annotation scheme, not of
#: any mesh: the jaw runs from one ear to the other, brows outer-to-inner on one side and
#: inner-to-outer on the other, each eye clockwise in the image from its outer or inner
#: corner, the lips from corner to corner. An involution; its fixed points are the chin (8),
#: the nose bridge (27-30), the nose-base centre (33) and the lips' centre line (51, 57,
#: 62, 66).
IBUG68_MIRROR: tuple[int, ...] = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  # jaw 0-16
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,                    # brows 17-21 | 22-26
    27, 28, 29, 30,                                            # nose bridge
    35, 34, 33, 32, 31,                                        # nose base 31-35
    45, 44, 43, 42, 47, 46,                                    # eye 36-41 -> 45 44 43 42 47 46
    39, 38, 37, 36, 41, 40,                                    # eye 42-47 -> 39 38 37 36 41 40
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,            # outer lips 48-59
    64, 63, 62, 61, 60, 67, 66, 65,                            # inner lips 60-67
)


@dataclass(frozen=True, eq=False)
class FaceModel:
    """A linear morphable face: ``vertices + identity_basis^T w_id + expression_basis^T w_ex``.

    vertices:          (V, 3) float32 neutral mesh, cm.
    triangles:         (T, 3) int32, every triangle of the asset (quads already split).
    identity_basis:    (K, V, 3) deltas; weights ~ N(0, 1) (ICT: K = 100, float16).
    expression_basis:  (E, V, 3) deltas; weights in [0, 1] (ICT: 53 ARKit-named shapes).
    expression_names:  E names, ``_L`` = the subject's left (+x).
    landmarks68:       (68,) vertex ids in iBug order (jaw points are fixed vertices here;
                       the renderer slides them along ``contour_candidates``).
    face_vertex_count: vertices [0, n) are the face area; dense points live there.
    vertex_part:       (V,) uint8 part code (SKIN ... HIDDEN) for materials and drawing.
    eyeball_id:        (V,) int8: 1 / 2 for the subject's left / right eyeball (rotated
                       rigidly for gaze), 0 elsewhere.
    contour_candidates: 17 int arrays, one per jaw point: a horizontal line of face
                       vertices across the cheek at that point's height, starting with
                       the landmark itself and running toward the face's midline.
    dense_sets:        name -> vertex ids; the first 68 are ``landmarks68``. On a
                       left/right symmetric mesh every set is closed under mirroring
                       (see :func:`dense_sets`), and ``dense_mirror`` holds its permutation.
    source:            where it came from (a path, or ``builtin-fallback``).
    mirror_sets:       ``dense_mirror`` as derived when the model was loaded (the machine's
                       cache has it); None: derived on first use (~0.65 s for ICT).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    expression_names: tuple[str, ...]
    landmarks68: np.ndarray
    face_vertex_count: int
    vertex_part: np.ndarray
    eyeball_id: np.ndarray
    contour_candidates: tuple[np.ndarray, ...]
    dense_sets: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    mirror_sets: Mapping[str, np.ndarray] | None = None

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    @property
    def n_identity(self) -> int:
        return len(self.identity_basis)

    @property
    def n_expression(self) -> int:
        return len(self.expression_basis)

    @property
    def is_fallback(self) -> bool:
        return self.source == "builtin-fallback"

    @cached_property
    def dense_mirror(self) -> dict[str, np.ndarray]:
        """name -> int32 permutation of each dense set that is closed under the mesh's
        left/right mirror: point ``k`` of a mirrored face is point ``perm[k]``
        (:func:`set_mirror_permutation`). Sets of an asymmetric mesh are left out."""
        if self.mirror_sets is not None:
            return dict(self.mirror_sets)
        return mirror_permutations(self.vertices[: self.face_vertex_count], self.landmarks68,
                                   self.dense_sets)


def mirror_permutations(face_vertices: np.ndarray, landmarks68: np.ndarray,
                        sets: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """name -> the mirror permutation of each set in ``sets`` that is closed under the
    mesh's left/right mirror (:attr:`FaceModel.dense_mirror`)."""
    partner = mirror_partners(face_vertices, landmarks68)
    out = {}
    for name, ids in sets.items():
        perm = set_mirror_permutation(ids, landmarks68, partner)
        if perm is not None:
            out[name] = perm
    return out


# --------------------------------------------------------------------------- derived sets


def contour_candidates(vertices: np.ndarray, landmarks68: np.ndarray, n_face: int,
                       band: float | None = None, spacing: float | None = None) -> tuple[np.ndarray, ...]:
    """For each jaw point, the face vertices on a horizontal line across the cheek at its
    height: same side of the midline, no farther out than the landmark, not behind it,
    and at least 35 % of its distance from the midline (so the nose never takes part).
    The line is thinned to one vertex (nearest in height) per ``spacing`` cm of x and
    ordered from the landmark inward. The chin point (8) keeps only its own vertex.
    ``band`` and ``spacing`` default to the mesh's median edge scale."""
    v = np.asarray(vertices, dtype=np.float64)[:n_face]
    scale = _median_spacing(v)
    band = 1.2 * scale if band is None else band
    spacing = 0.8 * scale if spacing is None else spacing
    out: list[np.ndarray] = []
    for j in JAW:
        lm = int(landmarks68[j])
        if j == CHIN:
            out.append(np.array([lm], dtype=np.int32))
            continue
        p = v[lm]
        side = 1.0 if j > CHIN else -1.0
        ax = side * v[:, 0]
        ok = ((ax >= 0.35 * abs(p[0])) & (ax <= abs(p[0]) + 1e-6)
              & (np.abs(v[:, 1] - p[1]) <= band) & (v[:, 2] >= p[2] - 1e-6))
        ids = np.nonzero(ok)[0]
        ids = ids[ids != lm]
        keep: dict[int, int] = {}
        for i in ids[np.argsort(np.abs(v[ids, 1] - p[1]), kind="stable")]:
            keep.setdefault(int(np.floor(ax[i] / spacing)), int(i))
        line = np.array(sorted(keep.values(), key=lambda i: -ax[i]), dtype=np.int64)
        out.append(np.concatenate([[lm], line]).astype(np.int32))
    return tuple(out)


def _median_spacing(v: np.ndarray) -> float:
    """A mesh-scale length: median nearest-neighbour distance over a vertex sample."""
    rng = np.random.default_rng(0)
    sample = v[rng.choice(len(v), size=min(len(v), 400), replace=False)]
    d = np.linalg.norm(sample[:, None, :] - v[None, :, :], axis=-1)
    d[d == 0] = np.inf
    return float(np.median(d.min(axis=1)))


def farthest_point_sampling(points: np.ndarray, k: int, seeds: Sequence[int]) -> np.ndarray:
    """Deterministic farthest-point sampling: start from ``seeds`` (kept first, in order,
    duplicates dropped) and repeatedly add the point farthest from everything chosen
    (ties go to the lowest index). Every prefix of the result is itself a valid sample,
    so a smaller set is a prefix of a larger one."""
    p = np.asarray(points, dtype=np.float64)
    chosen: list[int] = []
    for s in seeds:
        if int(s) not in chosen:
            chosen.append(int(s))
    if k < len(chosen):
        raise ValueError(f"k={k} is below the {len(chosen)} seed points")
    if k > len(p):
        raise ValueError(f"cannot choose {k} points from {len(p)}")
    d = np.full(len(p), np.inf)
    for s in chosen:
        d = np.minimum(d, np.linalg.norm(p - p[s], axis=1))
    while len(chosen) < k:
        i = int(np.argmax(d))
        chosen.append(i)
        d = np.minimum(d, np.linalg.norm(p - p[i], axis=1))
    return np.asarray(chosen, dtype=np.int32)


def symmetry_plane(points: np.ndarray, landmarks68: np.ndarray) -> tuple[np.ndarray, float]:
    """``(unit normal n, offset d)`` of the face's left/right symmetry plane ``n . p = d``,
    from the iBug mirror pairs of the landmark vertices: the normal is their mean
    difference direction, the offset the mean projection of their midpoints. The
    landmarks are a few dozen well-spread pairs, so this is both cheap and robust."""
    p = np.asarray(points, dtype=np.float64)
    lm = np.asarray(landmarks68)
    a, b = p[lm], p[lm[list(IBUG68_MIRROR)]]
    diff = b - a
    length = np.linalg.norm(diff, axis=1)
    if not (length > 0).any():
        raise ValueError("the landmark vertices have no distinct mirror pairs")
    # each pair appears twice (a -> b and b -> a): orient all like the widest before summing
    diff = diff * np.sign(diff @ diff[np.argmax(length)])[:, None]
    n = diff.sum(0)
    n /= np.linalg.norm(n)
    return n, float((((a + b) / 2.0) @ n).mean())


def mirror_partners(points: np.ndarray, landmarks68: np.ndarray,
                    tol: float | None = None) -> np.ndarray | None:
    """For each point (face vertices), its mirror vertex: reflect every point about
    :func:`symmetry_plane` and take the nearest point; ``partner[i] = j`` only when the
    match is mutual (``i``'s mirror is nearest ``j`` and ``j``'s nearest ``i``) and closer
    than ``tol`` (default: a quarter of the mesh's median vertex spacing), else -1.
    ``partner[i] == i`` on the midline. None when fewer than half the points find a
    partner (not a symmetric mesh)."""
    from scipy.spatial import cKDTree

    p = np.asarray(points, dtype=np.float64)
    n, d = symmetry_plane(p, landmarks68)
    reflected = p - 2.0 * ((p @ n) - d)[:, None] * n[None, :]
    tol = 0.25 * _median_spacing(p) if tol is None else tol
    dist, near = cKDTree(p).query(reflected)
    ok = (near[near] == np.arange(len(p))) & (dist <= tol)
    if ok.mean() < 0.5:
        return None
    return np.where(ok, near, -1).astype(np.int64)


def symmetric_farthest_point_sampling(points: np.ndarray, sizes: Sequence[int], seeds: Sequence[int],
                                      partner: np.ndarray) -> np.ndarray:
    """Farthest-point sampling in mirror pairs: after ``seeds`` (kept first, in order,
    duplicates dropped), repeatedly take the point farthest from everything chosen and
    its ``partner`` right after it (one point when it is its own partner). Each prefix of
    length ``s`` in ``sizes`` is closed under ``partner``: where one slot is left before
    such a size, the farthest self-mirrored (midline) point fills it. Points without a
    partner, and the partners of the seeds (the seeds carry their own, semantic,
    permutation), are never chosen. Deterministic (ties go to the lowest index)."""
    p = np.asarray(points, dtype=np.float64)
    partner = np.asarray(partner)
    chosen: list[int] = []
    for s in seeds:
        if int(s) not in chosen:
            chosen.append(int(s))
    stops = sorted({int(k) for k in sizes})
    if stops and stops[0] < len(chosen):
        raise ValueError(f"size {stops[0]} is below the {len(chosen)} seed points")
    ok = partner >= 0
    ok[chosen] = False
    ok[partner[chosen][partner[chosen] >= 0]] = False
    midline = ok & (partner == np.arange(len(p)))
    d = np.full(len(p), np.inf)
    for s in chosen:
        d = np.minimum(d, np.linalg.norm(p - p[s], axis=1))
    for stop in stops:
        while len(chosen) < stop:
            pool = midline if stop - len(chosen) == 1 else ok
            if not pool.any():
                raise ValueError(f"cannot fill {stop} points in mirror pairs from {len(p)}")
            i = int(np.argmax(np.where(pool, d, -np.inf)))
            for j in dict.fromkeys((i, int(partner[i]))):
                chosen.append(j)
                ok[j] = midline[j] = False
                d = np.minimum(d, np.linalg.norm(p - p[j], axis=1))
    return np.asarray(chosen, dtype=np.int32)


def set_mirror_permutation(ids: np.ndarray, landmarks68: np.ndarray,
                           partner: np.ndarray | None) -> np.ndarray | None:
    """The left/right permutation of a point set whose first 68 are ``landmarks68``:
    :data:`IBUG68_MIRROR` on those, the mesh's mirror partners (:func:`mirror_partners`)
    on the rest. None when the set is not closed under mirroring or the result is not an
    involution."""
    ids = np.asarray(ids)
    if partner is None or len(ids) < len(IBUG68_MIRROR) or not np.array_equal(ids[:68], landmarks68):
        return None
    pos = np.full(len(partner), -1, dtype=np.int64)
    pos[ids] = np.arange(len(ids))
    mates = partner[ids[68:]]
    perm = np.concatenate([np.asarray(IBUG68_MIRROR), np.where(mates >= 0, pos[mates], -1)])
    if (perm[68:] < 68).any() or not np.array_equal(perm[perm], np.arange(len(ids))):
        return None
    return perm.astype(np.int32)


def dense_sets(vertices: np.ndarray, landmarks68: np.ndarray, n_face: int,
               sizes: Mapping[str, int] = DENSE_SIZES) -> dict[str, np.ndarray]:
    """Dense landmark sets on the face area: the 68 landmark vertices first, then
    farthest-point samples over face vertices, so every set is a superset of the 68 and
    ``dense500`` is a prefix of ``dense1001``.

    On a left/right symmetric mesh the samples are drawn in mirror pairs
    (:func:`symmetric_farthest_point_sampling`), so every set is closed under mirroring and
    a horizontally flipped face has labels for all its points (``FaceModel.dense_mirror``).
    A mesh without that symmetry gets plain farthest-point samples (and no flips)."""
    v = np.asarray(vertices)[:n_face]
    wanted = {name: k for name, k in sizes.items() if k <= n_face}
    partner = mirror_partners(v, landmarks68)
    if partner is not None:
        try:
            ids = symmetric_farthest_point_sampling(v, list(wanted.values()), landmarks68, partner)
            return {name: ids[:k] for name, k in wanted.items()}
        except ValueError:
            pass  # too few pairs or no midline vertex: fall back to plain samples
    k_max = max(sizes.values())
    ids = farthest_point_sampling(v, min(k_max, n_face), landmarks68)
    return {name: ids[:k] for name, k in sizes.items() if k <= len(ids)}


def model_fingerprint(model: FaceModel) -> str:
    """A short content hash of the model (geometry, landmarks, dense sets, the first modes,
    names): batches record it, since the same seed only gives the same bytes with the same model."""
    import hashlib

    if model in _FINGERPRINTS:
        return _FINGERPRINTS[model]
    h = hashlib.sha256()
    for a in (model.vertices, model.triangles, model.landmarks68,
              model.identity_basis[:3], model.expression_basis[:3]):
        h.update(np.ascontiguousarray(a).tobytes())
    # the dense sets are derived, but how they are derived can change: a batch's dense
    # labels must match the model it names
    for name in sorted(model.dense_sets):
        h.update(name.encode())
        h.update(np.ascontiguousarray(model.dense_sets[name], dtype=np.int32).tobytes())
    h.update("|".join(model.expression_names).encode())
    h.update(f"{model.n_identity},{model.n_expression}".encode())
    fp = h.hexdigest()[:12]
    _FINGERPRINTS[model] = fp
    return fp


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------- loading


_CACHE: dict[tuple[str, int, float], FaceModel] = {}


def load_npz_face_model(path: Path) -> FaceModel:
    """A converted face model file (cached per path, size and mtime); a missing or
    malformed file raises DataFormatError saying how to rebuild it."""
    if not path.is_file():
        raise DataFormatError(path, f"face model not found; {HOW_TO_GET}")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime)
    if key in _CACHE:  # converting the bases and building the dense sets takes ~1 s
        return _CACHE[key]
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in REQUIRED_KEYS if k not in z.files]
            if missing:
                raise DataFormatError(path, f"not a face model: lacks {', '.join(missing)}; {HOW_TO_GET}")
            d = {k: z[k] for k in z.files}
    except DataFormatError:
        raise
    except Exception as e:  # zipfile/pickle/format errors of all kinds
        raise DataFormatError(path, f"unreadable face model ({e}); {HOW_TO_GET}") from None
    model = model_from_arrays(d, source=str(path), path=path)
    _CACHE.clear()
    _CACHE[key] = model
    return model


def model_from_arrays(d: Mapping[str, np.ndarray], source: str, path: str | Path | None = None) -> FaceModel:
    """Validate the npz arrays and derive what the renderer needs. Errors name ``path``."""
    where = Path(path) if path is not None else Path(source)

    def bad(problem: str) -> DataFormatError:
        return DataFormatError(where, f"malformed face model: {problem}; {HOW_TO_GET}")

    v = np.asarray(d["vertices"])
    if v.ndim != 2 or v.shape[1] != 3 or len(v) < 4 or not np.issubdtype(v.dtype, np.floating):
        raise bad(f"vertices must be (V, 3) floats, got {v.shape} {v.dtype}")
    if not np.all(np.isfinite(v)):
        raise bad("vertices contain NaN or infinity")
    n = len(v)
    tris = _check_index_array(d["triangles"], n, "triangles", bad, ncols=3)
    for key in ("face_triangles", "headneck_triangles"):
        if key in d:
            _check_index_array(d[key], n, key, bad, ncols=3)
    bases = {}
    for key in ("identity_basis", "expression_basis"):
        b = np.asarray(d[key])
        if b.ndim != 3 or b.shape[1:] != (n, 3) or not np.issubdtype(b.dtype, np.floating):
            raise bad(f"{key} must be (K, {n}, 3) floats, got {b.shape} {b.dtype}")
        if not np.all(np.isfinite(b)):
            raise bad(f"{key} contains NaN or infinity")
        bases[key] = b
    names = tuple(str(x) for x in np.asarray(d["expression_names"]).reshape(-1))
    if len(names) != len(bases["expression_basis"]):
        raise bad(f"{len(names)} expression names for {len(bases['expression_basis'])} expression shapes")
    lm = _check_index_array(d["landmarks68"], n, "landmarks68", bad)
    if lm.shape != (68,):
        raise bad(f"landmarks68 must hold 68 vertex ids, got shape {lm.shape}")
    n_face = int(d["face_vertex_count"]) if "face_vertex_count" in d else min(ICT_FACE_VERTICES, n)
    if not 0 < n_face <= n:
        raise bad(f"face_vertex_count {n_face} outside 1..{n}")
    if np.any(lm >= n_face):
        raise bad("landmarks68 must lie in the face area (ids below face_vertex_count)")
    part, eyeball = _parts(d, n, bad)
    vertices = v.astype(np.float32)
    return FaceModel(
        vertices=vertices,
        triangles=tris.astype(np.int32),
        identity_basis=bases["identity_basis"],
        expression_basis=bases["expression_basis"],
        expression_names=names,
        landmarks68=lm.astype(np.int32),
        face_vertex_count=n_face,
        vertex_part=part,
        eyeball_id=eyeball,
        **_derived_sets(vertices, lm, n_face, path),
        source=source,
    )


def _derived_sets(vertices: np.ndarray, lm: np.ndarray, n_face: int,
                  path: str | Path | None) -> dict[str, Any]:
    """The contour candidates, dense sets and their mirror permutations; for a model file,
    from the machine's cache (:mod:`synth.derived_cache`, keyed by the file and this
    module's code): deriving them takes ~3 s, in every process that loads the model."""
    from synth.derived_cache import cached_arrays, source_fingerprint

    def compute() -> dict[str, np.ndarray]:
        out = {f"contour_{i}": c for i, c in enumerate(contour_candidates(vertices, lm, n_face))}
        dense = dense_sets(vertices, lm, n_face)
        out.update({f"dense__{k}": v for k, v in dense.items()})
        out.update({f"mirror__{k}": v for k, v in mirror_permutations(vertices[:n_face], lm, dense).items()})
        return out

    arrays = compute() if path is None else cached_arrays(
        "face-models", Path(path), source_fingerprint(__name__), compute)
    n_contours = sum(k.startswith("contour_") for k in arrays)
    return {"contour_candidates": tuple(arrays[f"contour_{i}"] for i in range(n_contours)),
            "dense_sets": {k[len("dense__"):]: v for k, v in arrays.items() if k.startswith("dense__")},
            "mirror_sets": {k[len("mirror__"):]: v for k, v in arrays.items() if k.startswith("mirror__")}}


def _check_index_array(a, n: int, key: str, bad, ncols: int | None = None) -> np.ndarray:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.integer):
        raise bad(f"{key} must be integer vertex ids, got {a.dtype}")
    if ncols is not None and (a.ndim != 2 or a.shape[1] != ncols or len(a) == 0):
        raise bad(f"{key} must be (T, {ncols}), got {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= n):
        raise bad(f"{key} has vertex ids outside 0..{n - 1} (min {a.min()}, max {a.max()})")
    return a


def _parts(d: Mapping[str, np.ndarray], n: int, bad) -> tuple[np.ndarray, np.ndarray]:
    """Part codes and eyeball groups: stored ones if the file has them, ICT's layout for a
    full ICT mesh, else everything is skin."""
    if "vertex_part" in d:
        part = np.asarray(d["vertex_part"])
        if part.shape != (n,) or part.max(initial=0) >= len(PART_NAMES):
            raise bad(f"vertex_part must be ({n},) codes below {len(PART_NAMES)}")
        eyeball = np.asarray(d.get("eyeball_id", np.zeros(n)), dtype=np.int8)
        return part.astype(np.uint8), eyeball
    part = np.full(n, SKIN, dtype=np.uint8)
    eyeball = np.zeros(n, dtype=np.int8)
    if n == ICT_VERTEX_COUNT:
        for start, stop, code in ICT_PARTS:
            part[start:stop] = code
        for k, (start, stop) in enumerate(ICT_EYEBALLS, start=1):
            eyeball[start:stop] = k
        _ict_corneas(np.asarray(d["vertices"], dtype=np.float64), part, eyeball)
    return part, eyeball


CORNEA_DEG = 30.0


def _ict_corneas(v: np.ndarray, part: np.ndarray, eyeball: np.ndarray) -> None:
    """ICT's sclera mesh also covers the (transparent) cornea in front of the iris, and
    its iris mesh is a whole inner ball. Without transparency, hide the sclera within
    CORNEA_DEG of the eye's axis and the iris beyond 32 deg (inside the eyeball)."""
    for g in (1, 2):
        ball = eyeball == g
        centre = eyeball_centre(v[ball & (part == SCLERA)])
        r = v - centre
        ang = np.degrees(np.arccos(np.clip(r[:, 2] / np.linalg.norm(r, axis=1), -1, 1)))
        part[ball & (part == SCLERA) & (ang < CORNEA_DEG)] = HIDDEN
        part[ball & (part == IRIS) & (ang > CORNEA_DEG + 2.0)] = HIDDEN


def eyeball_centre(sclera: np.ndarray) -> np.ndarray:
    """Least-squares sphere centre of the front half of an eyeball's sclera vertices
    (the back of ICT's eyeball is elongated, so the plain mean sits too far back)."""
    p = sclera[sclera[:, 2] > np.median(sclera[:, 2])]
    a = np.concatenate([2 * p, np.ones((len(p), 1))], axis=1)
    sol, *_ = np.linalg.lstsq(a, (p**2).sum(1), rcond=None)
    return sol[:3]


# --------------------------------------------------------------------------- import


def read_obj(path: str | Path, with_faces: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """A small Wavefront OBJ reader: ``v x y z`` and ``f`` lines (``f a/b/c ...``, 1-based
    or negative ids); everything else (vt, vn, groups, materials) is ignored. Polygons are
    fanned into triangles (a quad a b c d gives a b c and a c d)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataFormatError(path, f"cannot read ({e})") from None
    coords: list[str] = []
    faces: list[list[int]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.startswith("v "):
            parts = line.split()
            if len(parts) < 4:
                raise DataFormatError(path, "vertex line needs x y z", line=lineno)
            coords.extend(parts[1:4])
        elif with_faces and line.startswith("f "):
            try:
                ids = [int(tok.split("/")[0]) for tok in line.split()[1:]]
            except ValueError:
                raise DataFormatError(path, "face line with a non-integer vertex id", line=lineno) from None
            if len(ids) < 3:
                raise DataFormatError(path, "face with fewer than 3 vertices", line=lineno)
            nv = len(coords) // 3
            ids = [i - 1 if i > 0 else nv + i for i in ids]
            faces.extend([ids[0], ids[k], ids[k + 1]] for k in range(1, len(ids) - 1))
    try:
        v = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    except ValueError:
        raise DataFormatError(path, "vertex line with a non-numeric coordinate") from None
    if len(v) == 0:
        raise DataFormatError(path, "no vertices (v lines)")
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3) if with_faces else None
    if f is not None and f.size and (f.min() < 0 or f.max() >= len(v)):
        raise DataFormatError(path, f"face refers to a vertex outside 1..{len(v)}")
    return v, f


def _ict_folder(src_dir: Path) -> Path:
    for cand in (src_dir, src_dir / "FaceXModel"):
        if (cand / "generic_neutral_mesh.obj").is_file():
            return cand
    raise DataFormatError(src_dir, "not an ICT-FaceKit clone: no generic_neutral_mesh.obj here or "
                                   "in FaceXModel/ (clone https://github.com/ICT-VGL/ICT-FaceKit)")


def import_ict(src_dir: str | Path, out_path: str | Path) -> Path:
    """Convert an ICT-FaceKit clone (or its ``FaceXModel`` folder) into the project's npz:
    the generic neutral mesh, ``identity000.obj``... (read until the first gap) and the
    expression shapes named by ``vertex_indices.json['expressions']``, each stored as
    float16 deltas from the neutral mesh, plus the 68 landmark vertex ids. The file is
    written atomically (temporary sibling, then rename)."""
    folder = _ict_folder(Path(src_dir))
    cfg_path = folder / "vertex_indices.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except FileNotFoundError:
        raise DataFormatError(cfg_path, "missing (ICT-FaceKit keeps it beside the OBJ files)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(cfg_path, f"not valid JSON ({e})") from None
    for key in ("expressions", "idx_to_landmark_verts"):
        if key not in cfg:
            raise DataFormatError(cfg_path, f"lacks {key!r}")
    neutral, tris = read_obj(folder / "generic_neutral_mesh.obj")
    if tris is None or len(tris) == 0:
        raise DataFormatError(folder / "generic_neutral_mesh.obj", "no faces (f lines)")

    def deltas(files: list[Path]) -> np.ndarray:
        out = np.empty((len(files), *neutral.shape), dtype=np.float16)
        for k, p in enumerate(files):
            if not p.is_file():
                raise DataFormatError(p, "missing morph target")
            v, _ = read_obj(p, with_faces=False)
            if v.shape != neutral.shape:
                raise DataFormatError(p, f"{len(v)} vertices, the neutral mesh has {len(neutral)}")
            out[k] = (v - neutral).astype(np.float16)
        return out

    id_files = []
    while (folder / f"identity{len(id_files):03d}.obj").is_file():
        id_files.append(folder / f"identity{len(id_files):03d}.obj")
    if not id_files:
        raise DataFormatError(folder, "no identity000.obj: not an ICT-FaceKit FaceXModel folder")
    names = [str(x) for x in cfg["expressions"]]
    n = len(neutral)
    arrays = {
        "vertices": neutral.astype(np.float32),
        "triangles": tris.astype(np.int32),
        "face_triangles": tris[(tris < min(ICT_FACE_VERTICES, n)).all(1)].astype(np.int32),
        "headneck_triangles": tris[(tris < min(11248, n)).all(1)].astype(np.int32),
        "identity_basis": deltas(id_files),
        "expression_basis": deltas([folder / f"{name}.obj" for name in names]),
        "expression_names": np.asarray(names),
        "landmarks68": np.asarray(cfg["idx_to_landmark_verts"], dtype=np.int32),
    }
    model_from_arrays(arrays, source=str(folder), path=cfg_path)  # refuse to write a bad model
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
