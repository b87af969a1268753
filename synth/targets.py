"""A built-in, *simulated* target domain for the gaze task.

Where no real labeled eye data is at hand (a fresh clone, CI, benchmarks) the loop still
needs a target domain that differs from the synthetic source the way real data does, and
whose labels are known so that adaptation can be scored. This module provides one:

* :func:`shifted_eye_distribution`: the default eye distribution re-weighted to imitate
  MPIIGaze-like data relative to our default: gaze mostly downward (pitch -30..+10 deg,
  a laptop camera above the screen) and within +-22.5 deg yaw, head pitched down and
  turned, darker scenes (dim key light, little ambient, gamma > 1), dark irises, more
  sensor noise, stronger optical blur, low JPEG quality, always histogram equalised.
  That is version ``v1``; ``v2`` skews gaze and head pose further (gaze pitch -20 +- 8
  deg, yaw +10 +- 10 deg, head pitched down and turned by ~18 deg) with the same
  appearance and camera. The feedback loop's built-in target is ``v2``; the domain-
  adaptation benchmark uses ``v1``.
  Only bin weights change: every factor keeps the default's bin edges, so **no factor
  leaves the default's support** and re-weighting the default can in principle reach
  the shifted factor distribution. (Bins given weight 0 here are a narrower support of
  the target, not a wider one.)
* :func:`target_camera`: a different camera pipeline applied *after* rendering, which no
  factor of the default can reproduce, so the shift is not only in factor space: a
  half-resolution sensor (2x2 area downsample, bilinear upsample), a slight horizontal
  motion blur, and vignetting.
* :func:`write_simulated_target`: writes a folder in the *real-data* formats that
  :mod:`realdata.eyes` reads (``images/*.png``, ``labels.csv``, ``manifest.csv``), plus
  ``SIMULATION.md`` saying in words that it is simulated, so nothing downstream can pass
  it off as real (:func:`is_simulated`).

Determinism: same ``n`` and ``seed`` give identical bytes (rendering on the CPU in
fixed-size chunks, camera parameters from a seeded numpy stream).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from synth.distribution import Factor, SceneDistribution
from synth.eye_distribution import default_eye_distribution

__all__ = [
    "CAMERA_PIPELINE",
    "SHIFTED_FACTORS",
    "SIMULATED_TARGET_NAME",
    "SIMULATION_NOTE",
    "TARGET_VERSIONS",
    "is_simulated",
    "shifted_eye_distribution",
    "target_camera",
    "target_name",
    "write_simulated_target",
]

SIMULATED_TARGET_NAME = "sim-shifted-v1"
SIMULATION_NOTE = "SIMULATION.md"
RENDER_CHUNK = 128  # fixed, so the bytes do not depend on the machine's default chunk

D = math.radians

#: (factor, centre, spread, lo, hi): a Gaussian bump over the default's bin midpoints,
#: zero outside [lo, hi]. Every factor keeps the default's edges (same support).
#: The label part (gaze and head pose) per target version:
#: * ``v1``: MPIIGaze-like, a laptop camera above the screen: gaze mostly down, yaw
#:   narrower than the default's, head a little down and turned;
#: * ``v2``: the same user with the screen off to one side and lower: gaze further down
#:   (pitch -20 +- 8 deg) and to one side (yaw +10 +- 10 deg), head pitched down and
#:   turned by about 18 deg. Same appearance and camera as v1. The feedback loop's
#:   built-in target: its skew is large enough that the default wastes most of its
#:   samples (with the target's own distribution, round-0 error falls by a third).
_LABEL_BUMPS: dict[str, tuple[tuple[str, float, float, float, float], ...]] = {
    "v1": (
        ("gaze_pitch", D(-10), D(10), D(-30), D(10)),   # mostly looking down
        ("gaze_yaw", 0.0, D(10), D(-22.5), D(22.5)),    # narrower than the default's +-45
        ("head_pitch", D(-12), D(8), -math.inf, math.inf),
        ("head_yaw", D(10), D(10), -math.inf, math.inf),
    ),
    "v2": (
        ("gaze_pitch", D(-20), D(8), D(-40), D(0)),
        ("gaze_yaw", D(10), D(10), D(-30), D(30)),
        ("head_pitch", D(-18), D(6), -math.inf, math.inf),
        ("head_yaw", D(18), D(8), -math.inf, math.inf),
    ),
}
_APPEARANCE_BUMPS: tuple[tuple[str, float, float, float, float], ...] = (
    ("iris_albedo", 0.06, 0.08, -math.inf, 0.30),   # dark brown irises
    ("light_intensity", 0.55, 0.2, -math.inf, math.inf),
    ("ambient", 0.08, 0.1, -math.inf, math.inf),
    ("gamma", 1.4, 0.2, -math.inf, math.inf),       # x ** gamma: > 1 darkens midtones
    ("blur_sigma_px", 1.2, 0.3, 0.6, math.inf),
    ("noise_sigma", 0.025, 0.01, 0.0125, math.inf),
    ("jpeg_quality", 50.0, 10.0, -math.inf, 82.0),
)
TARGET_VERSIONS = tuple(_LABEL_BUMPS)
_LABEL_TEXT = {
    "v1": "MPIIGaze-like shift of the default (gaze pitch -30..+10 deg mostly down, yaw within "
          "+-22.5 deg, head pitched down and turned",
    "v2": "laptop user, screen low and to one side (gaze pitch -20 +- 8 deg, yaw +10 +- 10 deg, "
          "head pitched down 18 deg and turned 18 deg",
}


def target_name(version: str = "v1") -> str:
    """The simulated target's name for a version (``sim-shifted-v1``, ...)."""
    _check_version(version)
    return f"sim-shifted-{version}"


def _check_version(version: str) -> None:
    if version not in _LABEL_BUMPS:
        raise ValueError(f"unknown simulated target version {version!r}; known: "
                         f"{', '.join(TARGET_VERSIONS)}")


#: Factors whose weights differ from the default (``histeq`` is set to always on).
SHIFTED_FACTORS = tuple(b[0] for b in _LABEL_BUMPS["v1"] + _APPEARANCE_BUMPS) + ("histeq",)

#: Parameters of :func:`target_camera`, recorded in SIMULATION.md.
CAMERA_PIPELINE = {
    "name": "lowres-motion-vignette-v1",
    "sensor_scale": 0.5,            # 2x2 area downsample, then bilinear upsample
    "motion_blur_px": (1.0, 2.5),   # horizontal box length, uniform per image
    "vignette_strength": (0.2, 0.45),  # gain = 1 - s * r^2, r = 1 in the corners
}


def _bump(f: Factor, centre: float, spread: float, lo: float, hi: float) -> Factor:
    e = np.asarray(f.edges)
    mids = 0.5 * (e[:-1] + e[1:])
    w = np.exp(-0.5 * ((mids - centre) / spread) ** 2)
    w = np.where((mids >= lo) & (mids <= hi), w, 0.0)
    return Factor(f.name, f.kind, tuple(w), f.edges, unit=f.unit, doc=f.doc)


#: The label-space part of the shift (gaze and head pose). Domain-adaptation methods that
#: align feature marginals (DANN, DALN) are known to suffer under label shift, so the DA
#: benchmark also measures an appearance-only variant that leaves these at the default.
LABEL_FACTORS = ("gaze_pitch", "gaze_yaw", "head_pitch", "head_yaw")


def shifted_eye_distribution(label_shift: bool = True, version: str = "v1") -> SceneDistribution:
    """The simulated target's scene distribution, derived from
    :func:`~synth.eye_distribution.default_eye_distribution` by re-weighting bins only
    (see the module docstring for what changes and why). ``label_shift=False`` keeps gaze
    and head pose as in the default: an appearance-only shift (the same for every
    ``version``, which only changes the label part)."""
    _check_version(version)
    base = default_eye_distribution()
    changed: dict[str, Factor] = {}
    bumps = (_LABEL_BUMPS[version] if label_shift else ()) + _APPEARANCE_BUMPS
    for name, centre, spread, lo, hi in bumps:
        changed[name] = _bump(base.factor(name), centre, spread, lo, hi)
    changed["histeq"] = Factor.categorical(
        "histeq", {0.0: 0.0, 1.0: 1.0}, doc=base.factor("histeq").doc
    )
    factors = tuple(changed.get(f.name, f) for f in base.factors)
    if not label_shift:
        return base.derive(
            reason=(f"simulated target '{SIMULATED_TARGET_NAME}', appearance only: as the full "
                    "shift but gaze and head pose keep the default's weights"),
            name="eyes-shifted-appearance-v1", factors=factors)
    return base.derive(
        reason=(
            f"simulated target '{target_name(version)}': {_LABEL_TEXT[version]}, darker light "
            "and gamma, dark irises, more noise and blur, low JPEG quality, always "
            "histogram-equalised); bin weights only, default support kept"
        ),
        name=f"eyes-shifted-{version}",
        factors=factors,
    )


def target_camera(images_uint8: np.ndarray, seed: int) -> np.ndarray:
    """The target domain's camera pipeline, applied to rendered uint8 images.

    For each image (B, H, W) or (B, H, W, C), in order:

    1. low-resolution sensor: 2x2 area average down to (ceil(H/2), ceil(W/2)), bilinear
       upsample back (``align_corners=False``): fine detail and per-pixel noise are lost;
    2. slight horizontal motion blur: a centred box of length ``l ~ U(1, 2.5)`` px (end
       taps weighted by their overlap), edges replicated, so the image is not shifted;
    3. vignetting: gain ``1 - s r^2`` with ``s ~ U(0.2, 0.45)`` and ``r`` the distance
       from the centre normalised so that ``r = 1`` in the corners;
    4. rounding to uint8.

    Per-image parameters come from ``numpy.random.default_rng(seed)`` in image order, so
    the same images and seed give identical bytes.
    """
    import torch
    import torch.nn.functional as F

    x = np.asarray(images_uint8)
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or x.shape[0] == 0:
        raise ValueError(f"images must be non-empty uint8 (B,H,W[,C]), got {x.shape} {x.dtype}")
    rgb = x.ndim == 4
    b, h, w = x.shape[:3]
    rng = np.random.default_rng(seed)
    lengths = rng.uniform(*CAMERA_PIPELINE["motion_blur_px"], size=b)
    strengths = rng.uniform(*CAMERA_PIPELINE["vignette_strength"], size=b)

    t = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float64)
    t = t.permute(0, 3, 1, 2) if rgb else t.unsqueeze(1)  # (B, C, H, W)
    c = t.shape[1]

    # 1. low-resolution sensor
    small = F.adaptive_avg_pool2d(t, (math.ceil(h / 2), math.ceil(w / 2)))
    t = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)

    # 2. horizontal motion blur: per-image taps at offsets -r..r (overlap of each pixel
    # with the centred segment [-l/2, l/2]) applied as a weighted sum of shifted copies
    r = int(math.ceil(CAMERA_PIPELINE["motion_blur_px"][1] / 2))
    offs = np.arange(-r, r + 1)
    half = lengths[:, None] / 2
    taps = np.clip(np.minimum(offs + 0.5, half) - np.maximum(offs - 0.5, -half), 0.0, None)
    taps = torch.from_numpy(taps / taps.sum(1, keepdims=True))  # (B, 2r+1)
    padded = F.pad(t.reshape(b * c, 1, h, w), (r, r, 0, 0), mode="replicate").view(b, c, h, w + 2 * r)
    t = sum(taps[:, k].view(b, 1, 1, 1) * padded[..., k:k + w] for k in range(2 * r + 1))

    # 3. vignetting
    v = (torch.arange(h, dtype=torch.float64) + 0.5 - h / 2) / (h / 2)
    u = (torch.arange(w, dtype=torch.float64) + 0.5 - w / 2) / (w / 2)
    r2 = (v[:, None] ** 2 + u[None, :] ** 2) / 2.0
    gain = 1.0 - torch.from_numpy(strengths).view(b, 1, 1, 1) * r2
    t = t * gain

    out = t.round().clamp(0, 255).to(torch.uint8)
    out = out.permute(0, 2, 3, 1) if rgb else out[:, 0]
    return out.contiguous().numpy()


def _camera_seed(seed: int) -> int:
    # a stream independent of the scene stream (which numpy seeds with ``seed`` itself)
    return int(np.random.SeedSequence([seed, 0x7A6E7]).generate_state(1, np.uint64)[0] >> 1)


def render_simulated_target(n: int, seed: int, label_shift: bool = True,
                            version: str = "v1") -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` target images and their (pitch, yaw) labels in radians, in memory:
    the shifted distribution on the CPU, then :func:`target_camera`."""
    images, scenes, _ = _render(n, seed, label_shift, version)
    labels = np.stack([scenes["gaze_pitch"], scenes["gaze_yaw"]], 1).astype(np.float64)
    return images, labels


def _render(n: int, seed: int, label_shift: bool,
            version: str) -> tuple[np.ndarray, dict[str, np.ndarray], SceneDistribution]:
    """(images after the target camera, the drawn scenes, the distribution drawn from)."""
    from synth.eye_generator import EyeGenerator

    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    dist = shifted_eye_distribution(label_shift, version)
    images, scenes = EyeGenerator(dist, device="cpu", chunk=RENDER_CHUNK).render_all(n, seed)
    return target_camera(images, _camera_seed(seed)), scenes, dist


def _simulation_note(dist: SceneDistribution, n: int, seed: int, labeled: bool,
                     version: str) -> str:
    cam = ", ".join(f"{k}={v}" for k, v in CAMERA_PIPELINE.items())
    return f"""# SIMULATED target domain: not real data

This folder was **generated by synthloop**, not recorded from people. It is the
built-in simulated target `{target_name(version)}`, used where real labeled eye data is
absent and by benchmarks. Numbers measured on it are numbers on a simulation and must
never be reported as results on real data.

- scene distribution: `{dist.name}` (id `{dist.id}`), derived from `{dist.parent}`
  (the default eye distribution) by re-weighting bins; full content in `distribution.json`
- camera pipeline after rendering: `synth.targets.target_camera` ({cam})
- renderer: `synth.eye_generator.EyeGenerator`, CPU, chunk {RENDER_CHUNK}
- seed: {seed}; images: {n}; labels written: {"yes (labels.csv: gaze and head pose, radians)" if labeled else "no (manifest.csv only)"}

Regenerate with `synth.targets.write_simulated_target(dir, n={n}, seed={seed}, labeled={labeled},
version={version!r})`.
"""


def write_simulated_target(out_dir: str | Path, n: int, seed: int, labeled: bool = True,
                           label_shift: bool = True, version: str = "v1") -> Path:
    """Write ``n`` simulated target images to ``out_dir`` in the real-data folder formats:
    ``images/000000.png`` ..., ``manifest.csv`` (``image``), ``labels.csv``
    (``image,pitch,yaw,head_pitch,head_yaw`` radians: gaze and the scene's head pose, as
    MPIIGaze-style data carry both) when ``labeled``, ``SIMULATION.md`` and
    ``distribution.json``.

    Atomic: everything is written to a temporary sibling folder that is renamed into
    place at the end; on any error it is removed and ``out_dir`` does not appear.
    ``out_dir`` must not exist yet (or be an empty folder, which is replaced).
    """
    from PIL import Image

    from realdata.eye_folder_writer import check_new_folder, staged_folder

    out = check_new_folder(out_dir)  # before rendering
    images, scenes, dist = _render(n, seed, label_shift, version)
    labels = np.stack([scenes[k] for k in ("gaze_pitch", "gaze_yaw", "head_pitch", "head_yaw")], 1)
    with staged_folder(out) as tmp:
        (tmp / "images").mkdir()
        width = max(6, len(str(n - 1)))
        names = [f"images/{i:0{width}d}.png" for i in range(n)]
        for name, im in zip(names, images, strict=True):
            Image.fromarray(im).save(tmp / name, format="PNG")
        with (tmp / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
            wr = csv.writer(f, lineterminator="\n")
            wr.writerow(["image"])
            wr.writerows([name] for name in names)
        if labeled:
            with (tmp / "labels.csv").open("w", newline="", encoding="utf-8") as f:
                wr = csv.writer(f, lineterminator="\n")
                wr.writerow(["image", "pitch", "yaw", "head_pitch", "head_yaw"])
                for name, row in zip(names, labels, strict=True):
                    wr.writerow([name, *(repr(float(v)) for v in row)])
        (tmp / "distribution.json").write_text(dist.dumps() + "\n", encoding="utf-8")
        (tmp / SIMULATION_NOTE).write_text(_simulation_note(dist, n, seed, labeled, version), encoding="utf-8")
    return out


def is_simulated(dir: str | Path) -> bool:
    """True when ``dir`` holds a SIMULATION.md: a simulated, not a real, dataset."""
    return (Path(dir) / SIMULATION_NOTE).is_file()

