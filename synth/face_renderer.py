"""Render face crops with exact 68-point and dense landmarks, visibility and head pose.

Pipeline per sample: blendshapes (identity + expression) -> eyeballs turned for gaze ->
head rotation (yaw, pitch, roll) -> pinhole projection at the camera distance -> jaw
contour points slid to the silhouette -> crop framing by the protocol used for real
faces -> z-buffer rasterisation -> shading -> background -> occluders -> blur (on linear
light), tone curve, sensor noise -> JPEG -> uint8 RGB.

Crop framing is ``realdata/face_crop.py``'s protocol, not a copy of it: the box is
``box_from_landmarks`` of the 68 points (tight box, made square on its longer side,
times ``DEFAULT_ENLARGE``, same centre), and the mapping into the crop is its
``CropTransform`` (``u = (x - x0) * size / side - 0.5``, which ``face_raster.to_pixels``
evaluates per vertex). A crop that frames faces differently from the real ones would be
a domain cue of its own. The conventions (0-based, pixel centres on integers, box edges
on pixel edges) are documented once, in ``realdata/face_crop.py``; the projected image
plane here plays the role of the source image (source pixels = plane units x focal,
relative to the principal point), which leaves the crop unchanged because the
protocol is invariant to scaling and shifting the source coordinates.

Landmark coordinates are crop pixels in the 0-based pixel-centre convention (the centre
of the top-left pixel is (0, 0)). A landmark is visible when it is inside the crop, no
occluder covers its pixel, and within its 3x3 pixel neighbourhood the z-buffer is
somewhere not in front of it by more than a tolerance (0.3 cm plus 1.5 pixel
footprints, for the slope of the surface within a pixel), or empty: so points on the
silhouette count as visible (``face_raster.point_visibility``).

Jaw contour rule: iBug contour points lie on the face's outline, not on fixed vertices.
Each jaw point j has a horizontal line of candidate vertices across the cheek at its
height (``FaceModel.contour_candidates``: the landmark vertex, then vertices toward the
midline). The point is the candidate farthest out along the head's own x axis as seen
in the image (minimum for points 0-7 on the subject's right, maximum for 9-16; the chin,
8, is fixed). On a side turned toward the camera that is the landmark vertex itself,
because every other candidate lies medial to it; on a side turning away, the landmark
slides forward along its line to where the view ray grazes the cheek: the silhouette.
"""

from __future__ import annotations

import io
import math
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from realdata.face_crop import DEFAULT_ENLARGE, box_from_landmarks
from synth import face_raster as fr
from synth.face_distribution import (
    FACE_FACTORS,
    expression_coefficients,
    identity_coefficients,
)
from synth.face_model import (
    HIDDEN,
    IRIS,
    LASH,
    MOUTH,
    SCLERA,
    SKIN,
    TEETH,
    FaceModel,
    eyeball_centre,
)

#: The crop's enlargement over the 68 points' box: the real-face protocol's, by import.
CROP_SCALE = DEFAULT_ENLARGE

# material channels of the per-vertex albedo mix (see _materials and _colours)
CH = ("skin", "lip", "brow", "hair1", "hair2", "hair3", "sclera", "iris", "pupil", "teeth",
      "mouth", "lash", "blotch1", "blotch2", "blotch3", "pores", "cheeks", "eyeshadow")
C = {name: i for i, name in enumerate(CH)}
HAIR_LEVELS = (10.8, 9.8, 8.8)  # forehead hairline heights (cm) of hair1..hair3


def crop_box(points: np.ndarray, enlarge: float = DEFAULT_ENLARGE) -> np.ndarray:
    """The face crop for 68 points (..., K, 2) by the real-face protocol
    (``realdata.face_crop.box_from_landmarks``: tight box, square on its longer side,
    times ``enlarge``, same centre). Returns (..., 3): x0, y0, side (the box's top-left
    corner and side length, in the points' units). One call per face: the renderer
    frames one face at a time, and one implementation keeps real and synthetic crops
    identical."""
    p = np.asarray(points, dtype=np.float64)
    flat = p.reshape(-1, *p.shape[-2:])
    out = np.empty((len(flat), 3))
    for i, face in enumerate(flat):
        x0, y0, x1, _ = box_from_landmarks(face, enlarge)
        out[i] = (x0, y0, x1 - x0)
    return out.reshape(*p.shape[:-2], 3)


# --------------------------------------------------------------------------- preparation


@dataclass(frozen=True, eq=False)
class Prepared:
    """What the renderer derives from a model once: the drawn vertices (compacted), the
    basis as one float32 matrix, triangle order for culling, material weights."""

    keep: np.ndarray          # (V,) model vertex id of each compact vertex
    base: np.ndarray          # (V, 3) float32
    basis: np.ndarray         # (K + E, 3V) float32, identity modes first
    n_identity: int
    names: tuple[str, ...]
    tris: np.ndarray          # (T, 3) int32, culled triangles first
    n_culled: int
    mouth: tuple[int, int]    # triangle range of the mouth interior (skipped when closed)
    front: float              # screen winding sign of a front-facing triangle
    normal_sign: float
    eyeball: np.ndarray       # (V,) int8
    eye_centres: np.ndarray   # (2, 3) float64, neutral (identity moves them little)
    lm68: np.ndarray          # (68,) compact ids (jaw points before sliding)
    contour_flat: tuple[np.ndarray, np.ndarray]  # candidates concatenated, offsets (18,)
    dense: dict[str, np.ndarray]
    weights: np.ndarray       # (V, len(CH)) float32 material weights
    weights_csr: tuple[np.ndarray, np.ndarray, np.ndarray]  # the same, sparse by row
    gloss: np.ndarray         # (V,) float32
    albedo_mul: np.ndarray    # (V,) float32 baked ambient occlusion


_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepare(model: FaceModel) -> Prepared:
    """Cached per model object (~0.3 s for ICT)."""
    p = _PREPARED.get(model)
    if p is None:
        p = _prepare(model)
        _PREPARED[model] = p
    return p


def _prepare(m: FaceModel) -> Prepared:
    fr.ensure_cache()
    part = m.vertex_part
    drawn_tri = (part[m.triangles] != HIDDEN).all(axis=1)
    tris_all = m.triangles[drawn_tri]
    keep = np.unique(np.concatenate([tris_all.ravel(), m.landmarks68,
                                     *m.contour_candidates, *m.dense_sets.values()]))
    remap = np.full(m.n_vertices, -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    tris = remap[tris_all]
    two_sided = (part[tris_all] == LASH).any(axis=1)
    interior = np.isin(part[tris_all], (MOUTH, TEETH)).all(axis=1) & ~two_sided
    main = ~two_sided & ~interior
    tris = np.concatenate([tris[main], tris[interior], tris[two_sided]]).astype(np.int32)
    base = m.vertices[keep].astype(np.float32)
    basis = np.concatenate([m.identity_basis[:, keep], m.expression_basis[:, keep]])
    basis = basis.reshape(len(basis), -1).astype(np.float32)
    eyeball = m.eyeball_id[keep].astype(np.int8)
    centres = np.zeros((2, 3))
    for g in (1, 2):
        sclera = base[(eyeball == g) & (part[keep] == SCLERA)]
        if len(sclera) >= 4:
            centres[g - 1] = eyeball_centre(sclera.astype(np.float64))
    lm = remap[m.landmarks68].astype(np.int32)
    normal_sign, front = _orientation(base, tris[: int((~two_sided).sum())], m, remap)
    weights, gloss = _materials(base, part[keep], lm)
    ao = _ambient_occlusion(base, tris[: int((~two_sided).sum())], front, normal_sign)
    return Prepared(
        keep=keep, base=base, basis=basis, n_identity=m.n_identity, names=m.expression_names,
        tris=tris, n_culled=int((~two_sided).sum()), mouth=(int(main.sum()), int((~two_sided).sum())),
        front=front, normal_sign=normal_sign,
        eyeball=eyeball, eye_centres=centres, lm68=lm,
        contour_flat=(remap[np.concatenate(m.contour_candidates)].astype(np.int32),
                      np.cumsum([0] + [len(c) for c in m.contour_candidates]).astype(np.int64)),
        dense={k: remap[v].astype(np.int32) for k, v in m.dense_sets.items()},
        weights=weights, weights_csr=_csr(weights), gloss=gloss,
        albedo_mul=_albedo_mul(ao, part[keep]),
    )


def _csr(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz = np.abs(w) > 1e-4
    indptr = np.concatenate([[0], np.cumsum(nz.sum(1))]).astype(np.int64)
    rows, cols = np.nonzero(nz)
    return indptr, cols.astype(np.int32), w[rows, cols].astype(np.float32)


def _orientation(base, tris, m: FaceModel, remap) -> tuple[float, float]:
    """Which cross-product sign points out of the face, and which screen winding a
    front-facing triangle has after projection (measured on the frontal neutral face)."""
    face = tris[np.isin(tris, remap[: m.face_vertex_count]).all(axis=1)]
    v = base.astype(np.float64)
    n = np.cross(v[face[:, 1]] - v[face[:, 0]], v[face[:, 2]] - v[face[:, 0]])
    normal_sign = 1.0 if np.mean(n[:, 2] > 0) >= 0.5 else -1.0
    cam = v * np.array([1.0, -1.0, -1.0]) + np.array([0.0, 0.0, 60.0])
    uv = cam[:, :2] / cam[:, 2:]
    facing = (n[:, 2] * normal_sign) > 0.5 * np.linalg.norm(n, axis=1)
    a = uv[face[facing]]
    area = ((a[:, 1, 0] - a[:, 0, 0]) * (a[:, 2, 1] - a[:, 0, 1])
            - (a[:, 2, 0] - a[:, 0, 0]) * (a[:, 1, 1] - a[:, 0, 1]))
    return normal_sign, (1.0 if np.mean(area > 0) >= 0.5 else -1.0)


def _smooth(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _inside(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test in 2-D."""
    x, y = pts[:, 0], pts[:, 1]
    out = np.zeros(len(pts), dtype=bool)
    for i in range(len(poly)):
        (xi, yi), (xj, yj) = poly[i], poly[i - 1]
        cross = (yi > y) != (yj > y)
        xc = xi + (y - yi) * (xj - xi) / np.where(yj != yi, yj - yi, 1.0)
        out ^= cross & (x < xc)
    return out


def _dist_to_polyline(line: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each point to a polyline, and the arclength fraction (0..1) of the
    closest point along it."""
    seg_a, seg_b = line[:-1], line[1:]
    d = seg_b - seg_a
    ll = (d**2).sum(1)
    t = np.clip(((pts[:, None, :] - seg_a) * d).sum(-1) / ll, 0, 1)
    q = seg_a + t[..., None] * d
    dist = np.linalg.norm(pts[:, None, :] - q, axis=-1)
    k = dist.argmin(1)
    cum = np.concatenate([[0.0], np.cumsum(np.sqrt(ll))])
    frac = (cum[k] + t[np.arange(len(pts)), k] * np.sqrt(ll[k])) / cum[-1]
    return dist.min(1), frac


def _materials(v: np.ndarray, part: np.ndarray, lm: np.ndarray):
    """Per-vertex weights of the material channels, from the neutral geometry and the
    landmarks: lips inside the outer lip contour, brows along the brow lines, hair above
    a hairline, iris/pupil by distance from the iris centre, smooth random fields for
    blotches and white noise for pores."""
    n = len(v)
    w = np.zeros((n, len(CH)), dtype=np.float64)
    skin = part == SKIN
    L = v[lm]
    front = v[:, 2] > L[:, 2].min() - 3.0
    xy = v[:, :2]
    # lips: inside the outer lip polygon (48-59), softened by the distance to its edge
    lip_poly = L[48:60, :2]
    dl, _ = _dist_to_polyline(np.vstack([lip_poly, lip_poly[:1]]), xy)
    inside = _inside(lip_poly, xy)
    lip = np.where(inside, _smooth(0.5 + dl / 0.3), _smooth(0.5 - dl / 0.3))
    lip *= front & (v[:, 2] > L[48:60, 2].min() - 1.5)
    # brows: a band below each brow line (17-21, 22-26), thicker at the inner end
    brow = np.zeros(n)
    for a, b, inner_last in ((17, 22, True), (22, 27, False)):
        line = L[a:b, :2] - np.array([0.0, 0.2])
        dist, frac = _dist_to_polyline(line, xy)
        frac = frac if inner_last else 1 - frac
        half = 0.22 + 0.2 * frac
        brow = np.maximum(brow, _smooth((half - dist) / 0.15 + 0.5))
    brow *= front & (np.abs(v[:, 2] - L[17:27, 2].mean()) < 2.5)
    # hair: above a hairline that runs over the forehead, above the ears, down the nape
    brow_y = L[17:27, 1].max()
    z = v[:, 2]
    # the line drops from the forehead over the temples to above the ears and the nape
    line_offset = np.interp(z, [-9.0, -5.0, -2.0, 3.0, 6.0, 8.0], [-12.5, -9.0, -4.5, -3.8, -1.5, 0.0])
    ears = (np.abs(v[:, 0]) > 7.3) & (z > -2.5) & (z < 3.5) & (v[:, 1] < 8.8)
    for k, level in enumerate(HAIR_LEVELS):
        h = v[:, 1] - (level + line_offset + (brow_y - 6.0))
        w[:, C[f"hair{k + 1}"]] = _smooth(h / 0.8) * skin * ~ears
    w[:, C["lip"]] = lip * skin
    w[:, C["brow"]] = brow * skin * (1 - lip)
    w[:, C["skin"]] = skin
    # eyes
    w[:, C["sclera"]] = part == SCLERA
    iris = part == IRIS
    t = np.zeros(n)
    for g_side in (-1.0, 1.0):
        sel = iris & (np.sign(v[:, 0]) == g_side)
        if sel.any():
            c = v[sel].mean(0)
            r = np.linalg.norm(v[sel, :2] - c[:2], axis=1)
            t[sel] = r / max(r.max(), 1e-6)
    pupil = iris * _smooth((0.42 - t) / 0.08 + 0.5)
    w[:, C["iris"]] = iris * (1 - pupil)
    w[:, C["pupil"]] = pupil
    w[:, C["teeth"]] = part == TEETH
    w[:, C["mouth"]] = part == MOUTH
    w[:, C["lash"]] = part == LASH
    # variation fields (skin only): smooth random blotches, pores, cheeks, eye shadow
    rng = np.random.default_rng(1234)
    for k in range(3):
        centres = v[rng.choice(n, 24)]
        f = np.zeros(n)
        for c_ in centres:
            f += rng.choice([-1.0, 1.0]) * np.exp(-((v - c_) ** 2).sum(1) / (2 * 1.5**2))
        w[:, C[f"blotch{k + 1}"]] = np.tanh(f) * skin
    w[:, C["pores"]] = rng.uniform(-1, 1, n) * skin
    cheeks = sum(np.exp(-((xy - (L[k, :2] + L[30, :2]) / 2) ** 2).sum(1) / (2 * 1.4**2))
                 for k in (2, 14))
    w[:, C["cheeks"]] = cheeks * skin * front
    eyes = sum(np.exp(-((xy - L[a:b, :2].mean(0)) ** 2 * [1.0, 2.0]).sum(1) / (2 * 1.2**2))
               for a, b in ((36, 42), (42, 48)))
    w[:, C["eyeshadow"]] = eyes * skin * front * (1 - brow)
    gloss = (0.25 * skin * (1 - w[:, C["hair1"]]) + 0.25 * lip * skin + 1.2 * (part == SCLERA)
             + 1.2 * iris + 0.6 * (part == TEETH) + 0.3 * (part == MOUTH))
    tzone = np.exp(-(v[:, 0] ** 2) / (2 * 1.5**2)) * skin * front
    gloss = gloss + 0.25 * tzone
    return w.astype(np.float32), gloss.astype(np.float32)


AO_STRENGTH = 0.8  # albedo multiplier = 1 - AO_STRENGTH * (1 - ambient occlusion)


def _albedo_mul(ao: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Occlusion baked into the albedo, except inside the mouth: the neutral mouth is
    closed, so teeth and tongue would stay black when it opens; their colours are dark
    already and the teeth get a fixed shade instead."""
    mul = 1.0 - AO_STRENGTH * (1.0 - ao)
    mul[part == MOUTH] = 1.0
    mul[part == TEETH] = 0.8
    return mul.astype(np.float32)


def _ambient_occlusion(v: np.ndarray, tris: np.ndarray, front: float, normal_sign: float,
                       n_dirs: int = 64, size: int = 256) -> np.ndarray:
    """Per-vertex ambient occlusion of the neutral mesh, baked once: for directions
    spread over the sphere (Fibonacci), rasterise the mesh seen from far away along
    each and test every vertex against that depth map; occlusion is the cosine-weighted
    fraction of the normal's hemisphere from which the vertex is seen. Eye sockets,
    nostrils, mouth corners, ears and the inner mouth come out darker, for free per
    image. 1 = open, 0 = enclosed."""
    nv = len(v)
    vv = v.astype(np.float64)
    fn = np.cross(vv[tris[:, 1]] - vv[tris[:, 0]], vv[tris[:, 2]] - vv[tris[:, 0]]) * normal_sign
    normals = np.zeros_like(vv)
    for k in range(3):
        np.add.at(normals, tris[:, k], fn)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    k = np.arange(n_dirs) + 0.5
    phi = np.arccos(1 - 2 * k / n_dirs)
    theta = np.pi * (1 + 5**0.5) * k
    dirs = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
    centre = (vv.max(0) + vv.min(0)) / 2
    radius = float(np.linalg.norm(vv - centre, axis=1).max()) * 1.05
    far = 100.0 * radius
    cam = np.empty((nv, 3), np.float32)
    depth = np.empty(nv, np.float32)
    uv = np.empty((nv, 2), np.float32)
    pix = np.empty((nv, 2), np.float32)
    nrm = np.empty((nv, 3), np.float32)
    zbuf = np.empty((size, size), np.float32)
    tri = np.empty((size, size), np.int32)
    bary = np.empty((size, size, 2), np.float32)
    occ = np.zeros((size, size), np.float32)
    seen = np.empty(nv, bool)
    ids = np.arange(nv, dtype=np.int64)
    lit = np.zeros(nv)
    total = np.zeros(nv)
    verts = (vv - centre).astype(np.float32)
    for d in dirs:
        fwd = -d  # the camera looks from far along d toward the head
        up = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
        right = np.cross(up, fwd)
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        rot = np.stack([right, down, fwd])
        fr.project(verts, rot, np.array([0.0, 0.0, far]), cam, depth, uv)
        half = radius / far
        fr.to_pixels(uv, np.float32(-half), np.float32(-half), np.float32(size / (2 * half)), pix)
        fr.rasterise(pix, depth, cam, tris, np.float32(front), len(tris), 0, 0, np.float32(1.0),
                     zbuf, tri, bary, nrm)
        fr.point_visibility(pix, depth, ids, zbuf, occ, np.float32(2 * radius / size), NO_EXTRA, seen)
        w = np.clip(normals @ d, 0.0, None)
        lit += w * seen
        total += w
    return np.where(total > 0, lit / np.maximum(total, 1e-12), 1.0)


# --------------------------------------------------------------------------- colours


def _hsv_like(rng: np.random.Generator, n: int, brightness: np.ndarray, sat_max: float):
    hue = rng.random(n) * 2 * np.pi
    sat = rng.random(n) * sat_max
    basis = np.stack([np.cos(hue), np.cos(hue - 2.094), np.cos(hue + 2.094)], 1)
    return np.clip(brightness[:, None] * (1 + sat[:, None] * basis), 0, 1)


def _colours(f: Mapping[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """(n, len(CH), 3) linear-RGB colour of every material channel per sample. Channels
    other than skin are deltas from the skin colour where they blend into skin."""
    n = len(f["skin_tone"])
    tone = np.asarray(f["skin_tone"])
    hue = np.asarray(f["skin_hue"])
    # skin: from deep brown to pale; undertone from olive to pink
    dark = np.array([0.13, 0.065, 0.035])
    light = np.array([0.80, 0.56, 0.45])
    skin = dark + (light - dark) * tone[:, None] ** 1.3
    skin = skin * (1 + 0.12 * (hue[:, None] - 0.5) * np.array([1.0, -0.6, -0.4]))
    c = np.zeros((n, len(CH), 3))
    c[:, C["skin"]] = skin
    lipc = skin * np.array([0.95, 0.55, 0.55]) * (0.8 + 0.2 * tone[:, None])
    lip_t = np.asarray(f["lip_tint"])[:, None]
    c[:, C["lip"]] = (lipc - skin) * (0.35 + 0.65 * lip_t) + 0.08 * lip_t * np.array([0.5, -0.1, -0.05])
    hair = hair_colour(np.asarray(f["hair_tone"]))
    hl = np.asarray(f["hair_line"])
    lv = hl * len(HAIR_LEVELS)  # 0 = bald, 1..3 = hairline level, interpolated
    for k in range(len(HAIR_LEVELS)):
        a = np.clip(lv - k, 0, 1) - np.clip(lv - k - 1, 0, 1)
        c[:, C[f"hair{k + 1}"]] = (hair - skin) * a[:, None]
    brow_d = np.asarray(f["brow_darkness"])[:, None]
    browc = skin * (1 - 0.85 * brow_d) * 0.5 + 0.5 * hair * (0.5 + brow_d)
    c[:, C["brow"]] = (browc - skin) * (0.4 + 0.6 * brow_d)
    c[:, C["sclera"]] = np.array([0.5, 0.45, 0.42]) * rng.uniform(0.75, 1.05, (n, 1))
    ic = np.asarray(f["iris_colour"])[:, None]
    brown = np.array([0.11, 0.05, 0.02])
    blue = np.array([0.16, 0.26, 0.36])
    c[:, C["iris"]] = brown + (blue - brown) * ic
    c[:, C["pupil"]] = 0.01
    c[:, C["teeth"]] = np.array([0.62, 0.56, 0.45]) * rng.uniform(0.7, 1.0, (n, 1))
    c[:, C["mouth"]] = np.array([0.16, 0.04, 0.04]) * rng.uniform(0.6, 1.2, (n, 1))
    c[:, C["lash"]] = skin * 0.45 + 0.01
    tex = np.asarray(f["skin_texture"])[:, None]
    for k in range(3):
        amp = rng.uniform(-1, 1, (n, 1)) * tex * 0.12
        c[:, C[f"blotch{k + 1}"]] = skin * amp * np.array([1.0, 0.85, 0.8])
    c[:, C["pores"]] = skin * tex * 0.12
    c[:, C["cheeks"]] = skin * (0.05 + 0.15 * hue[:, None]) * np.array([0.2, -0.35, -0.3]) \
        * rng.uniform(0, 1, (n, 1))
    c[:, C["eyeshadow"]] = -skin * rng.uniform(0.0, 0.15, (n, 1)) * np.array([1.0, 1.05, 0.95])
    return c


def hair_colour(tone: np.ndarray) -> np.ndarray:
    """Linear RGB hair colour, (..., 3): black (0) ... blond (1)."""
    t = np.asarray(tone, dtype=np.float64)[..., None]
    return np.array([0.015, 0.012, 0.01]) + t**2 * np.array([0.5, 0.36, 0.2])


# --------------------------------------------------------------------------- pose and light


def rotation(yaw, pitch, roll) -> np.ndarray:
    """Model rotation R = Ry(-yaw) Rx(-pitch) Rz(-roll), (..., 3, 3) for array inputs: the
    forward axis (0, 0, 1) goes to (-sin yaw cos pitch, sin pitch, cos yaw cos pitch), so
    yaw > 0 faces the image's left and pitch > 0 faces up (DESIGN.md's gaze convention);
    roll turns about the face's own forward axis, > 0 clockwise in the image."""
    y, p, r = (-np.asarray(a, dtype=np.float64) for a in (yaw, pitch, roll))
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    zero, one = np.zeros_like(cy), np.ones_like(cy)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*cy.shape, 3, 3)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(*cy.shape, 3, 3)
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(*cy.shape, 3, 3)
    return ry @ rx @ rz


#: model frame (y up, z toward the camera) -> camera frame (y down, z away from it)
TO_CAMERA = np.diag([1.0, -1.0, -1.0])


def _lights(f: Mapping[str, np.ndarray], u: np.ndarray) -> np.ndarray:
    """(n, 19) shading parameters (see face_raster.shade) for every sample."""
    polar, az = f["light_polar"], f["light_azimuth"]
    # camera frame: x right, y down; the light sits toward -z (in front of the face)
    key = np.stack([np.sin(polar) * np.cos(az), -np.sin(polar) * np.sin(az), -np.cos(polar)], 1)
    fill = np.stack([-key[:, 0], -key[:, 1] * 0.3, np.full(len(key), -0.8)], 1)
    fill /= np.linalg.norm(fill, axis=1, keepdims=True)
    warm = f["light_warmth"][:, None]
    tint = np.concatenate([1.0 + 0.18 * warm, np.ones_like(warm), 1.0 - 0.25 * warm], 1)
    key_rgb = f["light_intensity"][:, None] * tint
    fill_rgb = f["fill_intensity"][:, None] * np.ones((1, 3))
    mix = u[:, :1]
    amb = f["ambient"][:, None] * (np.array([0.95, 1.0, 1.08]) * (1 - mix) + tint * mix)
    rest = np.stack([0.35 * f["specular"], 4.0 + (u[:, 1] > 0.5), np.full(len(u), 0.35),
                     np.full(len(u), 0.5)], 1)  # strength, log2 shininess, wrap, sky
    return np.concatenate([key, key_rgb, fill, fill_rgb, amb, rest], 1).astype(np.float32)


MOUTH_OPEN_PX = 0.25  # inner-lip gap below which the mouth interior cannot show

#: Extra depth tolerance per 68-point landmark (cm): the inner-lip points (60-67) sit
#: on the lips' inner surface, a few mm behind the lips when the mouth is closed, where
#: annotators still mark them (on the line where the lips meet) as visible.
EXTRA_TOL68 = np.zeros(68, np.float32)
EXTRA_TOL68[60:68] = 1.2
NO_EXTRA = np.zeros(0, np.float32)


# --------------------------------------------------------------------------- background


def _background(kind: int, brightness: float, rng: np.random.Generator, tri_id: np.ndarray,
                out: np.ndarray) -> None:
    b = np.array([brightness]) ** 2.2  # brightness is perceptual; radiance is linear
    if kind == 0:
        grid = np.repeat(_hsv_like(rng, 1, b, 0.5), 4, 0).reshape(2, 2, 3)
    elif kind == 1:
        c = _hsv_like(rng, 2, np.array([b[0], b[0] * rng.uniform(0.2, 1.0)]), 0.6)
        ang = rng.uniform(0, 2 * np.pi)
        t = np.array([[0, 1], [0, 1]]) * math.cos(ang) + np.array([[0, 0], [1, 1]]) * math.sin(ang)
        t = (t - t.min()) / max(np.ptp(t), 1e-6)
        grid = c[0] * (1 - t[..., None]) + c[1] * t[..., None]
    elif kind == 2:
        g = int(rng.integers(3, 7))
        grid = _hsv_like(rng, g * g, b * rng.uniform(0.4, 1.3, g * g), 0.5).reshape(g, g, 3)
    else:  # clutter: a busy coarse grid with a few flat rectangles, seen out of focus
        g = int(rng.integers(10, 20))
        grid = _hsv_like(rng, g * g, b * rng.uniform(0.2, 1.6, g * g), 0.8).reshape(g, g, 3)
        for _ in range(int(rng.integers(2, 6))):
            col = _hsv_like(rng, 1, b * rng.uniform(0.3, 1.8, 1), 0.9)[0]
            y0, x0 = rng.integers(0, g, 2)
            hh, ww = rng.integers(2, max(g // 2, 3), 2)
            grid[y0:y0 + hh, x0:x0 + ww] = col
    fr.upsample_bilinear(np.ascontiguousarray(grid, dtype=np.float32), tri_id, out)


# --------------------------------------------------------------------------- occluders


def _occluders(kind: int, pos: float, shade: float, p68: np.ndarray, vis: np.ndarray,
               skin: np.ndarray, hair: np.ndarray, rng: np.random.Generator,
               img: np.ndarray, occ: np.ndarray) -> None:
    """Simple 2-D occluders placed relative to the projected landmarks; ``occ`` records
    how much each pixel is hidden (landmarks under occ >= 0.5 are occluded)."""
    f32 = np.float32
    eye_r, eye_l = p68[36:42].mean(0), p68[42:48].mean(0)
    iod = max(float(np.linalg.norm(eye_l - eye_r)), 4.0)
    face_w = max(float(np.ptp(p68[:17, 0])), iod)
    if kind == 1:  # glasses: rims, bridge, temples, tinted lenses (dark = sunglasses)
        frame = np.array([0.02, 0.02, 0.02]) + rng.uniform(0, 0.3) * rng.random(3)
        lens_alpha = 0.08 + 0.85 * shade**3
        lens = np.array([0.02, 0.02, 0.03]) * (1 + 3 * rng.random(3))
        ang = math.atan2(eye_l[1] - eye_r[1], eye_l[0] - eye_r[0])
        rims = []
        for a, b, c in ((36, 39, eye_r), (42, 45, eye_l)):
            wid = float(np.linalg.norm(p68[b] - p68[a]))
            ax = max(0.62 * wid + 0.08 * iod, 2.0)
            ay = max(0.5 * ax + 0.12 * iod * (0.5 + pos), 1.5)
            cc = c + np.array([0.0, 0.05 * iod])
            rims.append((cc, ax, ay))
            fr.paint_ellipse(img, occ, f32(cc[0]), f32(cc[1]), f32(ax), f32(ay), f32(ang), f32(0),
                             *lens.astype(f32), f32(lens_alpha), f32(1.0), f32(0.0))
            fr.paint_ellipse(img, occ, f32(cc[0]), f32(cc[1]), f32(ax), f32(ay), f32(ang),
                             f32(max(0.06 * iod, 1.0)), *frame.astype(f32), f32(1.0), f32(1.0), f32(0.0))
        (c0, ax0, _), (c1, ax1, _) = rims
        u = (c1 - c0) / max(np.linalg.norm(c1 - c0), 1e-6)
        fr.paint_capsule(img, occ, f32(c0[0] + u[0] * ax0), f32(c0[1] + u[1] * ax0),
                         f32(c1[0] - u[0] * ax1), f32(c1[1] - u[1] * ax1), f32(max(0.03 * iod, 0.6)),
                         *frame.astype(f32), f32(1.0), f32(1.0), f32(0.0))
        for c, ax, sgn, jaw in ((c0, ax0, -1, 0), (c1, ax1, 1, 16)):
            if vis[jaw]:
                s = c + sgn * u * ax
                fr.paint_capsule(img, occ, f32(s[0]), f32(s[1]), f32(p68[jaw, 0]), f32(p68[jaw, 1] - 0.03 * iod),
                                 f32(max(0.03 * iod, 0.6)), *frame.astype(f32), f32(1.0), f32(1.0), f32(0.0))
    elif kind == 2:  # hand: palm + fingers over a cheek, the mouth or the chin
        col = skin * rng.uniform(0.7, 1.2) * (0.6 + 0.4 * shade)
        t = pos * 2.0 - 1.0
        centre = (1 - abs(t)) * p68[57] + abs(t) * (p68[3] if t < 0 else p68[13])
        centre = centre + np.array([0.0, 0.25 * iod])
        palm = 0.45 * face_w
        ang = rng.uniform(-0.6, 0.6) + (0.5 * np.sign(t) if abs(t) > 0.3 else 0.0)
        fr.paint_ellipse(img, occ, f32(centre[0]), f32(centre[1] + 0.5 * palm), f32(0.55 * palm),
                         f32(0.65 * palm), f32(ang), f32(0), *col.astype(f32), f32(1.0), f32(1.0), f32(0.25))
        for k in range(4):
            off = (k - 1.5) * 0.27 * palm
            base = centre + np.array([off * math.cos(ang), off * math.sin(ang)])
            length = palm * (0.9 + 0.25 * (1 - abs(k - 1.5) / 1.5))
            tip = base + length * np.array([math.sin(ang), -math.cos(ang)])
            fr.paint_capsule(img, occ, f32(base[0]), f32(base[1]), f32(tip[0]), f32(tip[1]),
                             f32(0.12 * palm), *(col * (0.92 + 0.08 * k)).astype(f32),
                             f32(1.0), f32(1.0), f32(0.35))
    elif kind == 3:  # mask: from below the chin up over the nose
        top = 29 if pos > 0.5 else 30
        lift = 0.15 * iod
        jaw = p68[1:16].copy()
        jaw[:, 1] += 0.08 * iod
        left = np.array([p68[1, 0], p68[top, 1] + lift * 0.5])
        right = np.array([p68[15, 0], p68[top, 1] + lift * 0.5])
        poly = np.vstack([left, jaw, right, p68[top] + np.array([0, -lift])])
        col = np.array([0.75, 0.8, 0.85]) * (0.3 + 0.7 * shade) if rng.random() < 0.7 \
            else _hsv_like(rng, 1, np.array([0.05 + 0.4 * shade]), 0.6)[0]
        fr.paint_polygon(img, occ, poly[:, 0].astype(f32), poly[:, 1].astype(f32),
                         *np.asarray(col, dtype=f32), f32(1.0), f32(1.0), f32(0.15))
    elif kind == 4:  # hair: a fringe over the forehead, falling over one eye
        side = 1 if pos > 0.5 else -1
        drop = abs(pos - 0.5) * 2
        brow = p68[17:27]
        top = brow[:, 1].min() - 0.8 * iod
        cx = p68[27, 0] + side * 0.35 * face_w
        cy = top + 0.35 * iod + drop * 0.6 * iod
        col = hair * rng.uniform(0.8, 1.2)
        fr.paint_ellipse(img, occ, f32(cx), f32(cy), f32(0.55 * face_w), f32(0.55 * iod + drop * 0.5 * iod),
                         f32(side * 0.35), f32(0), *col.astype(f32), f32(1.0), f32(1.0), f32(0.2))


# --------------------------------------------------------------------------- render


def render_faces(model: FaceModel, factors: Mapping[str, np.ndarray], size: int = 128,
                 seed: int = 0, landmark_sets: Sequence[str] = ("dense500",)) -> dict[str, np.ndarray]:
    """Render one face per row of ``factors`` (arrays over FACE_FACTORS).

    Returns ``images`` (N, size, size, 3) uint8; ``points68`` (N, 68, 2) float32 crop
    pixels; ``visible68`` (N, 68) bool; ``dense``/``dense_visible`` for the first of
    ``landmark_sets`` (its first 68 points are ``points68``) and ``<set>``/``<set>_visible``
    for each set; ``dense_ids`` (model vertex ids of the first set); ``pose`` (N, 3)
    yaw, pitch, roll in rad; ``crop_box`` (N, 3) x0, y0, side in source-camera pixels
    relative to the principal point. Same inputs and seed give identical bytes."""
    missing = [k for k in FACE_FACTORS if k not in factors]
    if missing:
        raise ValueError(f"factors lack {missing}")
    p = prepare(model)
    for name in landmark_sets:
        if name not in p.dense:
            raise ValueError(f"unknown landmark set {name!r}; model has {sorted(p.dense)}")
    f, verts, colours, seeds, lights, rots, eye_rots, hair = _draw(p, factors, seed)
    n = len(verts)

    out = {"images": np.empty((n, size, size, 3), np.uint8),
           "points68": np.empty((n, 68, 2), np.float32),
           "visible68": np.empty((n, 68), bool),
           "pose": np.stack([f["head_yaw"], f["head_pitch"], f["head_roll"]], 1).astype(np.float32),
           "crop_box": np.empty((n, 3), np.float32)}
    for name in landmark_sets:
        out[name] = np.empty((n, len(p.dense[name]), 2), np.float32)
        out[name + "_visible"] = np.empty((n, len(p.dense[name])), bool)
    buf = _Buffers(len(p.base), size)
    has_eyes = bool(p.eyeball.any())
    for i in range(n):
        if has_eyes:
            fr.rotate_groups(verts[i], p.eyeball, p.eye_centres, np.stack([eye_rots[i]] * 2))
        fr.mix_albedo(*p.weights_csr, colours[i], p.albedo_mul, buf.albedo)
        scene = _Scene(f, i, rots[i], lights[i], colours[i, C["skin"]], hair[i], seeds[i])
        _render_one(p, verts[i], scene, size, landmark_sets, buf, out, i)
    if landmark_sets:
        out["dense"] = out[landmark_sets[0]]
        out["dense_visible"] = out[landmark_sets[0] + "_visible"]
        out["dense_ids"] = model.dense_sets[landmark_sets[0]]
    return out


def _draw(p: Prepared, factors: Mapping[str, np.ndarray], seed: int):
    """Everything per sample that is drawn or computed for the whole call at once (one
    seeded stream, in a fixed order): shapes, colours, noise seeds, lights, rotations."""
    fr.ensure_cache()
    f = {k: np.asarray(factors[k], dtype=np.float64).reshape(-1) for k in FACE_FACTORS}
    n = len(f["head_yaw"])
    rng = np.random.default_rng(seed)
    w = np.concatenate([identity_coefficients(f, p.n_identity, rng),
                        expression_coefficients(f, p.names, rng)], axis=1)
    # One BLAS thread: OpenBLAS splits the product differently by thread count and the
    # last bits then differ, so a batch's bytes would depend on the cores of the process
    # that rendered it (a Dask worker has one thread; measured). float32 on one thread is
    # also faster than the float64 product on two (20 vs 34 ms for 64 ICT faces).
    with threadpool_limits(1, user_api="blas"):
        verts = (w.astype(np.float32) @ p.basis).reshape(n, -1, 3)
    verts += p.base
    colours = _colours(f, rng).astype(np.float32)
    seeds = rng.integers(0, 2**62, size=(n, 2))
    lights = _lights(f, rng.random((n, 2)))
    rots = TO_CAMERA @ rotation(f["head_yaw"], f["head_pitch"], f["head_roll"])
    eye_rots = rotation(f["eye_gaze_yaw"], f["eye_gaze_pitch"], np.zeros(n))
    return f, verts, colours, seeds, lights, rots, eye_rots, hair_colour(f["hair_tone"])


def render_geometry(model: FaceModel, factors: Mapping[str, np.ndarray], index: int,
                    size: int = 128, seed: int = 0) -> dict[str, np.ndarray]:
    """The geometry ``render_faces(model, factors, size, seed)`` uses for sample
    ``index``, for tests and debugging: ``tri_id`` and ``zbuf`` (size, size), ``pix`` and
    ``depth`` per model vertex (NaN for vertices that are not drawn), ``triangles``
    (model vertex ids, indexed by ``tri_id``) and ``ids68`` (model vertex per landmark,
    after contour sliding)."""
    p = prepare(model)
    f, verts, colours, seeds, lights, rots, eye_rots, hair = _draw(p, factors, seed)
    if p.eyeball.any():
        fr.rotate_groups(verts[index], p.eyeball, p.eye_centres, np.stack([eye_rots[index]] * 2))
    b = _Buffers(len(p.base), size)
    scene = _Scene(f, index, rots[index], lights[index], colours[index, 0], hair[index], seeds[index])
    ids, _ = _geometry(p, verts[index], scene, size, b)
    pix = np.full((model.n_vertices, 2), np.nan, np.float32)
    depth = np.full(model.n_vertices, np.nan, np.float32)
    pix[p.keep] = b.pix
    depth[p.keep] = b.depth
    return {"tri_id": b.tri.copy(), "zbuf": b.zbuf.copy(), "pix": pix, "depth": depth,
            "triangles": p.keep[p.tris], "ids68": p.keep[ids]}


class _Scene:
    """One sample's scalars and small arrays, gathered once."""

    __slots__ = ("dist", "focal", "bg_kind", "bg_brightness", "occ_kind", "occ_pos", "occ_shade",
                 "blur", "noise", "gamma", "contrast", "jpeg", "rot", "light", "skin", "hair", "seeds")

    def __init__(self, f, i, rot, light, skin, hair, seeds):
        self.dist = float(f["camera_distance_cm"][i])
        self.focal = float(f["focal_length_px"][i])
        self.bg_kind = int(round(f["background_kind"][i]))
        self.bg_brightness = float(f["background_brightness"][i])
        self.occ_kind = int(round(f["occluder_kind"][i]))
        self.occ_pos = float(f["occluder_position"][i])
        self.occ_shade = float(f["occluder_shade"][i])
        self.blur = float(f["blur_sigma_px"][i])
        self.noise = float(f["noise_sigma"][i])
        self.gamma = float(f["gamma"][i])
        self.contrast = float(f["contrast"][i])
        self.jpeg = int(round(f["jpeg_quality"][i]))
        self.rot, self.light, self.skin, self.hair, self.seeds = rot, light, skin, hair, seeds


def _lip_gap(pix: np.ndarray, lm: np.ndarray) -> float:
    """Largest distance in pixels between facing inner-lip points (61-67, 62-66, 63-65)."""
    a, b = pix[lm[[61, 62, 63]]], pix[lm[[67, 66, 65]]]
    return float(np.sqrt(((a - b) ** 2).sum(1)).max())


class _Buffers:
    """Per-call scratch arrays, reused across the samples of a call."""

    def __init__(self, nv: int, size: int):
        self.cam = np.empty((nv, 3), np.float32)
        self.depth = np.empty(nv, np.float32)
        self.uv = np.empty((nv, 2), np.float32)
        self.pix = np.empty((nv, 2), np.float32)
        self.normals = np.empty((nv, 3), np.float32)
        self.albedo = np.empty((nv, 3), np.float32)
        self.zbuf = np.empty((size, size), np.float32)
        self.tri = np.empty((size, size), np.int32)
        self.bary = np.empty((size, size, 2), np.float32)
        self.lin = np.empty((size, size, 3), np.float32)
        self.tmp = np.empty((size, size, 3), np.float32)
        self.occ = np.empty((size, size), np.float32)
        self.rgb = np.empty((size, size, 3), np.uint8)
        self.vis68 = np.empty(68, bool)


def _geometry(p: Prepared, verts, s: _Scene, size: int, b: _Buffers) -> tuple[np.ndarray, np.ndarray]:
    """Project, slide the jaw contour, frame the crop, rasterise. Fills ``b.pix``,
    ``b.depth``, ``b.zbuf``, ``b.tri``, ``b.bary``, ``b.normals``; returns the 68 landmark
    vertex ids (compact) and the crop box (x0, y0, side) in normalised image units."""
    trans = np.array([0.0, 0.0, s.dist])
    fr.project(verts, s.rot, trans, b.cam, b.depth, b.uv)
    # jaw contour: the image direction of the head's x axis at the head centre
    ids = p.lm68.copy()
    du = s.rot[:2, 0] * s.dist
    du /= max(math.hypot(du[0], du[1]), 1e-12)
    fr.slide_contour(b.uv, *p.contour_flat, du, ids)
    box = crop_box(b.uv[ids])
    fr.to_pixels(b.uv, np.float32(box[0]), np.float32(box[1]), np.float32(size / box[2]), b.pix)
    lo, hi = p.mouth
    if _lip_gap(b.pix, p.lm68) > MOUTH_OPEN_PX:
        lo = hi = 0
    fr.rasterise(b.pix, b.depth, b.cam, p.tris, np.float32(p.front), p.n_culled, lo, hi,
                 np.float32(p.normal_sign), b.zbuf, b.tri, b.bary, b.normals)
    return ids, box


def _render_one(p: Prepared, verts, s: _Scene, size, landmark_sets, b: _Buffers, out, i) -> None:
    ids, (x0, y0, side) = _geometry(p, verts, s, size, b)
    scale = size / side
    rng = np.random.default_rng(s.seeds[0])
    _background(s.bg_kind, s.bg_brightness, rng, b.tri, b.lin)
    fr.shade(b.tri, b.bary, p.tris, b.normals, b.albedo, p.gloss, s.light, b.lin)
    b.occ[:] = 0.0
    p68 = b.pix[ids]
    tol = np.float32(0.3 + 1.5 * s.dist / scale)
    vis = b.vis68
    fr.point_visibility(b.pix, b.depth, ids, b.zbuf, b.occ, tol, EXTRA_TOL68, vis)
    if s.occ_kind:
        _occluders(s.occ_kind, s.occ_pos, s.occ_shade, p68, vis.copy(), s.skin, s.hair, rng,
                   b.lin, b.occ)
        fr.point_visibility(b.pix, b.depth, ids, b.zbuf, b.occ, tol, EXTRA_TOL68, vis)
    out["points68"][i] = p68
    out["visible68"][i] = vis
    out["crop_box"][i] = (x0 * s.focal, y0 * s.focal, side * s.focal)
    for name in landmark_sets:
        d = p.dense[name]
        out[name][i] = b.pix[d]
        out[name][i, :68] = p68
        dv = out[name + "_visible"][i]
        fr.point_visibility(b.pix, b.depth, d, b.zbuf, b.occ, tol, NO_EXTRA, dv)
        dv[:68] = vis
    # camera: a face smaller than the crop in the source image is upsampled -> blur
    src = side * s.focal
    res_sigma = 0.5 * math.sqrt(max((size / src) ** 2 - 1.0, 0.0)) if src > 0 else 0.0
    sigma = min(math.hypot(s.blur, res_sigma, 0.3), 2.4)
    fr.finish(b.lin, np.float32(s.gamma / 2.2), np.float32(s.contrast), np.float32(sigma),
              np.float32(s.noise), np.int64(s.seeds[1]), b.tmp, b.rgb)
    out["images"][i] = jpeg_roundtrip(b.rgb, s.jpeg) if s.jpeg < 100 else b.rgb


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode with libjpeg (Pillow's defaults: 4:2:0 chroma below quality 90,
    standard tables): real JPEG artefacts, deterministic for a given libjpeg. Decoding via
    ``frombytes`` skips Pillow's Python-level marker parsing (~0.1 ms per image)."""
    bio = io.BytesIO()
    Image.fromarray(rgb).save(bio, format="JPEG", quality=int(quality))
    h, w = rgb.shape[:2]
    return np.asarray(Image.frombytes("RGB", (w, h), bio.getvalue(), "jpeg", "RGB", ""))
