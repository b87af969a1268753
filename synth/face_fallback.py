"""A small procedural head, used where the ICT-FaceKit asset is absent (a fresh clone,
CI), so that the face renderer, its tests and the demo run anywhere.

It is a stack of horizontal rings (superellipses whose width and depth follow a head
profile), with Gaussian bumps for the nose, cheekbones, brow ridge, lips and chin, and
dents for the eye sockets. Eyes and mouth are bands of extra rings that coincide with
their neighbours where closed: the eye band is open at rest and ``eyeBlink_*`` collapses
it; the mouth band is closed at rest and ``jawOpen`` opens it, showing dark interior.
Sizes and positions follow ICT-FaceKit's neutral mesh (cm, x = subject's left, y up,
z out of the face), so the renderer's materials and camera settings suit both.
It need not be beautiful: it must have its landmarks in sensible places.
"""

from __future__ import annotations

import functools

import numpy as np

from synth.face_model import (
    IRIS,
    MOUTH,
    SCLERA,
    SKIN,
    FaceModel,
    contour_candidates,
    dense_sets,
)

EYE_Y, EYE_XC, EYE_HALF_W, EYE_H = 3.45, 3.15, 1.35, 0.42  # eye centre height, |x|, half width, half opening
IRIS_R = 0.55
MOUTH_Y, MOUTH_HALF_W, MOUTH_REST = -3.45, 2.55, 0.03

# Head profile keyframes over height y: half width a, front depth zf, back depth zb,
# and the superellipse exponent p of the front half (< 1: flat, > 1: V-shaped).
_Y = np.array([-16.0, -10.0, -9.0, -8.5, -8.2, -7.9, -7.6, -6.0, -4.4, -2.5, 0.4, 3.5, 6.0, 10.0])
_A = np.array([5.4, 5.3, 5.4, 5.0, 4.8, 4.6, 4.4, 5.0, 6.0, 6.9, 7.5, 7.9, 8.0, 7.8])
_ZF = np.array([4.2, 4.2, 4.8, 6.0, 7.8, 9.2, 10.0, 10.5, 10.7, 10.9, 10.4, 10.0, 10.5, 9.6])
_ZB = np.array([-5.5, -5.0, -5.0, -5.2, -5.4, -5.5, -5.6, -6.5, -7.5, -8.2, -8.6, -9.0, -9.2, -8.8])
_P = np.array([1.0, 1.0, 1.0, 1.0, 1.2, 1.3, 1.3, 1.15, 0.95, 0.8, 0.7, 0.6, 0.6, 0.6])

EXPRESSIONS = ("browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "eyeBlink_L",
               "eyeBlink_R", "eyeWide_L", "eyeWide_R", "jawOpen", "mouthFrown_L", "mouthFrown_R",
               "mouthPucker", "mouthSmile_L", "mouthSmile_R")


def _eye_window(x: np.ndarray) -> np.ndarray:
    """Almond-shaped eye opening profile over x (0 outside either eye, 1 at its centre)."""
    t = (np.abs(x) - EYE_XC) / EYE_HALF_W
    return np.clip(1.0 - t * t, 0.0, None) ** 0.8


def _mouth_window(x: np.ndarray) -> np.ndarray:
    t = x / MOUTH_HALF_W
    return np.clip(1.0 - t * t, 0.0, None) ** 0.6


def _rows() -> list[tuple[float, str, float]]:
    """(base height y, tag, ring scale) from the crown down to the neck; tagged rows are
    the eye and mouth bands."""
    rows: list[tuple[float, str, float]] = []
    for alpha in np.linspace(np.pi / 2, 0.0, 9)[1:-1]:  # dome, pole added separately
        rows.append((10.0 + 4.5 * np.sin(alpha), "", float(np.cos(alpha))))
    eye_lo, eye_hi = EYE_Y - EYE_H - 0.25, EYE_Y + EYE_H + 0.25
    for y in np.arange(10.0, -7.61, -0.3):
        if eye_lo < y < eye_hi or abs(y - MOUTH_Y) < 0.2:
            continue
        rows.append((float(y), "", 1.0))
    rows += [(EYE_Y, t, 1.0) for t in ("lid_top", "eye_top", "eye_bot", "lid_bot")]
    rows += [(MOUTH_Y, t, 1.0) for t in ("lip_up", "mouth_up", "mouth_lo", "lip_lo")]
    rows += [(y, "", 1.0) for y in (-7.9, -8.2, -8.5, -9.0, -10.0, -12.0, -14.0, -16.0)]
    order = {"lid_top": 0, "eye_top": 1, "eye_bot": 2, "lid_bot": 3,
             "lip_up": 0, "mouth_up": 1, "mouth_lo": 2, "lip_lo": 3, "": 0}
    rows.sort(key=lambda r: (-r[0], order[r[1]]))
    return rows


def _columns() -> np.ndarray:
    """Azimuths around each ring, denser over the face (0 = straight ahead, + = +x)."""
    front = np.linspace(-1.32, 1.32, 67)  # step 0.04, 0 included
    back = np.linspace(1.32, 2 * np.pi - 1.32, 27)[1:-1]
    theta = np.concatenate([front, back])
    return np.where(theta > np.pi, theta - 2 * np.pi, theta)


def _bump(x, y, cx, cy, sx, sy, amp):
    return amp * np.exp(-(((x - cx) / sx) ** 2) - (((y - cy) / sy) ** 2))


def _features(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Forward (z) displacement of the front surface: nose, cheeks, brows, lips, chin."""
    # nose: a ridge from the bridge (y 3.7) out to the tip (y 0.4), then back under it
    ridge = np.where(y >= 0.4, 0.5 + 2.4 * np.clip((3.9 - y) / 3.5, 0, 1) ** 1.4,
                     2.9 * np.clip(1 - (0.4 - y) / 1.5, 0, 1) ** 0.7)
    ridge = np.where(y > 3.9, 0.5 * np.clip(1 - (y - 3.9) / 1.5, 0, 1), ridge)
    width = np.interp(y, [-1.2, 0.4, 2.5, 4.5], [1.3, 1.05, 0.6, 0.7])
    dz = ridge * np.exp(-((x / width) ** 2))
    for sgn in (-1.0, 1.0):
        dz += _bump(x, y, sgn * 1.25, -0.4, 0.5, 0.45, 0.9)      # nostril wings
        dz += _bump(x, y, sgn * 3.15, 3.4, 1.3, 0.9, -0.8)       # eye socket
        dz += _bump(x, y, sgn * 4.3, 0.9, 1.3, 1.0, 0.45)        # cheekbone
        dz += _bump(x, y, sgn * 3.1, 5.6, 2.0, 0.5, 0.35)        # brow ridge
    dz += _bump(x, y, 0.0, -2.85, 1.9, 0.45, 0.55) * (np.abs(x) < 2.6)  # upper lip
    dz += _bump(x, y, 0.0, -4.0, 1.7, 0.45, 0.5)                 # lower lip
    dz += _bump(x, y, 0.0, -6.6, 1.6, 0.8, 0.35)                 # chin
    return dz


def _ring_point(theta: np.ndarray, y: float, scale: float, tag: str):
    a = float(np.interp(y, _Y, _A)) * scale
    zf = float(np.interp(y, _Y, _ZF)) * scale
    zb = float(np.interp(y, _Y, _ZB)) * scale
    p = float(np.interp(y, _Y, _P))
    x = a * np.sin(theta)
    c = np.cos(theta)
    z = np.where(c >= 0, zf * np.abs(c) ** p, zb * np.abs(c) ** 0.9)
    yy = np.full_like(x, y)
    if tag in ("lid_top", "eye_top"):
        yy += EYE_H * _eye_window(x)
    elif tag in ("lid_bot", "eye_bot"):
        yy -= EYE_H * _eye_window(x)
    elif tag in ("lip_up", "mouth_up"):
        yy += MOUTH_REST * _mouth_window(x)
    elif tag in ("lip_lo", "mouth_lo"):
        yy -= MOUTH_REST * _mouth_window(x)
    front = np.clip(c, 0, None) ** 0.5 * (y > -9.0)
    z = z + _features(x, yy) * front
    if tag in ("eye_top", "eye_bot"):
        z = z - 0.35 * np.sqrt(_eye_window(x))  # the eyeball sits behind the lids
    if tag in ("mouth_up", "mouth_lo"):
        z = z - 0.5 * _mouth_window(x)
    return np.stack([x, yy, z], axis=1)


@functools.lru_cache(maxsize=1)
def fallback_face_model() -> FaceModel:
    """The procedural head as a FaceModel (built once per process, ~0.1 s)."""
    rows = _rows()
    theta = _columns()
    nc = len(theta)
    ring = [_ring_point(theta, y, s, tag) for y, tag, s in rows]
    verts = np.concatenate(ring + [np.array([[0.0, 14.5, 0.0]])])
    tags = np.repeat([t for _, t, _ in rows], nc)
    nr = len(rows)
    top = nr * nc
    tri = []
    for r in range(nr - 1):
        for c in range(nc):
            a, b = r * nc + c, r * nc + (c + 1) % nc
            d, e = (r + 1) * nc + c, (r + 1) * nc + (c + 1) % nc
            tri += [(a, d, e), (a, e, b)]
    tri += [(top, c, (c + 1) % nc) for c in range(nc)]
    tris = np.asarray(tri, dtype=np.int64)

    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    part = np.full(len(verts), SKIN, dtype=np.uint8)
    eye = np.isin(tags, ["eye_top", "eye_bot"])
    eye = np.concatenate([eye, [False]])
    part[eye & (_eye_window(x) > 0)] = SCLERA
    part[eye & (np.abs(np.abs(x) - EYE_XC) < IRIS_R)] = IRIS
    mouth = np.concatenate([np.isin(tags, ["mouth_up", "mouth_lo"]), [False]])
    part[mouth & (_mouth_window(x) > 0)] = MOUTH

    id_basis, ex_basis = _identity_basis(verts, tags), _expression_basis(verts, tags)

    # face area first (the renderer's dense points and contour lines live there)
    face = (z > 1.0) & (y > -8.6) & (y < 8.0) & (np.abs(x) < 8.2)
    order = np.concatenate([np.nonzero(face)[0], np.nonzero(~face)[0]])
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    verts, part = verts[order], part[order]
    tags = np.concatenate([tags, [""]])[order]
    id_basis, ex_basis = id_basis[:, order], ex_basis[:, order]
    tris = inv[tris]
    n_face = int(face.sum())
    lm = _landmarks(verts, tags, n_face)
    v32 = verts.astype(np.float32)
    return FaceModel(
        vertices=v32,
        triangles=tris.astype(np.int32),
        identity_basis=id_basis.astype(np.float32),
        expression_basis=ex_basis.astype(np.float32),
        expression_names=EXPRESSIONS,
        landmarks68=lm,
        face_vertex_count=n_face,
        vertex_part=part,
        eyeball_id=np.zeros(len(v32), dtype=np.int8),
        contour_candidates=contour_candidates(v32, lm, n_face),
        dense_sets=dense_sets(v32, lm, n_face),
        source="builtin-fallback",
    )


# --------------------------------------------------------------------------- landmarks

# iBug 68 targets (x, y) in cm, taken from the ICT neutral mesh's landmark positions;
# eyes and inner lips are placed on their band rows instead (see _landmarks).
_TARGETS = np.array([
    [-7.36, 3.68], [-7.28, 1.49], [-6.94, -0.46], [-6.56, -2.36], [-5.72, -4.49], [-4.3, -6.21],
    [-3.05, -6.91], [-1.54, -7.26], [0.0, -7.57], [1.54, -7.26], [3.05, -6.91], [4.3, -6.21],
    [5.72, -4.49], [6.56, -2.36], [6.94, -0.46], [7.28, 1.49], [7.36, 3.68],
    [-5.82, 5.2], [-4.93, 5.98], [-3.79, 6.26], [-2.41, 6.19], [-1.17, 5.91],
    [1.17, 5.91], [2.41, 6.19], [3.79, 6.26], [4.93, 5.98], [5.82, 5.2],
    [0.0, 3.74], [0.0, 2.63], [0.0, 1.61], [0.0, 0.41],
    [-1.25, -1.14], [-0.6, -1.14], [0.0, -1.2], [0.6, -1.14], [1.25, -1.14],
])
# (row tag, x) for the eye contours (36-47) and the lips (48-67)
_EYES = [("lid_top", -4.5), ("lid_top", -3.87), ("lid_top", -2.78), ("lid_top", -1.8),
         ("lid_bot", -2.73), ("lid_bot", -3.86),
         ("lid_top", 1.8), ("lid_top", 2.78), ("lid_top", 3.87), ("lid_top", 4.5),
         ("lid_bot", 3.86), ("lid_bot", 2.73)]
_OUTER_LIP = np.array([[-1.7, -2.78], [-0.73, -2.42], [0.0, -2.48], [0.73, -2.42], [1.7, -2.78]])
_LOWER_LIP = np.array([[1.8, -4.06], [1.03, -4.3], [0.0, -4.38], [-1.03, -4.3], [-1.8, -4.06]])
_INNER = [("mouth_up", -2.21), ("mouth_up", -1.0), ("mouth_up", 0.0), ("mouth_up", 1.0),
          ("mouth_up", 2.21), ("mouth_lo", 1.0), ("mouth_lo", 0.0), ("mouth_lo", -1.0)]


def _landmarks(verts: np.ndarray, tags: np.ndarray, n_face: int) -> np.ndarray:
    fv, ft = verts[:n_face], tags[:n_face]
    front = fv[:, 2] > 2.0

    def nearest_xy(p):
        d = np.where(front & (ft == ""), np.hypot(fv[:, 0] - p[0], fv[:, 1] - p[1]), np.inf)
        return int(np.argmin(d))

    def on_row(tag, x):
        d = np.where((ft == tag) & front, np.abs(fv[:, 0] - x), np.inf)
        return int(np.argmin(d))

    ids = [nearest_xy(p) for p in _TARGETS]
    ids += [on_row(t, x) for t, x in _EYES]
    ids += [on_row("lip_up", -MOUTH_HALF_W)] + [nearest_xy(p) for p in _OUTER_LIP]
    ids += [on_row("lip_up", MOUTH_HALF_W)] + [nearest_xy(p) for p in _LOWER_LIP]
    ids += [on_row(t, x) for t, x in _INNER]
    return np.asarray(ids, dtype=np.int32)


# --------------------------------------------------------------------------- bases


def _smooth(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _identity_basis(v: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """Six modes, each scaled so that a weight of 1 is about one standard deviation."""
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    front = _smooth(z / 6.0)
    modes = np.zeros((6, *v.shape))
    modes[0, :, 0] = 0.05 * x                                       # head width
    modes[1, :, 1] = 0.05 * np.minimum(y - 2.0, 0.0)                # lower-face length
    nose = np.exp(-((x / 1.2) ** 2)) * _smooth((4.0 - y) / 3.0) * _smooth((y + 1.4) / 1.0)
    modes[2, :, 2] = 0.35 * nose * front                            # nose size
    jaw = _smooth((-1.0 - y) / 4.0)
    modes[3, :, 0] = 0.07 * x * jaw                                 # jaw width
    modes[4, :, 2] = 0.4 * _smooth((-5.0 - y) / 2.0) * front        # chin forward
    modes[5, :, 2] = 0.3 * _smooth((y - 4.5) / 2.0) * front         # brow ridge / forehead
    return modes


def _expression_basis(v: np.ndarray, tags: np.ndarray) -> np.ndarray:
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    tags = np.concatenate([tags, [""]])[: len(v)]
    front = _smooth(z / 6.0)
    out = {name: np.zeros_like(v) for name in EXPRESSIONS}
    for sfx, sgn in (("_L", 1.0), ("_R", -1.0)):
        side = (sgn * x > 0).astype(float)
        win = _eye_window(x) * side
        upper = np.isin(tags, ["lid_top", "eye_top"])
        out["eyeBlink" + sfx][:, 1] = -2 * EYE_H * win * upper
        out["eyeBlink" + sfx][:, 2] = 0.35 * np.sqrt(win) * (tags == "eye_top")
        lid = _bump(x, y, sgn * EYE_XC, EYE_Y + 0.9, 1.6, 0.6, 1.0) * side * front
        out["eyeBlink" + sfx][:, 1] -= 0.45 * lid * (tags == "")
        out["eyeWide" + sfx][:, 1] = 0.25 * win * upper + 0.2 * lid * (tags == "")
        brow = _bump(x, y, sgn * 3.1, 5.8, 2.2, 1.0, 1.0) * side * front
        inner = _bump(x, y, sgn * 1.6, 5.8, 1.2, 1.0, 1.0) * side * front
        out["browDown" + sfx][:, 1] = -0.45 * brow
        out["browInnerUp" + sfx][:, 1] = 0.55 * inner
        corner = _bump(x, y, sgn * MOUTH_HALF_W, MOUTH_Y, 1.1, 0.8, 1.0) * side * front
        out["mouthSmile" + sfx][:, 0] = sgn * 0.45 * corner
        out["mouthSmile" + sfx][:, 1] = 0.55 * corner
        out["mouthSmile" + sfx][:, 2] = -0.25 * corner
        out["mouthFrown" + sfx][:, 1] = -0.45 * corner
    below = np.where(np.isin(tags, ["mouth_lo", "lip_lo"]), 1.0, (y < MOUTH_Y - 0.05) * 1.0)
    jaw = below * _smooth((6.5 - np.abs(x)) / 4.5) * _smooth((y + 11.5) / 3.0)
    out["jawOpen"][:, 1] = -1.8 * jaw
    out["jawOpen"][:, 2] = -0.5 * jaw
    lips = _bump(x, y, 0.0, MOUTH_Y, 2.4, 1.0, 1.0) * front
    out["mouthPucker"][:, 0] = -0.35 * x * lips / 2.5
    out["mouthPucker"][:, 2] = 0.6 * lips
    return np.stack([out[n] for n in EXPRESSIONS])
