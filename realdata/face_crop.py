"""The face-crop protocol shared by real and synthetic faces.

Real faces and rendered faces must be cropped the same way, or the crop itself becomes a
domain cue (scale, centring, borders) that a domain-adaptation model learns instead of
the face. One protocol, two ways to get the box:

- mode "landmarks" (:func:`box_from_landmarks`): the tight bounding box of the 68
  ground-truth points;
- mode "box" (:func:`square_box`): a given face box ``(x0, y0, x1, y1)``, e.g. a detector's.

Either box is made square around its own centre with side ``max(w, h) * enlarge``. The
default ``enlarge = 1.25`` is the HRNet facial-landmark protocol (Sun et al. 2019, also
used by later 300-W / WFLW work): its ``scale`` field is ``max(w, h) / 200`` of the
landmark box and the loader multiplies it by 1.25; the COCO-style 300-W / 300-VW format
samples carry exactly those ``center`` / ``scale`` fields. 1.25 keeps the whole jaw
line and brows inside the crop with a small margin of context. The centre is not shifted:
the landmark box is already centred on the face (a shift is a correction for detector
boxes, whose bias differs per detector, and would then belong to that detector's reader).

Coordinates: 0-based pixel coordinates, the centre of pixel (row i, column j) at
(x, y) = (j, i). A square box of side S maps its extent onto the crop's extent, pixel
edges to pixel edges (as ``align_corners=False``): ``u = (x - x0) * size / S - 0.5``.
So with ``S == size`` and a box corner on a pixel edge, pixel centres land exactly on
crop pixel centres and the crop equals the image slice.

Resampling: Pillow's bilinear (triangle) filter, which widens with the downscale factor,
so shrinking a 300-px face to 128 px is antialiased. Where the box leaves the image the
image is padded with zeros (``pad="zero"``, the default, as ``cv2.warpAffine`` in HRNet)
or by repeating the border pixels (``pad="edge"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from realdata.errors import DataFormatError
from realdata.landmarks import Box, FaceSet

DEFAULT_ENLARGE = 1.25
DEFAULT_SIZE = 128
PADS = ("zero", "edge")
#: A crop box may be at most this many times the image's longer side. Landmarks labelled
#: in another scale or frame give boxes far larger than the image, and the padded region
#: :func:`crop_face` cuts grows with the square of the box (a 1e5-px box is 30 GB).
MAX_BOX_TO_IMAGE = 4.0


@dataclass(frozen=True)
class CropTransform:
    """``crop = original * scale + offset`` (isotropic scale, offset (ox, oy)), both
    coordinates 0-based with pixel centres on integers."""

    scale: float
    offset: tuple[float, float]

    @classmethod
    def from_box(cls, box: Box, size: int) -> CropTransform:
        """The transform of a square box (x0, y0, x1, y1) onto a ``size`` x ``size`` crop."""
        x0, y0, x1, _ = box
        s = size / (x1 - x0)
        return cls(s, (-x0 * s - 0.5, -y0 * s - 0.5))

    def to_crop(self, points: Any) -> np.ndarray:
        """Original pixel coordinates (..., 2) -> crop coordinates (..., 2)."""
        return np.asarray(points, dtype=np.float64) * self.scale + np.asarray(self.offset)

    def from_crop(self, points: Any) -> np.ndarray:
        """Crop coordinates (..., 2) -> original pixel coordinates (..., 2)."""
        return (np.asarray(points, dtype=np.float64) - np.asarray(self.offset)) / self.scale


def square_box(box: Sequence[float], enlarge: float = DEFAULT_ENLARGE) -> Box:
    """Mode "box": the square around the box's centre with side ``max(w, h) * enlarge``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    shown = _show_box((x0, y0, x1, y1))
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f"box must be finite, got {shown}")
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box must be (x0, y0, x1, y1) with x1 >= x0, y1 >= y0, got {shown}")
    if not (enlarge > 0 and math.isfinite(enlarge)):
        raise ValueError(f"enlarge must be positive, got {enlarge}")
    half = max(x1 - x0, y1 - y0) * enlarge / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    square = (cx - half, cy - half, cx + half, cy + half)
    # far from the origin a tiny box rounds to nothing, and an enormous one to infinity
    if not (square[2] > square[0] and square[3] > square[1]):
        raise ValueError(f"box has zero size: {shown}")
    if not all(math.isfinite(v) for v in square):
        raise ValueError(f"box is too large: {shown}")
    return square


def _show_box(box: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in box) + ")"


def box_from_landmarks(points: Any, enlarge: float = DEFAULT_ENLARGE) -> Box:
    """Mode "landmarks": the square crop box of the finite points' tight bounding box."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) < 2:
        raise ValueError("need at least 2 finite points to place a crop box")
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    return square_box((x0, y0, x1, y1), enlarge)


def crop_face(
    image: Any, box: Sequence[float], size: int = DEFAULT_SIZE, *, pad: str = "zero"
) -> tuple[np.ndarray, CropTransform]:
    """Crop ``box`` out of ``image`` and resample it to (size, size, 3) uint8 RGB.

    ``image``: (H, W, 3) or (H, W) uint8 array, or a PIL image. ``box``: (x0, y0, x1, y1);
    a non-square box is squared around its centre (side max(w, h), never stretched), so
    pass the output of :func:`box_from_landmarks` / :func:`square_box` for the protocol.
    Returns the crop and the :class:`CropTransform` from image to crop coordinates.
    """
    if pad not in PADS:
        raise ValueError(f"pad must be one of {PADS}, got {pad!r}")
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    size = int(size)
    img = _rgb(image)
    sq = square_box(box, 1.0)
    tf = CropTransform.from_box(sq, size)
    side = sq[2] - sq[0]
    h, w = img.shape[:2]
    if side > MAX_BOX_TO_IMAGE * max(h, w):
        raise ValueError(f"crop box of {side:.6g} px is more than {MAX_BOX_TO_IMAGE:g} times "
                         f"the {w}x{h} image (points in another scale or frame?)")

    # Pillow's box is in edge coordinates (pixel j spans [j, j + 1]): ours + 0.5.
    ex0, ey0 = sq[0] + 0.5, sq[1] + 0.5
    # Cut a region around the box with a margin for the filter's support (it widens with
    # the downscale factor), padding where it leaves the image, so only the neighbourhood
    # of the face is copied however large the image is.
    margin = math.ceil(side / size) + 2
    rx0, ry0 = math.floor(ex0) - margin, math.floor(ey0) - margin
    rx1, ry1 = math.ceil(ex0 + side) + margin, math.ceil(ey0 + side) + margin
    region = _region(img, rx0, ry0, rx1, ry1, pad)
    out = Image.fromarray(region).resize(
        (size, size),
        Image.Resampling.BILINEAR,
        box=(ex0 - rx0, ey0 - ry0, ex0 - rx0 + side, ey0 - ry0 + side),
    )
    return np.asarray(out, dtype=np.uint8), tf


def _rgb(image: Any) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {a.dtype}")
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) or (H, W), got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"image is empty: {a.shape}")
    return a


def _region(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, pad: str) -> np.ndarray:
    """img[y0:y1, x0:x1] for any integer window, padded outside the image."""
    h, w = img.shape[:2]
    ys, xs = np.arange(y0, y1), np.arange(x0, x1)
    out = img[np.ix_(np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1))]  # edge padding
    if pad == "zero":
        out[(ys < 0) | (ys >= h)] = 0
        out[:, (xs < 0) | (xs >= w)] = 0
    return np.ascontiguousarray(out)


def crop_face_set(
    face_set: FaceSet,
    size: int = DEFAULT_SIZE,
    enlarge: float = DEFAULT_ENLARGE,
    *,
    boxes: Sequence[Sequence[float]] | None = None,
    pad: str = "zero",
) -> tuple[np.ndarray, np.ndarray, tuple[CropTransform, ...]]:
    """Crop every face of ``face_set`` by the protocol, reading images one at a time.

    Mode "landmarks" by default; pass ``boxes`` (one (x0, y0, x1, y1) per face) for mode
    "box". Returns images (N, size, size, 3) uint8, points (N, K, 2) in crop coordinates
    (NaN stays NaN) and one :class:`CropTransform` per face.
    """
    n = len(face_set)
    if boxes is not None and len(boxes) != n:
        raise ValueError(f"expected {n} boxes, got {len(boxes)}")
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    points = np.empty(face_set.points.shape, dtype=np.float64)
    transforms = []
    for i in range(n):
        pts = face_set.points[i]
        try:
            box = box_from_landmarks(pts, enlarge) if boxes is None else square_box(boxes[i], enlarge)
            image = face_set.image(i)
            _check_box_meets_image(box, image.shape)
            images[i], tf = crop_face(image, box, size, pad=pad)
        except ValueError as exc:
            if isinstance(exc, DataFormatError):  # the image file: it names itself
                raise
            raise ValueError(f"sample {face_set.names[i]!r}: {exc}") from exc
        points[i] = tf.to_crop(pts)
        transforms.append(tf)
    return images, points, tuple(transforms)


def _check_box_meets_image(box: Box, shape: tuple[int, ...]) -> None:
    """A face box that misses the image entirely belongs to another image or frame."""
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    if x1 <= -0.5 or y1 <= -0.5 or x0 >= w - 0.5 or y0 >= h - 0.5:
        raise ValueError(f"face box {_show_box(box)} lies outside the {w}x{h} image")
