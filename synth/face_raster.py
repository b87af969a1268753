"""Numba kernels for the face renderer: projection, z-buffer rasterisation, vertex
normals, shading, background, 2-D occluder shapes and the camera finish.

Why numba: notes/render.md measured a numba scanline z-buffer at ~1,000 img/s for the
ICT mesh at 128 px while numpy/torch fragment lists stayed below 150 img/s, and the
per-pixel shading and camera steps are loops that numpy can only do with many large
temporaries. Every kernel works on one image, single-threaded, and releases the GIL.

Conventions: pixel (row i, column j) has its centre at (x=j, y=i) (0-based pixel-centre
convention). Depth is the camera-frame z (cm, away from the camera). A pixel belongs to a
triangle when its centre lies inside or on the triangle's edges.

Compiled code is cached on disk, but not beside this file (the repository): in
``$NUMBA_CACHE_DIR`` when set, else in the virtual environment (``<venv>/var/cache/
synthloop-numba``), else in the system temp folder. The cache is attached on the first
call of ``ensure_cache()``, not at import, so importing this module writes nothing.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from numba import njit

# No 'nnan'/'ninf': the z-buffer compares against a large sentinel and must stay exact.
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
_jit = njit(nogil=True, fastmath=_FAST, error_model="numpy", cache=False)

FAR = np.float32(1e30)  # empty z-buffer value


# --------------------------------------------------------------------------- geometry


@_jit
def rotate_groups(verts, group, centres, rots):
    """Rotate the vertices of each group g >= 1 rigidly about ``centres[g-1]`` by
    ``rots[g-1]`` (in place): the eyeballs turning for gaze."""
    for i in range(verts.shape[0]):
        g = group[i]
        if g <= 0:
            continue
        c = centres[g - 1]
        r = rots[g - 1]
        x = verts[i, 0] - c[0]
        y = verts[i, 1] - c[1]
        z = verts[i, 2] - c[2]
        verts[i, 0] = r[0, 0] * x + r[0, 1] * y + r[0, 2] * z + c[0]
        verts[i, 1] = r[1, 0] * x + r[1, 1] * y + r[1, 2] * z + c[1]
        verts[i, 2] = r[2, 0] * x + r[2, 1] * y + r[2, 2] * z + c[2]


@_jit
def project(verts, rot, trans, cam, depth, uv):
    """Model -> camera frame (x right, y down, z forward): cam = rot @ v + trans, depth =
    its z; then the normalised pinhole projection uv = (x / z, y / z)."""
    for i in range(verts.shape[0]):
        x = verts[i, 0]
        y = verts[i, 1]
        z = verts[i, 2]
        cx = rot[0, 0] * x + rot[0, 1] * y + rot[0, 2] * z + trans[0]
        cy = rot[1, 0] * x + rot[1, 1] * y + rot[1, 2] * z + trans[1]
        cz = rot[2, 0] * x + rot[2, 1] * y + rot[2, 2] * z + trans[2]
        cam[i, 0] = cx
        cam[i, 1] = cy
        cam[i, 2] = cz
        depth[i] = cz
        uv[i, 0] = cx / cz
        uv[i, 1] = cy / cz


@_jit
def slide_contour(uv, cand, offsets, du, ids):
    """Jaw contour points: for jaw point j (candidates ``cand[offsets[j]:offsets[j+1]]``)
    pick the candidate farthest out along the image direction ``du`` of the head's x
    axis: the minimum for points 0-7, the maximum for 9-16; the chin (8) stays."""
    for j in range(17):
        if j == 8:
            continue
        best = cand[offsets[j]]
        bs = uv[best, 0] * du[0] + uv[best, 1] * du[1]
        for k in range(offsets[j] + 1, offsets[j + 1]):
            i = cand[k]
            sc = uv[i, 0] * du[0] + uv[i, 1] * du[1]
            if (j < 8 and sc < bs) or (j > 8 and sc > bs):
                bs = sc
                best = i
        ids[j] = best


@_jit
def to_pixels(uv, x0, y0, scale, pix):
    """Crop-box mapping: pix = (uv - (x0, y0)) * scale - 0.5, so the box's top-left corner
    lands on the top-left pixel's outer corner."""
    for i in range(uv.shape[0]):
        pix[i, 0] = (uv[i, 0] - x0) * scale - 0.5
        pix[i, 1] = (uv[i, 1] - y0) * scale - 0.5


# --------------------------------------------------------------------------- raster


@_jit
def rasterise(pix, depth, cam, tris, front, n_culled, skip_lo, skip_hi, sign,
              zbuf, tri_id, bary, normals):
    """Z-buffer rasterisation, with the vertex normals of the drawn surface on the way.

    Triangles [0, n_culled) are drawn only when their screen winding has the sign
    ``front`` (back-face culling); the rest are two-sided overlays (eyelash strips):
    depth-tested but not written to the z-buffer, so they colour pixels without hiding
    the landmarks under them (real lashes are far thinner than a pixel). Triangles
    [skip_lo, skip_hi) are skipped (the mouth interior when the lips are closed). Depth
    is interpolated perspective-correctly: 1/z is affine on screen, so the test runs on
    1/z (no division per pixel) and zbuf is converted at the end.

    Writes per pixel: ``zbuf`` (camera z, FAR where empty), ``tri_id`` (-1 where empty)
    and ``bary`` (H, W, 2): the weights of the triangle's 2nd and 3rd vertex. Writes per
    vertex: ``normals``, unit area-weighted normals in the camera frame (``sign`` +1/-1
    makes them point out of the surface for the mesh's winding) summed over the triangles
    that passed culling: the ones facing away are never drawn, so vertices on the
    silhouette lean slightly toward the camera, which nobody sees at this size."""
    h, w = zbuf.shape
    zero = np.float32(0.0)
    one = np.float32(1.0)
    zbuf[:] = zero  # holds 1/z while drawing: larger = nearer
    tri_id[:] = -1
    normals[:] = zero
    q = np.empty(depth.shape[0], np.float32)
    for i in range(depth.shape[0]):
        q[i] = one / depth[i]
    fw = np.float32(w - 1)
    fh = np.float32(h - 1)
    for t in range(tris.shape[0]):
        if skip_lo <= t < skip_hi:
            continue
        i0 = tris[t, 0]
        i1 = tris[t, 1]
        i2 = tris[t, 2]
        x0 = pix[i0, 0]
        y0 = pix[i0, 1]
        x1 = pix[i1, 0]
        y1 = pix[i1, 1]
        x2 = pix[i2, 0]
        y2 = pix[i2, 1]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if t < n_culled:
            if area * front <= zero:
                continue
        elif area == zero:
            continue
        ux = cam[i1, 0] - cam[i0, 0]
        uy = cam[i1, 1] - cam[i0, 1]
        uz = cam[i1, 2] - cam[i0, 2]
        vx = cam[i2, 0] - cam[i0, 0]
        vy = cam[i2, 1] - cam[i0, 1]
        vz = cam[i2, 2] - cam[i0, 2]
        nx = uy * vz - uz * vy
        ny = uz * vx - ux * vz
        nz = ux * vy - uy * vx
        normals[i0, 0] += nx
        normals[i0, 1] += ny
        normals[i0, 2] += nz
        normals[i1, 0] += nx
        normals[i1, 1] += ny
        normals[i1, 2] += nz
        normals[i2, 0] += nx
        normals[i2, 1] += ny
        normals[i2, 2] += nz
        # pixel-centre bounding box; coordinates are clamped to >= 0 first, so int()
        # is floor and int() + (int() < v) is ceil (cheaper than the libm calls)
        fx0 = max(min(x0, x1, x2), zero)
        fx1 = min(max(x0, x1, x2), fw)
        if fx0 > fx1:
            continue
        fy0 = max(min(y0, y1, y2), zero)
        fy1 = min(max(y0, y1, y2), fh)
        if fy0 > fy1:
            continue
        xmin = int(fx0)
        xmin += np.float32(xmin) < fx0
        xmax = int(fx1)
        if xmin > xmax:
            continue
        ymin = int(fy0)
        ymin += np.float32(ymin) < fy0
        ymax = int(fy1)
        if ymin > ymax:
            continue
        inv = one / area
        overlay = t >= n_culled
        # barycentric weights of vertices 0 and 1 as affine forms a + b x + c y
        a0 = (x1 * y2 - x2 * y1) * inv
        b0 = (y1 - y2) * inv
        c0 = (x2 - x1) * inv
        a1 = (x2 * y0 - x0 * y2) * inv
        b1 = (y2 - y0) * inv
        c1 = (x0 - x2) * inv
        q0 = q[i0]
        q1 = q[i1]
        q2 = q[i2]
        for y in range(ymin, ymax + 1):
            fy = np.float32(y)
            r0 = a0 + c0 * fy
            r1 = a1 + c1 * fy
            for x in range(xmin, xmax + 1):
                fx = np.float32(x)
                e0 = r0 + b0 * fx
                e1 = r1 + b1 * fx
                e2 = one - e0 - e1
                if min(e0, e1, e2) >= zero:
                    qz = e0 * q0 + e1 * q1 + e2 * q2
                    if qz > zbuf[y, x]:
                        if not overlay:
                            zbuf[y, x] = qz
                        tri_id[y, x] = t
                        bary[y, x, 0] = e1
                        bary[y, x, 1] = e2
    for y in range(h):
        for x in range(w):
            zbuf[y, x] = one / zbuf[y, x] if tri_id[y, x] >= 0 else FAR
    for i in range(normals.shape[0]):
        nn = math.sqrt(normals[i, 0] ** 2 + normals[i, 1] ** 2 + normals[i, 2] ** 2)
        if nn > 0:
            s = sign / nn
            normals[i, 0] *= s
            normals[i, 1] *= s
            normals[i, 2] *= s


# --------------------------------------------------------------------------- shading


@_jit
def mix_albedo(indptr, chan, weight, colours, mul, out):
    """Per-vertex albedo = sum over the vertex's material channels of weight * colour,
    times ``mul`` (baked ambient occlusion), clipped to [0, 1]. Weights are stored sparse
    (CSR: most vertices use a handful of the channels): ~7 multiply-adds per vertex."""
    for i in range(out.shape[0]):
        r = np.float32(0.0)
        g = np.float32(0.0)
        b = np.float32(0.0)
        for k in range(indptr[i], indptr[i + 1]):
            c = chan[k]
            wk = weight[k]
            r += wk * colours[c, 0]
            g += wk * colours[c, 1]
            b += wk * colours[c, 2]
        m = mul[i]
        out[i, 0] = min(max(r * m, 0.0), 1.0)
        out[i, 1] = min(max(g * m, 0.0), 1.0)
        out[i, 2] = min(max(b * m, 0.0), 1.0)


@_jit
def shade(tri_id, bary, tris, normals, albedo, gloss, light, out):
    """Per-pixel shading of the drawn pixels (others keep ``out``, the background).

    ``light`` (19,): key direction (3, unit, toward the light, camera frame), key rgb (3),
    fill direction (3), fill rgb (3), ambient rgb (3), specular strength, log2 of the
    shininess (the power is taken by repeated squaring), wrap, sky bias. Diffuse is "wrapped" Lambert, max(0, (n.l + wrap) / (1 + wrap)),
    a cheap stand-in for skin's subsurface softening; ambient is a hemisphere term
    brighter for upward normals; specular is Blinn-Phong toward a camera on the -z axis,
    scaled per vertex by ``gloss`` (skin, lips, eyes and teeth differ)."""
    h, w = tri_id.shape
    lkx, lky, lkz = light[0], light[1], light[2]
    kr, kg, kb = light[3], light[4], light[5]
    lfx, lfy, lfz = light[6], light[7], light[8]
    fr, fg, fb = light[9], light[10], light[11]
    ar, ag, ab = light[12], light[13], light[14]
    ks = light[15]
    n_sq = int(light[16])
    wrap = light[17]
    sky = light[18]
    hx, hy, hz = lkx, lky, lkz - 1.0
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    if hn > 0:
        hx /= hn
        hy /= hn
        hz /= hn
    inv_wrap = 1.0 / (1.0 + wrap)
    for y in range(h):
        for x in range(w):
            t = tri_id[y, x]
            if t < 0:
                continue
            a = tris[t, 0]
            b = tris[t, 1]
            c = tris[t, 2]
            w1 = bary[y, x, 0]
            w2 = bary[y, x, 1]
            w0 = 1.0 - w1 - w2
            nx = w0 * normals[a, 0] + w1 * normals[b, 0] + w2 * normals[c, 0]
            ny = w0 * normals[a, 1] + w1 * normals[b, 1] + w2 * normals[c, 1]
            nz = w0 * normals[a, 2] + w1 * normals[b, 2] + w2 * normals[c, 2]
            nn = math.sqrt(nx * nx + ny * ny + nz * nz)
            if nn > 0:
                nx /= nn
                ny /= nn
                nz /= nn
            if nz > 0.0:  # a back surface seen through a hole: treat as facing us
                nz = -nz
            dk = max(0.0, (nx * lkx + ny * lky + nz * lkz + wrap) * inv_wrap)
            df = max(0.0, (nx * lfx + ny * lfy + nz * lfz + wrap) * inv_wrap)
            hemi = 1.0 - sky + sky * (0.5 - 0.5 * ny)
            sp = 0.0
            ndh = nx * hx + ny * hy + nz * hz
            if ndh > 0.0 and dk > 0.0:
                pw = ndh
                for _ in range(n_sq):
                    pw *= pw
                sp = ks * (w0 * gloss[a] + w1 * gloss[b] + w2 * gloss[c]) * pw
            dr = ar * hemi + kr * dk + fr * df
            dg = ag * hemi + kg * dk + fg * df
            db = ab * hemi + kb * dk + fb * df
            out[y, x, 0] = (w0 * albedo[a, 0] + w1 * albedo[b, 0] + w2 * albedo[c, 0]) * dr + sp * kr
            out[y, x, 1] = (w0 * albedo[a, 1] + w1 * albedo[b, 1] + w2 * albedo[c, 1]) * dg + sp * kg
            out[y, x, 2] = (w0 * albedo[a, 2] + w1 * albedo[b, 2] + w2 * albedo[c, 2]) * db + sp * kb


@_jit
def upsample_bilinear(grid, tri_id, out):
    """Fill ``out`` (H, W, 3) by bilinear interpolation of a coarse (gh, gw, 3) grid whose
    corner cells sit on the image corners: the background. Pixels where ``tri_id`` >= 0
    (the face, shaded afterwards) are skipped."""
    h, w = out.shape[0], out.shape[1]
    gh, gw = grid.shape[0], grid.shape[1]
    sy = (gh - 1) / max(h - 1, 1)
    sx = (gw - 1) / max(w - 1, 1)
    ix0 = np.empty(w, np.int64)
    ix1 = np.empty(w, np.int64)
    tx = np.empty(w, np.float32)
    for x in range(w):
        fx = x * sx
        ix0[x] = min(int(fx), max(gw - 2, 0))
        ix1[x] = min(ix0[x] + 1, gw - 1)
        tx[x] = fx - ix0[x] if gw > 1 else 0.0
    for y in range(h):
        fy = y * sy
        iy = min(int(fy), max(gh - 2, 0))
        iy1 = min(iy + 1, gh - 1)
        ty = fy - iy if gh > 1 else 0.0
        for x in range(w):
            if tri_id[y, x] >= 0:
                continue
            a = ix0[x]
            b = ix1[x]
            t = tx[x]
            for k in range(3):
                top = grid[iy, a, k] + (grid[iy, b, k] - grid[iy, a, k]) * t
                bot = grid[iy1, a, k] + (grid[iy1, b, k] - grid[iy1, a, k]) * t
                out[y, x, k] = top + (bot - top) * ty


# --------------------------------------------------------------------------- occluders


@_jit
def _blend(img, occ, y, x, alpha, r, g, b, opaque):
    if alpha <= 0.0:
        return
    if alpha > 1.0:
        alpha = 1.0
    img[y, x, 0] += (r - img[y, x, 0]) * alpha
    img[y, x, 1] += (g - img[y, x, 1]) * alpha
    img[y, x, 2] += (b - img[y, x, 2]) * alpha
    a = alpha * opaque
    if a > occ[y, x]:
        occ[y, x] = a


@_jit
def paint_ellipse(img, occ, cx, cy, ax, ay, angle, ring, r, g, b, opacity, opaque, shading):
    """An ellipse (centre, semi-axes, rotation in rad) with a 1-px soft edge; ``ring`` > 0
    paints only a band of that width in pixels (a glasses rim). ``shading`` darkens toward
    the rim (a round object). ``occ`` records alpha * ``opaque``: how much it hides."""
    h, w = occ.shape
    ca = math.cos(angle)
    sa = math.sin(angle)
    rad = max(ax, ay) + ring + 2.0
    m = min(ax, ay)
    for y in range(max(int(cy - rad), 0), min(int(cy + rad) + 2, h)):
        for x in range(max(int(cx - rad), 0), min(int(cx + rad) + 2, w)):
            dx = x - cx
            dy = y - cy
            u = (ca * dx + sa * dy) / ax
            v = (-sa * dx + ca * dy) / ay
            rho = math.sqrt(u * u + v * v)
            d = (rho - 1.0) * m  # ~ signed distance in px
            alpha = 0.5 * ring + 0.5 - abs(d) if ring > 0.0 else 0.5 - d
            if alpha > 0.0:
                s = 1.0 - shading * min(rho, 1.0) ** 2
                _blend(img, occ, y, x, min(alpha, 1.0) * opacity, r * s, g * s, b * s, opaque)


@_jit
def paint_capsule(img, occ, x0, y0, x1, y1, radius, r, g, b, opacity, opaque, shading):
    """A segment with round caps (a finger, a glasses temple), soft 1-px edge."""
    h, w = occ.shape
    dx = x1 - x0
    dy = y1 - y0
    ll = dx * dx + dy * dy
    pad = radius + 2.0
    for y in range(max(int(min(y0, y1) - pad), 0), min(int(max(y0, y1) + pad) + 2, h)):
        for x in range(max(int(min(x0, x1) - pad), 0), min(int(max(x0, x1) + pad) + 2, w)):
            t = 0.0 if ll == 0 else min(max(((x - x0) * dx + (y - y0) * dy) / ll, 0.0), 1.0)
            px = x0 + t * dx - x
            py = y0 + t * dy - y
            dist = math.sqrt(px * px + py * py)
            alpha = 0.5 - (dist - radius)
            if alpha > 0.0:
                s = 1.0 - shading * min(dist / max(radius, 1e-3), 1.0) ** 2
                _blend(img, occ, y, x, min(alpha, 1.0) * opacity, r * s, g * s, b * s, opaque)


@_jit
def paint_polygon(img, occ, xs, ys, r, g, b, opacity, opaque, texture):
    """A filled simple polygon (even-odd rule) with a 1-px soft edge; ``texture`` adds a
    fold pattern along y (a cloth mask)."""
    h, w = occ.shape
    n = xs.shape[0]
    for y in range(max(int(ys.min()) - 1, 0), min(int(ys.max()) + 2, h)):
        for x in range(max(int(xs.min()) - 1, 0), min(int(xs.max()) + 2, w)):
            inside = False
            dmin = 1.0  # only distances below 1 px matter for the soft edge
            j = n - 1
            for i in range(n):
                xi, yi, xj, yj = xs[i], ys[i], xs[j], ys[j]
                if (yi > y) != (yj > y):
                    xc = xi + (y - yi) * (xj - xi) / (yj - yi)
                    if x < xc:
                        inside = not inside
                if (min(xi, xj) - 1.0 <= x <= max(xi, xj) + 1.0
                        and min(yi, yj) - 1.0 <= y <= max(yi, yj) + 1.0):
                    ex = xj - xi
                    ey = yj - yi
                    ll = ex * ex + ey * ey
                    t = 0.0 if ll == 0 else min(max(((x - xi) * ex + (y - yi) * ey) / ll, 0.0), 1.0)
                    qx = xi + t * ex - x
                    qy = yi + t * ey - y
                    dmin = min(dmin, math.sqrt(qx * qx + qy * qy))
                j = i
            alpha = 0.5 + dmin if inside else 0.5 - dmin
            if alpha > 0.0:
                s = 1.0 - texture * (0.5 + 0.5 * math.sin(y * 0.9))
                _blend(img, occ, y, x, min(alpha, 1.0) * opacity, r * s, g * s, b * s, opaque)


# --------------------------------------------------------------------------- camera


@_jit
def _gauss_taps(sigma, taps):
    rad = taps.shape[0] // 2
    if sigma < 0.05:
        taps[:] = 0.0
        taps[rad] = 1.0
        return
    s = 0.0
    for k in range(taps.shape[0]):
        v = math.exp(-0.5 * ((k - rad) / sigma) ** 2)
        taps[k] = v
        s += v
    for k in range(taps.shape[0]):
        taps[k] /= s


@_jit
def _xorshift(state):
    x = state[0]
    x ^= (x << np.uint64(13))
    x ^= (x >> np.uint64(7))
    x ^= (x << np.uint64(17))
    state[0] = x
    return x


@_jit
def finish(lin, gamma, contrast, sigma, noise_sigma, noise_seed, tmp, out):
    """Linear radiance (H, W, 3) -> uint8: separable Gaussian blur on linear light (the
    lens; edges replicated, radius ceil(3 sigma) up to 6), then the tone curve (gamma,
    then contrast about mid-grey, via a 1024-entry table), additive sensor noise and
    rounding in one pass. The noise is Irwin-Hall(4) (a sum of four uniforms scaled to
    unit variance) from a xorshift64 stream seeded by ``noise_seed``: deterministic and
    cheap. ``lin`` is overwritten."""
    h, w = lin.shape[0], lin.shape[1]
    rad = min(max(int(math.ceil(3.0 * sigma)), 1), 6)
    taps = np.empty(2 * rad + 1, np.float32)
    _gauss_taps(sigma, taps)
    if sigma >= 0.05:
        # rows as flat (W * 3) runs so that the inner loops are contiguous (SIMD)
        flat = lin.reshape(h, w * 3)
        tflat = tmp.reshape(h, w * 3)
        row = np.empty((w + 2 * rad) * 3, np.float32)
        for y in range(h):  # horizontal pass into tmp, edges replicated
            for x in range(w + 2 * rad):
                xx = min(max(x - rad, 0), w - 1)
                for c in range(3):
                    row[x * 3 + c] = flat[y, xx * 3 + c]
            for j in range(w * 3):
                tflat[y, j] = taps[0] * row[j]
            for k in range(1, 2 * rad + 1):
                tk = taps[k]
                off = k * 3
                for j in range(w * 3):
                    tflat[y, j] += tk * row[j + off]
        for y in range(h):  # vertical pass back into lin
            for j in range(w * 3):
                flat[y, j] = 0.0
            for k in range(2 * rad + 1):
                yy = min(max(y + k - rad, 0), h - 1)
                tk = taps[k]
                for j in range(w * 3):
                    flat[y, j] += tk * tflat[yy, j]
    n_lut = 1024
    lut = np.empty(n_lut + 2, np.float32)
    for k in range(n_lut + 2):
        v = min(k / n_lut, 1.0) ** gamma
        lut[k] = min(max((v - 0.5) * contrast + 0.5, 0.0), 1.0) * 255.0
    state = np.empty(1, np.uint64)
    state[0] = np.uint64(noise_seed) | np.uint64(1)
    scale = noise_sigma * 255.0 * math.sqrt(3.0) / 65535.0
    mask = np.uint64(0xFFFF)
    for y in range(h):
        for x in range(w):
            for c in range(3):
                f = min(max(lin[y, x, c], 0.0), 1.0) * n_lut
                i = int(f)
                t = f - i
                v = lut[i] + (lut[i + 1] - lut[i]) * t
                if noise_sigma > 0.0:
                    r = _xorshift(state)
                    u = (float(r & mask) + float((r >> np.uint64(16)) & mask)
                         + float((r >> np.uint64(32)) & mask) + float((r >> np.uint64(48)) & mask))
                    v += (u - 2.0 * 65535.0) * scale
                out[y, x, c] = np.uint8(min(max(v + 0.5, 0.0), 255.0))


# --------------------------------------------------------------------------- visibility


@_jit
def point_visibility(pix, depth, ids, zbuf, occ, tol, extra, out):
    """A point is visible when its pixel is inside the image, no occluder covers it
    (occ < 0.5), and some pixel of its 3x3 neighbourhood sees a surface not in front of
    it by more than ``tol + extra[k]`` cm (or sees the background). The neighbourhood
    makes points on the silhouette visible: at a grazing surface the depth at the
    nearest pixel centre can differ from the point's by centimetres, but the next pixel
    out is empty. ``extra`` (per point, may be empty) widens the tolerance."""
    h, w = zbuf.shape
    for k in range(ids.shape[0]):
        i = ids[k]
        x = int(math.floor(pix[i, 0] + 0.5))
        y = int(math.floor(pix[i, 1] + 0.5))
        if x < 0 or y < 0 or x >= w or y >= h or occ[y, x] >= 0.5:
            out[k] = False
            continue
        zmax = zbuf[y, x]
        for yy in range(max(y - 1, 0), min(y + 2, h)):
            for xx in range(max(x - 1, 0), min(x + 2, w)):
                zmax = max(zmax, zbuf[yy, xx])
        t = tol + extra[k] if extra.shape[0] > 0 else tol
        out[k] = depth[i] <= zmax + t


KERNELS = (rotate_groups, project, slide_contour, to_pixels, rasterise, mix_albedo, shade,
           upsample_bilinear, _blend, paint_ellipse, paint_capsule, paint_polygon,
           _gauss_taps, _xorshift, finish, point_visibility)


# --------------------------------------------------------------------------- disk cache


def cache_dir() -> Path:
    """Where compiled kernels are cached: inside the virtual environment when running in
    one (and it is writable), else a per-user folder in the system temp directory."""
    if sys.prefix != sys.base_prefix:
        venv = Path(sys.prefix) / "var" / "cache" / "synthloop-numba"
        if os.access(sys.prefix, os.W_OK):
            return venv
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"synthloop-numba-{uid}"


_cache_attached = False


def ensure_cache() -> None:
    """Attach an on-disk cache to every kernel (once, before its first compilation).
    With ``NUMBA_CACHE_DIR`` set, numba's own locator (that folder) is used."""
    global _cache_attached
    if _cache_attached:
        return
    _cache_attached = True
    try:
        from numba.core import caching, config
    except ImportError:  # pragma: no cover - numba internals moved: run uncached
        return
    root = None if config.CACHE_DIR else cache_dir()

    class _Locator(caching.UserProvidedCacheLocator):
        def __init__(self, py_func, py_file):
            super().__init__(py_func, py_file)
            self._cache_path = os.path.join(str(root), self.get_suitable_cache_subpath(py_file))

        @classmethod
        def from_function(cls, py_func, py_file):
            return caching._SourceFileBackedLocatorMixin.from_function.__func__(cls, py_func, py_file)

    class _Impl(caching.CompileResultCacheImpl):
        _locator_classes = [_Locator] + list(caching.CompileResultCacheImpl._locator_classes)

    class _Cache(caching.FunctionCache):
        _impl_class = _Impl

    for k in KERNELS:
        if k.overloads:  # already compiled in this process: nothing to gain
            continue
        with contextlib.suppress(Exception):  # no writable location: stay uncached
            k._cache = _Cache(k.py_func) if root is not None else caching.FunctionCache(k.py_func)
