"""Camera pipeline shared by the renderers: tone, blur, sensor noise, quantisation, JPEG,
histogram equalisation. Batched tensor code, per-sample parameters, CPU or CUDA.

Per-sample parameters (each a (B, 1, 1, 1) tensor in ``f``): ``contrast``, ``gamma``,
``blur_sigma_px``, ``noise_sigma``, ``jpeg_quality`` (1..100) and ``histeq`` (0/1).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import torch
from torch import Tensor

BLUR_RADIUS = 3  # taps each side; enough for sigma <= 1.6 px

# The JPEG standard's luminance quantisation table (ITU-T T.81, Annex K).
_JPEG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)


def _dct_matrix() -> Tensor:
    n = torch.arange(8, dtype=torch.float64)
    m = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m


def _replicate_pad_matrix(n: int, lo: int, hi: int) -> Tensor:
    """(n + lo + hi, n) matrix P with P @ x = x padded by edge replication."""
    src = (torch.arange(n + lo + hi) - lo).clamp(0, n - 1)
    return torch.nn.functional.one_hot(src, n).to(torch.float64)


def _shift_matrices(n: int, r: int) -> Tensor:
    """(2r+1, n, n): S[k] @ x takes x[clamp(i + k - r)] at row i (replicated edges)."""
    p = _replicate_pad_matrix(n, r, r)
    return torch.stack([p[k:k + n] for k in range(2 * r + 1)])


def _jpeg_bases(n: int) -> tuple[Tensor, Tensor]:
    """Forward (block DCT of the edge-padded signal) and inverse (then crop) matrices for
    a length-n axis: y = F @ x gives 8-point DCT coefficients per block; x = G @ y."""
    m = -(-n // 8) * 8
    blockdct = torch.block_diag(*([_dct_matrix()] * (m // 8)))
    fwd = blockdct @ _replicate_pad_matrix(n, 0, m - n)
    inv = blockdct.T[:n]
    return fwd, inv


@functools.lru_cache(maxsize=16)
def _operators(h: int, w: int, device: str) -> dict[str, Tensor]:
    fh, ih = _jpeg_bases(h)
    fw, iw = _jpeg_bases(w)
    # the JPEG table is an operator, not a literal in jpeg_quantise: a tensor built inside
    # that function would become a constant of the exported eye kernel (synth.eye_kernel),
    # and such a constant is what made that export fail now and then in Dask workers
    ops = {"shift_h": _shift_matrices(h, BLUR_RADIUS), "shift_w": _shift_matrices(w, BLUR_RADIUS),
           "dct_h": fh, "idct_h": ih, "dct_w": fw, "idct_w": iw,
           "jpeg_luma": torch.tensor(_JPEG_LUMA, dtype=torch.float64).view(1, 8, 8)}
    return {k: v.to(torch.float32).to(device) for k, v in ops.items()}


def camera_operators(h: int, w: int, device) -> dict[str, Tensor]:
    """Constant matrices the pipeline needs for an (h, w) image, built once per device."""
    return _operators(h, w, str(torch.device(device)))


def gaussian_blur(x: Tensor, sigma: Tensor, ops: dict[str, Tensor]) -> Tensor:
    """Separable Gaussian blur with a per-sample sigma (B,1,1,1), edges replicated, as two
    per-sample banded matrices: x <- Kh @ x @ Kw^T. Matrix form is exact, independent of
    the convolution backend, and runs as a few GEMMs."""
    taps = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, device=x.device, dtype=x.dtype)
    s = sigma.view(-1, 1).clamp_min(0.05)
    wts = torch.exp(-0.5 * (taps.view(1, -1) / s) ** 2)
    wts = wts / wts.sum(1, keepdim=True)  # (B, 2r+1)
    kh = torch.einsum("bk,kij->bij", wts, ops["shift_h"]).unsqueeze(1)  # (B,1,H,H)
    kw = torch.einsum("bk,kij->bji", wts, ops["shift_w"]).unsqueeze(1)  # (B,1,W,W), transposed
    return kh @ x @ kw


def jpeg_quantise(x: Tensor, quality: Tensor, ops: dict[str, Tensor]) -> Tensor:
    """Baseline-JPEG loss on 0..255 values: 8x8 block DCT (edges replicated to whole
    blocks), the standard luminance table scaled by quality (libjpeg's rule), rounding,
    inverse DCT. Chroma subsampling and the lossless entropy coding are left out; every
    channel uses the luminance table."""
    b = x.shape[0]
    coef = ops["dct_h"] @ (x - 128.0) @ ops["dct_w"].T  # (B,C,Hp,Wp)
    hp, wp = coef.shape[-2:]
    q = quality.view(b).clamp(1.0, 100.0)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    base = ops["jpeg_luma"].to(x.dtype)
    table = torch.floor((base * scale.view(b, 1, 1) + 50.0) / 100.0).clamp(1.0, 255.0)
    table = table.repeat(1, hp // 8, wp // 8).unsqueeze(1)  # (B,1,Hp,Wp)
    coef = torch.round(coef / table) * table
    rec = ops["idct_h"] @ coef @ ops["idct_w"].T
    return (rec + 128.0).round().clamp(0.0, 255.0)


def equalise_histogram(x: Tensor) -> Tensor:
    """Per-image, per-channel histogram equalisation of uint8 images (B,C,H,W), with the
    same mapping as OpenCV's equalizeHist: lut = round((cdf - cdf_min) * 255 / (N - cdf_min))."""
    b, c, h, w = x.shape
    n = h * w
    flat = x.reshape(b * c, n).long()
    offs = torch.arange(b * c, device=x.device).view(-1, 1) * 256
    hist = torch.bincount((flat + offs).view(-1), minlength=256 * b * c).view(b * c, 256)
    cdf = hist.cumsum(1)
    cdf_min = torch.where(hist > 0, cdf, torch.full_like(cdf, n)).min(1, keepdim=True).values
    denom = (n - cdf_min).clamp_min(1).to(torch.float32)
    lut = torch.round((cdf - cdf_min).clamp_min(0).to(torch.float32) * 255.0 / denom)
    lut = torch.where(cdf_min >= n, torch.arange(256, device=x.device).view(1, -1).float(), lut)
    out = torch.gather(lut, 1, flat).view(b, c, h, w)
    return out.to(torch.uint8)


def apply_camera_pipeline(radiance: Tensor, f: Mapping[str, Tensor], sensor_noise: Tensor,
                          ops: dict[str, Tensor]) -> Tensor:
    """Linear radiance (B,C,H,W) -> uint8 images (B,H,W) if C == 1, else (B,H,W,C).
    ``ops`` = camera_operators(H, W, device)."""
    x = torch.exp(torch.log(radiance.clamp(1e-6, 1.0)) * f["gamma"])  # pow, vectorised
    x = ((x - 0.5) * f["contrast"] + 0.5).clamp(0.0, 1.0)
    x = gaussian_blur(x, f["blur_sigma_px"], ops)
    x = (x + sensor_noise * f["noise_sigma"]).clamp(0.0, 1.0)
    x = jpeg_quantise(torch.round(x * 255.0), f["jpeg_quality"], ops)
    x = x.to(torch.uint8)
    # unconditional (no data-dependent branch), so the whole pipeline traces as one graph
    x = torch.where(f["histeq"] > 0.5, equalise_histogram(x), x)
    return x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1).contiguous()
