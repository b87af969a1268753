"""Procedural eye-region renderer (UnityEyes-like geometry, rebuilt analytically in torch).

Every pixel casts a perspective ray from a pinhole camera at the origin (x right, y down,
z forward) towards an eyeball of radius 12 mm centred at (0, 0, d). The scene:

* eyeball sphere (sclera) and a corneal bulge: a 7.8 mm sphere whose centre sits 5.7 mm
  along the gaze axis. Rays that enter the cornea are refracted (Snell, n = 1.376) onto
  the iris plane 9.6 mm from the eye centre, so the iris is seen magnified and shifted
  as through a real cornea. The iris has radial fibres, a collarette and limbus
  darkening; the pupil is a disc on the same plane;
* a skin surface (a 40 mm sphere in front of the eye) carrying the eyelid aperture, which
  is defined in head coordinates: the upper lid follows the eye-in-head pitch and the
  blink, the lower lid drops a little on downward gaze; lashes, a crease and the lids'
  cast shadow on the eyeball darken what they should; a lid fold can hang down to the
  lashes in place of the crease, and a dark line can run under the lower lid;
* optionally glasses: an elliptical lens (contrast loss, a glare streak) with a dark rim;
* one directional light plus ambient, Lambert shading, a specular corneal glint;
* then the camera pipeline (see ``synth.camera``).

Labels are exact by construction: the eyeball is rotated to the gaze vector
``g = (-cos p sin y, -sin p, -cos p cos y)``, which is the DESIGN.md convention
(pitch = asin(-g_y), yaw = atan2(-g_x, -g_z)).

Everything is batched elementwise tensor code, so the same function runs on CPU and CUDA.
Per-sample scalars are (B, 1, 1, 1) tensors; per-pixel values are (B, 1, H, W).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from synth.camera import apply_camera_pipeline, camera_operators
from synth.distribution import IMAGE_CENTRES as CENTRES
from synth.distribution import ImageSpec
from synth.eye_distribution import EYE_FACTORS

EYE_RADIUS_MM = 12.0
CORNEA_RADIUS_MM = 7.8
CORNEA_OFFSET_MM = 5.7  # cornea centre along the gaze axis, from the eye centre
LIMBUS_DEPTH_MM = 10.14  # where cornea and eyeball spheres meet (along the axis)
IRIS_PLANE_MM = 9.6
CORNEA_IOR = 1.376
SKIN_RADIUS_MM = 40.0
SKIN_FRONT_MM = EYE_RADIUS_MM + 0.6  # the lids sit just in front of the eyeball
PUPIL_DEPTH_MM = 10.0  # where the projected pupil centre is taken from (metadata only)


def gaze_vector(pitch: Tensor, yaw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    cp = torch.cos(pitch)
    return -cp * torch.sin(yaw), -torch.sin(pitch), -cp * torch.cos(yaw)


def head_rotation(pitch: Tensor, yaw: Tensor, roll: Tensor) -> Tensor:
    """R = Ry(yaw) Rx(-pitch) Rz(roll): maps head coordinates (facing -z) to the camera frame,
    chosen so the head's forward axis has exactly (pitch, yaw) in the gaze convention."""
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cx, sx = torch.cos(-pitch), torch.sin(-pitch)
    cz, sz = torch.cos(roll), torch.sin(roll)
    o, z = torch.ones_like(yaw), torch.zeros_like(yaw)
    ry = torch.stack([cy, z, sy, z, o, z, -sy, z, cy], -1).view(-1, 3, 3)
    rx = torch.stack([o, z, z, z, cx, -sx, z, sx, cx], -1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, z, sz, cz, z, z, z, o], -1).view(-1, 3, 3)
    return ry @ rx @ rz


def _smoothstep01(x: Tensor) -> Tensor:
    return x.clamp(0.0, 1.0)


class _Rays:
    """Unit ray directions per pixel plus the offset-free part of every sphere test.

    A sphere of radius r centred at Q = C + q (C = eye centre at depth d) is hit where
    r^2 > |e|^2 with e = Q - (d.Q) d. Writing e = e0 + q - (d.q) d with
    e0 = C - (d.C) d computed in closed form avoids the cancellation of |Q|^2 - (d.Q)^2
    in float32 when d ~ 600 mm and r ~ 12 mm.
    """

    def __init__(self, xn: Tensor, yn: Tensor, dist: Tensor):
        rho2 = xn * xn + yn * yn  # (B,1,H,W)
        inv = torch.rsqrt(rho2 + 1.0)
        self.dx, self.dy, self.dz = xn * inv, yn * inv, inv
        k = dist * self.dz
        self.e0 = (-k * self.dx, -k * self.dy, dist * rho2 * inv * inv)

    def hit(self, q: tuple[Tensor, Tensor, Tensor], r: float):
        """Near hit of the sphere (C + q, r): returns (mask, point - C as xyz, unit normal)."""
        dq = self.dx * q[0] + self.dy * q[1] + self.dz * q[2]
        ex = self.e0[0] + q[0] - dq * self.dx
        ey = self.e0[1] + q[1] - dq * self.dy
        ez = self.e0[2] + q[2] - dq * self.dz
        disc = r * r - (ex * ex + ey * ey + ez * ez)
        mask = disc > 0
        s = torch.sqrt(disc.clamp_min(0.0))
        nx, ny, nz = (-ex - s * self.dx) / r, (-ey - s * self.dy) / r, (-ez - s * self.dz) / r
        return mask, (nx * r + q[0], ny * r + q[1], nz * r + q[2]), (nx, ny, nz)


def _bilinear_matrix(n: int, m: int, device) -> Tensor:
    """(m, n) matrix that resamples n values to m like bilinear interpolation with
    align_corners=False (as a matrix, value noise costs two small GEMMs)."""
    eye = torch.eye(n, dtype=torch.float32).view(n, 1, n)
    up = F.interpolate(eye, size=m, mode="linear", align_corners=False)  # (n, 1, m)
    return up.view(n, m).T.contiguous().to(device)


def _colour(rgb: tuple[float, float, float], channels: int, device) -> Tensor:
    c = torch.tensor(rgb, device=device)
    if channels == 1:  # luminance of the colour (Rec. 601), so gray and RGB agree
        c = (c * torch.tensor([0.299, 0.587, 0.114], device=device)).sum(0, keepdim=True)
    return c.view(1, channels, 1, 1)


#: Albedo anchors (linear RGB); skin and iris colours interpolate between them.
PALETTE = {
    "skin_dark": (0.30, 0.18, 0.12), "skin_light": (1.0, 0.80, 0.70),
    "iris_brown": (0.55, 0.33, 0.15), "iris_green": (0.45, 0.50, 0.25),
    "iris_blue": (0.40, 0.55, 0.80), "sclera_white": (1.0, 1.0, 0.98),
    "sclera_tinted": (0.98, 0.80, 0.72), "pupil": (0.02, 0.02, 0.02),
    "canthus": (0.75, 0.45, 0.45),
}


def palette(channels: int, device) -> dict[str, Tensor]:
    return {k: _colour(v, channels, device) for k, v in PALETTE.items()}


def draw_eye_noise(b: int, spec: ImageSpec, gen: torch.Generator, device) -> dict[str, Tensor]:
    """All randomness a render needs beyond the factors, drawn up front so that the
    renderer itself is a pure function (and compiles into one graph)."""
    h, w = spec.height, spec.width
    coarse = torch.rand((b, 1, 4, 6), generator=gen, device=device)
    fine = torch.rand((b, 1, 9, 15), generator=gen, device=device)
    up4, up6, up9, up15 = (_bilinear_matrix(n, m, device) for n, m in ((4, h), (6, w), (9, h), (15, w)))
    # Pixel centres relative to the patch centre, as full contiguous grids: with them the
    # compiled kernel runs one flat, fully vectorised loop over H*W.
    v, u = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32) + (0.5 - h / 2),
                          torch.arange(w, device=device, dtype=torch.float32) + (0.5 - w / 2),
                          indexing="ij")
    return {
        "iris_phase": torch.rand((b, 4, 1, 1), generator=gen, device=device),
        "skin": 0.6 * (up4 @ coarse @ up6.T) + 0.4 * (up9 @ fine @ up15.T) - 0.5,
        "sensor": torch.randn((b, spec.channels, h, w), generator=gen, device=device),
        "u": u.reshape(1, 1, h, w).contiguous(),
        "v": v.reshape(1, 1, h, w).contiguous(),
        "ops": camera_operators(h, w, device),
        # lens glare: streak angle, offset and width (used only where glasses = 1)
        "glare": torch.rand((b, 3, 1, 1), generator=gen, device=device),
    }


def _powe(log_x: Tensor, p: float | Tensor) -> Tensor:
    """x**p from log(x): torch's pow with a non-integer exponent is scalar code on CPU,
    about 30x slower than exp/log, which vectorise."""
    return torch.exp(log_x * p)


def _mix(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    return a + (b - a) * t


def render_eyes(
    factors: Mapping[str, Tensor], spec: ImageSpec, gen: torch.Generator, compiled: bool = False,
    centre: str = "eyeball",
) -> tuple[Tensor, dict[str, Tensor]]:
    """Render a batch of eye patches.

    ``factors`` maps every name in EYE_FACTORS to a (B,) tensor on the target device;
    ``gen`` (on the same device) supplies the procedural textures and sensor noise.
    Returns uint8 images (B, H, W) for grayscale or (B, H, W, 3) for RGB, and per-sample
    geometry (projected pupil centre in pixels) for metadata. ``compiled`` runs the
    torch.compile'd graph (about 3x faster on CPU after a one-off compile; bytes may differ
    from eager in the last bit before quantisation, so a batch records which one made it).
    ``centre``: what the patch is centred on, ``"eyeball"`` (the eyeball's centre) or
    ``"corners"`` (the midpoint of the eye corners, as MPIIGaze-style normalisation centres
    real eyes: under head rotation the iris then sits off centre while the gaze label, in
    the camera frame, is unchanged) or ``"outline"`` (the mean of six points on the
    eye's outline, its two corners and two points on each lid, as crops made from 68-point
    face landmarks centre real eyes: the lids follow vertical gaze, so such a crop follows
    part of it too and the iris moves less in the patch than the eye turns).
    """
    if centre not in CENTRES:
        raise ValueError(f"centre must be one of {CENTRES}, got {centre!r}")
    missing = [n for n in EYE_FACTORS if n not in factors]
    if missing:
        raise KeyError(f"render_eyes: missing factors {missing}")
    first = factors["gaze_pitch"]
    dev, b = first.device, first.shape[0]
    f = {k: factors[k].to(torch.float32).view(b, 1, 1, 1) for k in EYE_FACTORS}
    noise = draw_eye_noise(b, spec, gen, dev)
    pal = palette(spec.channels, dev)
    if compiled and dev.type == "cpu":
        from synth.derived_cache import source_fingerprint
        from synth.eye_kernel import packaged_renderer

        h, w = spec.height, spec.width
        source = source_fingerprint(__name__, "synth.camera", "synth.eye_distribution")
        packaged = packaged_renderer(functools.partial(_render, h=h, w=w, centre=centre),
                                     (f, noise, pal), source=source, batch=b, height=h, width=w,
                                     channels=spec.channels, centre=centre)
        if packaged is not None:
            return tuple(packaged(f, noise, pal))
    fn = _compiled_render() if compiled else _render
    return fn(f, noise, pal, spec.height, spec.width, centre)


_COMPILED = None


def _compiled_render():
    """``torch.compile``'d in this process: CUDA, and the fallback where the ahead-of-time
    package (synth.eye_kernel, same kernels) cannot be built."""
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = torch.compile(_render, dynamic=False)
    return _COMPILED


def corner_centre_shift(rot: Tensor, f: dict[str, Tensor], down_mm: Tensor | float = 0.0
                        ) -> tuple[Tensor, Tensor]:
    """Where the midpoint of the eye corners (moved ``down_mm`` down the head's vertical)
    projects, in pixels from where the eyeball centre projects, ``(B,1,1,1)`` each: the
    corners sit on the skin in front of the eyeball, so a turned head moves them sideways
    in the image by about ``(skin depth) * sin(head yaw)`` while the eyeball centre stays
    put."""
    half_w = 0.5 * f["eye_width_mm"]
    front = SKIN_FRONT_MM - (SKIN_RADIUS_MM - torch.sqrt(SKIN_RADIUS_MM ** 2 - half_w * half_w))
    b = rot.shape[0]
    cx, cy, cz = (down_mm * rot[:, i, 1].view(b, 1, 1, 1) - front * rot[:, i, 2].view(b, 1, 1, 1)
                  for i in range(3))
    z = f["camera_distance_mm"] + cz
    return f["focal_length_px"] * cx / z, f["focal_length_px"] * cy / z


#: lid profiles at a third of the eye's width from its middle, where 68-point face
#: landmarks put two points on each lid (upper ``(1 - s^2)^0.7``, lower ``^0.9``, as drawn)
_LID_UP_AT_THIRD, _LID_LO_AT_THIRD = (8.0 / 9.0) ** 0.7, (8.0 / 9.0) ** 0.9


def lid_heights(f: dict[str, Tensor], sin_eye_pitch: Tensor) -> tuple[Tensor, Tensor]:
    """How far the upper and lower lid reach above and below the corners' line at
    mid-eye, mm: the lids follow the eye's pitch in the head (a blink closes them)."""
    a_lo = (4.0 - 0.35 * EYE_RADIUS_MM * sin_eye_pitch).clamp_min(2.2)
    a_up = 0.6 * EYE_RADIUS_MM * sin_eye_pitch + 3.6 * f["eye_openness"]
    a_up = torch.where(f["blink"] > 0.5, 0.6 - a_lo, a_up).clamp_min(0.4 - a_lo)
    return a_up, a_lo


def outline_centre_down_mm(a_up: Tensor, a_lo: Tensor) -> Tensor:
    """How far below the corners' midpoint the mean of six outline landmarks lies (two
    corners on the line, two points on each lid at a third of the width), mm."""
    return (a_lo * _LID_LO_AT_THIRD - a_up * _LID_UP_AT_THIRD) / 3.0


def _band(dist: Tensor, width: Tensor, aa: Tensor) -> Tensor:
    """Antialiased coverage of a band ``0 <= dist <= width`` (mm); a band that narrows to
    nothing (at the eye corners) fades out instead of leaving a one-pixel line."""
    return _smoothstep01((width - dist) / aa + 0.5) * _smoothstep01(dist / aa + 0.5) * (
        _smoothstep01(width / aa))


def _with_glasses(radiance: Tensor, f: dict[str, Tensor], glare_noise: Tensor, hx: Tensor,
                  hy: Tensor, aa: Tensor, inten: Tensor, amb: Tensor) -> Tensor:
    """:func:`_glasses` on the samples that wear them. Eagerly only those rows are
    computed (15 % of a default batch: the glasses cost 20 % of a render when every row
    paid for them); a compiled graph keeps static shapes and computes every row."""
    if torch.compiler.is_compiling():
        return _glasses(radiance, f, glare_noise, hx, hy, aa, inten, amb)
    rows = torch.nonzero(f["glasses"].view(-1) > 0.5).view(-1)
    if len(rows) == 0:
        return radiance
    sub = {k: v[rows] for k, v in f.items()}
    out = radiance.clone()
    out[rows] = _glasses(radiance[rows], sub, glare_noise[rows], hx[rows], hy[rows], aa[rows],
                         inten[rows], amb[rows])
    return out


def _glasses(radiance: Tensor, f: dict[str, Tensor], glare_noise: Tensor, hx: Tensor, hy: Tensor,
             aa: Tensor, inten: Tensor, amb: Tensor) -> Tensor:
    """Spectacles where ``glasses`` = 1: an elliptical lens (half-width ``lens_width_mm``,
    half-height ``lens_height_mm``, centre ``lens_offset_mm`` below the eye) in head
    coordinates, seen as a slight loss of contrast and a bright glare streak inside it,
    and a dark frame rim ``glasses_frame_mm`` thick along its edge. Parallax between the
    lens plane and the skin is ignored (a few pixels at most at these scales)."""
    on = f["glasses"]
    a, b = f["lens_width_mm"], f["lens_height_mm"]
    ex, ey = hx / a, (hy - f["lens_offset_mm"]) / b
    ell = torch.sqrt(ex * ex + ey * ey).clamp_min(1e-4)
    grad = torch.sqrt((ex / a) ** 2 + (ey / b) ** 2).clamp_min(1e-4) / ell
    d_rim = (ell - 1.0) / grad  # signed distance to the rim, mm (first order)
    inside = _smoothstep01(-d_rim / aa + 0.5) * on
    ang = (glare_noise[:, 0:1] - 0.5) * 2.0  # streak direction, +-1 rad from vertical
    pos = (glare_noise[:, 1:2] - 0.5) * a
    width = 0.3 + 1.0 * glare_noise[:, 2:3]
    streak = torch.exp(-(((hx * torch.cos(ang) + hy * torch.sin(ang) - pos) / width) ** 2))
    lens = radiance * (1.0 - 0.12 * inside) + inside * f["lens_glare"] * 0.3 * inten * streak
    rim = _smoothstep01((0.5 * f["glasses_frame_mm"] - d_rim.abs()) / aa + 0.5) * on
    frame_rad = 0.06 * (amb + inten)  # dark plastic or metal, barely lit
    return _mix(lens, frame_rad.expand_as(lens), rim)


def _render(f: dict[str, Tensor], noise: dict[str, Tensor], pal: dict[str, Tensor], h: int, w: int,
            centre: str = "eyeball"):
    """The pure part of render_eyes: factors (B,1,1,1) + pre-drawn noise -> images, geometry."""
    b = f["gaze_pitch"].shape[0]
    R, S = EYE_RADIUS_MM, SKIN_RADIUS_MM

    # --- gaze and head frames (per sample) -------------------------------------------
    gx, gy, gz = gaze_vector(f["gaze_pitch"], f["gaze_yaw"])
    rot = head_rotation(f["head_pitch"].view(b), f["head_yaw"].view(b), f["head_roll"].view(b))

    # eye-in-head gaze: R^T g; its pitch drives the lids
    r5 = rot.view(b, 3, 3, 1, 1)
    ghy = r5[:, 0, 1] * gx.view(b, 1, 1) + r5[:, 1, 1] * gy.view(b, 1, 1) + r5[:, 2, 1] * gz.view(b, 1, 1)
    sin_eye_pitch = (-ghy).view(b, 1, 1, 1)
    a_up, a_lo = lid_heights(f, sin_eye_pitch)

    # --- rays ------------------------------------------------------------------------
    fl, dist = f["focal_length_px"], f["camera_distance_mm"]
    ox, oy = f["offset_x_px"], f["offset_y_px"]  # where the patch centre's point projects
    if centre != "eyeball":  # centred where real crops are (render_eyes)
        down = outline_centre_down_mm(a_up, a_lo) if centre == "outline" else 0.0
        sx, sy = corner_centre_shift(rot, f, down)
        ox, oy = ox - sx, oy - sy
    rays = _Rays((noise["u"] - ox) / fl, (noise["v"] - oy) / fl, dist)
    aa = dist / fl  # one pixel in mm at the eye: the width of every soft edge
    rot = r5

    # --- skin surface and eyelid aperture (head coordinates) -------------------------
    off = SKIN_RADIUS_MM - SKIN_FRONT_MM
    qs = (rot[:, 0, 2].unsqueeze(1) * off, rot[:, 1, 2].unsqueeze(1) * off,
          rot[:, 2, 2].unsqueeze(1) * off)
    _, ps, ns = rays.hit(qs, S)
    hx = rot[:, 0, 0].unsqueeze(1) * ps[0] + rot[:, 1, 0].unsqueeze(1) * ps[1] + rot[:, 2, 0].unsqueeze(1) * ps[2]
    hy = rot[:, 0, 1].unsqueeze(1) * ps[0] + rot[:, 1, 1].unsqueeze(1) * ps[1] + rot[:, 2, 1].unsqueeze(1) * ps[2]

    half_w = 0.5 * f["eye_width_mm"]
    s = hx / half_w
    centre_y = f["lid_tilt_mm"] * s * 0.5
    base = (1.0 - s * s).clamp_min(0.0)
    log_base = torch.log(base.clamp_min(1e-6))
    prof_up, prof_lo = _powe(log_base, 0.7) * (base > 0), _powe(log_base, 0.9) * (base > 0)
    y_up = centre_y - a_up * prof_up
    y_lo = centre_y + a_lo * prof_lo
    d_up, d_lo = hy - y_up, y_lo - hy  # > 0 inside the aperture, in mm
    aperture = _smoothstep01(torch.minimum(d_up, d_lo) / aa + 0.5) * _smoothstep01(
        (1.0 - s.abs()) * half_w / aa + 0.5)

    # --- eyeball, cornea, iris -------------------------------------------------------
    zero = torch.zeros_like(gx)
    hit_e, pe, ne = rays.hit((zero, zero, zero), R)
    oc = CORNEA_OFFSET_MM
    hit_c, pc, nc = rays.hit((gx * oc, gy * oc, gz * oc), CORNEA_RADIUS_MM)
    along = pc[0] * gx + pc[1] * gy + pc[2] * gz
    through_cornea = hit_c & (along > LIMBUS_DEPTH_MM)
    # refraction into the cornea, then onto the iris plane
    eta = 1.0 / CORNEA_IOR
    cosi = -(nc[0] * rays.dx + nc[1] * rays.dy + nc[2] * rays.dz)
    k = (1.0 - eta * eta * (1.0 - cosi * cosi)).clamp_min(0.0)
    coef = eta * cosi - torch.sqrt(k)
    tx, ty, tz = eta * rays.dx + coef * nc[0], eta * rays.dy + coef * nc[1], eta * rays.dz + coef * nc[2]
    t_dot_g = (tx * gx + ty * gy + tz * gz).clamp_max(-1e-3)
    step = (IRIS_PLANE_MM - along) / t_dot_g
    ix = pc[0] + step * tx - IRIS_PLANE_MM * gx
    iy = pc[1] + step * ty - IRIS_PLANE_MM * gy
    iz = pc[2] + step * tz - IRIS_PLANE_MM * gz
    r_iris = torch.sqrt(ix * ix + iy * iy + iz * iz)
    # polar angle on the iris plane, in a basis (e1, e2) perpendicular to g
    n1 = torch.rsqrt(gz * gz + gx * gx)
    e1x, e1z = -gz * n1, gx * n1
    e2x, e2y, e2z = gy * e1z, gz * e1x - gx * e1z, -gy * e1x  # g x e1
    phi = torch.atan2(ix * e2x + iy * e2y + iz * e2z, ix * e1x + iz * e1z)

    # --- procedural textures ---------------------------------------------------------
    ri, rp = f["iris_radius_mm"], f["pupil_radius_mm"]
    ph = noise["iris_phase"] * 6.2832
    k1 = 9.0 + torch.floor(ph[:, 2:3] * 2.0)  # 9..21 fibre bundles
    rr = r_iris / ri
    fibres = 0.5 * torch.sin(k1 * phi + ph[:, 0:1]) + 0.5 * torch.sin(
        2.7 * k1 * phi + ph[:, 1:2] + 9.0 * rr)
    iris_tex = 1.0 + 0.35 * f["iris_texture"] * fibres
    iris_tex = iris_tex * (1.0 - 0.55 * _smoothstep01((rr - 0.78) * 4.5))  # limbus ring
    iris_tex = iris_tex * (1.0 + 0.25 * torch.exp(-((rr - 0.45) * 8.0) ** 2))  # collarette
    skin_tex = 1.0 + f["skin_texture"] * 0.45 * (
        noise["skin"])

    # --- albedo per material ---------------------------------------------------------
    tone = f["skin_tone"]
    skin_rgb = _mix(pal["skin_dark"], pal["skin_light"], tone)
    hue = f["iris_hue"]
    iris_rgb = torch.where(
        hue < 0.5,
        _mix(pal["iris_brown"], pal["iris_green"], hue * 2),
        _mix(pal["iris_green"], pal["iris_blue"], hue * 2 - 1),
    ) * (f["iris_albedo"] * 2.0)
    sclera_rgb = _mix(pal["sclera_white"], pal["sclera_tinted"],
                      f["sclera_tint"]) * f["sclera_albedo"]
    pupil_rgb = pal["pupil"]

    # --- lighting --------------------------------------------------------------------
    pol, azi = f["light_polar"], f["light_azimuth"]
    lx, ly, lz = torch.sin(pol) * torch.cos(azi), torch.sin(pol) * torch.sin(azi), -torch.cos(pol)
    inten, amb = f["light_intensity"], f["ambient"]
    # half vector with the view direction taken as -z (rays are within 2 deg of it)
    hxv, hyv, hzv = lx, ly, lz - 1.0
    hn = torch.rsqrt(hxv * hxv + hyv * hyv + hzv * hzv)
    hxv, hyv, hzv = hxv * hn, hyv * hn, hzv * hn

    def lambert(n):
        return amb + inten * (n[0] * lx + n[1] * ly + n[2] * lz).clamp_min(0.0)

    spec_c = (nc[0] * hxv + nc[1] * hyv + nc[2] * hzv).clamp_min(0.0)
    glint = f["glint_strength"] * inten * 2.5 * _powe(torch.log(spec_c.clamp_min(1e-6)), 300.0)
    spec_e = (ne[0] * hxv + ne[1] * hyv + ne[2] * hzv).clamp_min(0.0)

    # eyeball: sclera, iris seen through the cornea, pupil
    iris_w = torch.where(through_cornea, _smoothstep01((ri - r_iris) / aa + 0.5), zero)
    pupil_w = _smoothstep01((rp - r_iris) / aa + 0.5) * iris_w
    eye_alb = _mix(sclera_rgb, iris_rgb * iris_tex, iris_w)
    eye_alb = _mix(eye_alb, pupil_rgb, pupil_w)
    shade_eye = lambert(ne)
    lid_shadow = (1.0 - 0.6 * torch.exp(-d_up.clamp_min(0.0) / 1.2)) * (
        1.0 - 0.25 * torch.exp(-d_lo.clamp_min(0.0) / 0.6))
    eye_rad = eye_alb * shade_eye * lid_shadow
    eye_rad = eye_rad + torch.where(through_cornea, glint, 0.06 * f["glint_strength"] * _powe(torch.log(spec_e.clamp_min(1e-6)), 40.0))
    canthus = skin_rgb * pal["canthus"]
    eye_rad = torch.where(hit_e, eye_rad, canthus * shade_eye)

    # skin: lash lines along both lid margins, a crease (or a fold hanging down to the
    # lashes), a soft shadow under the lower lid
    root_up, root_lo = prof_up.sqrt(), prof_lo.sqrt()  # 1 mid-eye, 0 at the corners
    above, below = -d_up, -d_lo  # mm above the upper / below the lower lid margin
    lash_w = f["lash_mm"] * root_up
    lash_lo_w = f["lower_lash_mm"] * root_lo
    lash = 1.0 - 0.85 * _band(above, lash_w, aa)
    lash_lo = 1.0 - 0.7 * _band(below, lash_lo_w, aa)
    fold = f["lid_fold"]
    crease_y = _mix(centre_y - (3.6 + f["crease_mm"]) * root_up, y_up - lash_w - 0.6, fold)
    crease_w = 1.0 + 0.4 * fold  # a fold casts a wider, deeper shadow than a crease
    crease = 1.0 - (0.35 + 0.15 * fold) * torch.exp(-(((hy - crease_y) / crease_w) ** 2)) * (
        base > 0)
    # only below the lower lid and within the eye's width: a shadow that did not fade at
    # the corners drew a horizontal seam across the whole patch
    under = 1.0 - 0.2 * root_lo * _smoothstep01(below / aa + 0.5) * torch.exp(
        -below.clamp_min(0.0) / 0.8)
    skin_rad = skin_rgb * skin_tex * lash * lash_lo * crease * under * lambert(ns)

    radiance = _mix(skin_rad, eye_rad, aperture)
    radiance = _with_glasses(radiance, f, noise["glare"], hx, hy, aa, inten, amb)
    images = apply_camera_pipeline(radiance, f, noise["sensor"], noise["ops"])

    # projected pupil centre (pixels), for metadata and geometric tests
    px = PUPIL_DEPTH_MM * gx.view(b)
    py = PUPIL_DEPTH_MM * gy.view(b)
    pz = dist.view(b) + PUPIL_DEPTH_MM * gz.view(b)
    geo = {
        "pupil_x_px": fl.view(b) * px / pz + w / 2 + ox.reshape(b),
        "pupil_y_px": fl.view(b) * py / pz + h / 2 + oy.reshape(b),
    }
    return images, geo
