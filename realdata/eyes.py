"""Readers for real eye-patch images: CSV-indexed folders and MPIIGaze normalised .mat files.

All readers return :class:`EyeImages`: grayscale uint8 patches of shape (N, H, W)
(36 x 60 by default), optional (pitch, yaw) labels in radians following the MPIIGaze
convention (see :mod:`realdata.gaze`), and one source identifier per image.

Images are loaded with Pillow. Anything that is not 8-bit grayscale ('L') is converted
with Pillow's ``convert("L")`` (ITU-R 601 luma for RGB); images whose size differs from
``size`` are resized with Pillow's bilinear filter (aspect ratio is not preserved).

Every unreadable or malformed input raises :class:`realdata.errors.DataFormatError`
naming the file and, for CSV files, the 1-based line (the header is line 1). Rows are
never skipped silently.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from realdata.errors import DataFormatError, printable
from realdata.gaze import gaze_vector_to_pitchyaw
from realdata.landmarks import decode_utf8

DEFAULT_SIZE: tuple[int, int] = (36, 60)
MANIFEST_NAME = "manifest.csv"
LABELS_NAME = "labels.csv"
#: Optional per-image metadata beside labels.csv / manifest.csv: an ``image`` column
#: (every image of the folder, once), a ``subject`` column (the person: splits and
#: per-subject errors group by it), any other numeric columns (kept for slicing).
META_NAME = "meta.csv"
GROUP_COLUMN = "subject"
#: Optional ``meta.csv`` column naming which eye each patch shows, ``L`` or ``R``: patches of
#: one side can then be mirrored onto the other's (:mod:`realdata.eye_side`).
SIDE_COLUMN = "eye"
SIDES = ("L", "R")
#: Optional head-pose columns of labels.csv (radians; both or neither).
HEAD_COLUMNS = ("head_pitch", "head_yaw")

# High-bit-depth modes whose conversion to 'L' would clip rather than rescale.
_UNSUPPORTED_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


@dataclass(frozen=True, eq=False)
class EyeImages:
    """Eye patches with optional gaze labels.

    images:   (N, H, W) uint8 grayscale.
    pitchyaw: (N, 2) float32 radians (MPIIGaze convention), or None when unlabeled.
    headpose: (N, 2) float32 radians (head pitch, head yaw relative to the normalised
              camera, as the eye distribution's ``head_pitch`` / ``head_yaw`` factors:
              the face's forward axis in the gaze convention, > 0 pitch faces up, > 0
              yaw turns toward the image's left), or None: optional, from the
              ``head_pitch,head_yaw`` columns of labels.csv.
    paths:    one source identifier per image (CSV: the path as written in the CSV;
              .mat: ``"<file>#<eye>/<index>"``).
    source:   the file or folder that was read.
    groups:   one person (subject) id per image, or None: from ``meta.csv``'s
              ``subject`` column. Splits of real data keep a person on one side.
    meta:     further numeric per-image columns of ``meta.csv`` (e.g. head pose in
              degrees), for slicing errors; empty without one.
    sides:    ``"L"`` or ``"R"`` per image (which eye it shows, as the data names it), or
              None: from ``meta.csv``'s ``eye`` column.
    """

    images: np.ndarray
    pitchyaw: np.ndarray | None
    paths: tuple[str, ...]
    source: str
    headpose: np.ndarray | None = None
    groups: tuple[str, ...] | None = None
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    sides: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise ValueError(
                f"images must be (N, H, W) uint8, got {self.images.shape} {self.images.dtype}"
            )
        n = self.images.shape[0]
        if self.pitchyaw is not None and (
            self.pitchyaw.shape != (n, 2) or self.pitchyaw.dtype != np.float32
        ):
            raise ValueError(
                f"pitchyaw must be ({n}, 2) float32, got {self.pitchyaw.shape} "
                f"{self.pitchyaw.dtype}"
            )
        if len(self.paths) != n:
            raise ValueError(f"expected {n} paths, got {len(self.paths)}")
        if self.headpose is not None and (
            self.pitchyaw is None or self.headpose.shape != (n, 2)
            or self.headpose.dtype != np.float32
        ):
            raise ValueError(f"headpose must be ({n}, 2) float32 next to gaze labels, got "
                             f"{self.headpose.shape} {self.headpose.dtype}")
        if self.groups is not None and len(self.groups) != n:
            raise ValueError(f"expected {n} groups, got {len(self.groups)}")
        for name, col in self.meta.items():
            if col.shape != (n,):
                raise ValueError(f"meta column {name!r} must be ({n},), got {col.shape}")
        if self.sides is not None and (len(self.sides) != n or not set(self.sides) <= set(SIDES)):
            raise ValueError(f"sides must be {n} of {SIDES}, got {len(self.sides)} "
                             f"({sorted(set(self.sides) - set(SIDES))[:3]} besides)")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices) -> EyeImages:
        """The images ``indices`` (in that order) with their labels, groups and metadata."""
        idx = np.asarray(indices, dtype=np.int64)
        return EyeImages(
            self.images[idx],
            None if self.pitchyaw is None else self.pitchyaw[idx],
            tuple(self.paths[i] for i in idx),
            self.source,
            headpose=None if self.headpose is None else self.headpose[idx],
            groups=None if self.groups is None else tuple(self.groups[i] for i in idx),
            meta={k: v[idx] for k, v in self.meta.items()},
            sides=None if self.sides is None else tuple(self.sides[i] for i in idx),
        )


# --------------------------------------------------------------------------- CSV folders


def read_eye_manifest(dir_or_csv: str | Path, *, size: tuple[int, int] = DEFAULT_SIZE) -> EyeImages:
    """Read an unlabeled folder: ``manifest.csv`` with an ``image`` column.

    ``dir_or_csv`` is the folder holding ``manifest.csv`` or the CSV file itself; image
    paths are relative to the CSV's folder. Returns ``pitchyaw=None``.
    """
    csv_path = _resolve_csv(dir_or_csv, MANIFEST_NAME)
    rows = list(_read_csv_rows(csv_path, required=("image",)))
    images = _load_images(csv_path, [(line, rec["image"]) for line, rec in rows], size)
    return EyeImages(images, None, tuple(rec["image"] for _, rec in rows), str(dir_or_csv))


def read_eye_labels(dir_or_csv: str | Path, *, size: tuple[int, int] = DEFAULT_SIZE) -> EyeImages:
    """Read a labeled folder: ``labels.csv`` with columns ``image,pitch,yaw`` (radians)
    and, optionally, ``head_pitch,head_yaw`` (radians, both or neither: the head pose in
    the normalised camera, which MPIIGaze-style data carry; the feedback loop then slices
    and re-weights by head pose too).

    ``dir_or_csv`` is the folder holding ``labels.csv`` or the CSV file itself; image
    paths are relative to the CSV's folder. pitch and head_pitch must be finite with
    |value| <= pi/2, yaw and head_yaw finite with |value| <= pi.
    """
    csv_path = _resolve_csv(dir_or_csv, LABELS_NAME)
    rows = list(_read_csv_rows(csv_path, required=("image", "pitch", "yaw")))
    head_cols = [c for c in HEAD_COLUMNS if c in rows[0][1]]
    if len(head_cols) == 1:
        missing = next(c for c in HEAD_COLUMNS if c not in head_cols)
        raise DataFormatError(csv_path, f"has {head_cols[0]} but not {missing} (head pose needs "
                              "both columns, or neither)", 1)
    cols = ("pitch", "yaw", *head_cols)
    labels = np.empty((len(rows), len(cols)), dtype=np.float64)
    for i, (line, rec) in enumerate(rows):
        for j, name in enumerate(cols):
            limit, text = (math.pi / 2, "pi/2") if "pitch" in name else (math.pi, "pi")
            labels[i, j] = _parse_angle(csv_path, line, name, rec[name], limit, text)
    images = _load_images(csv_path, [(line, rec["image"]) for line, rec in rows], size)
    return EyeImages(
        images,
        labels[:, :2].astype(np.float32),
        tuple(rec["image"] for _, rec in rows),
        str(dir_or_csv),
        headpose=labels[:, 2:].astype(np.float32) if head_cols else None,
    )


def read_eye_folder(dir: str | Path, *, size: tuple[int, int] = DEFAULT_SIZE) -> EyeImages:
    """Read a folder with ``labels.csv`` (preferred) or, failing that, ``manifest.csv``,
    and its ``meta.csv`` when there is one (:func:`read_eye_meta`)."""
    folder = Path(dir)
    if not folder.is_dir():
        raise DataFormatError(folder, "is not a folder" if folder.exists() else "no such folder")
    if (folder / LABELS_NAME).exists():
        eyes = read_eye_labels(folder, size=size)
    elif (folder / MANIFEST_NAME).exists():
        eyes = read_eye_manifest(folder, size=size)
    else:
        raise DataFormatError(folder, f"holds neither {LABELS_NAME} nor {MANIFEST_NAME}")
    if not (folder / META_NAME).exists():
        return eyes
    groups, meta, sides = read_eye_meta(folder / META_NAME, eyes.paths)
    return dataclasses.replace(eyes, groups=groups, meta=meta, sides=sides)


def read_eye_meta(csv_path: str | Path, paths: tuple[str, ...]
                  ) -> tuple[tuple[str, ...] | None, dict[str, np.ndarray], tuple[str, ...] | None]:
    """``(groups, numeric columns, sides)`` of a ``meta.csv``, in the order of ``paths``
    (the image column of labels.csv / manifest.csv). Every image must have exactly one row
    and every row an image of the folder; the ``subject`` column, when present, must not
    be empty, and the ``eye`` column, when present, must be ``L`` or ``R`` on every row. A
    column is numeric when every value parses as a finite number."""
    csv_path = Path(csv_path)
    rows = list(_read_csv_rows(csv_path, required=("image",)))
    where: dict[str, int] = {}
    for i, (line, rec) in enumerate(rows):
        if rec["image"] in where:
            raise DataFormatError(csv_path, f"image {printable(rec['image'])} listed twice "
                                  f"(also on line {rows[where[rec['image']]][0]})", line)
        where[rec["image"]] = i
    wanted = set(paths)
    extra = [(line, rec["image"]) for line, rec in rows if rec["image"] not in wanted]
    if extra:
        raise DataFormatError(csv_path, f"image {printable(extra[0][1])} is not in the folder's "
                              "labels or manifest", extra[0][0])
    missing = [p for p in paths if p not in where]
    if missing:
        raise DataFormatError(csv_path, f"no row for {len(missing)} image(s), e.g. "
                              f"{printable(missing[0])}")
    ordered = [rows[where[p]] for p in paths]
    groups = None
    if GROUP_COLUMN in ordered[0][1]:
        for line, rec in ordered:
            if not rec[GROUP_COLUMN]:
                raise DataFormatError(csv_path, f"empty {GROUP_COLUMN}", line)
        groups = tuple(rec[GROUP_COLUMN] for _, rec in ordered)
    sides = None
    if SIDE_COLUMN in ordered[0][1]:
        for line, rec in ordered:
            if rec[SIDE_COLUMN] not in SIDES:
                raise DataFormatError(csv_path, f"{SIDE_COLUMN} must be L or R, got "
                                      f"{printable(rec[SIDE_COLUMN])}", line)
        sides = tuple(rec[SIDE_COLUMN] for _, rec in ordered)
    meta: dict[str, np.ndarray] = {}
    for name in ordered[0][1]:
        if name in ("image", GROUP_COLUMN, SIDE_COLUMN):
            continue
        try:
            col = np.array([float(rec[name]) for _, rec in ordered], dtype=np.float64)
        except ValueError:
            continue  # a text column (a source path): provenance, not a variable
        if np.all(np.isfinite(col)):
            meta[name] = col
    return groups, meta, sides


def _resolve_csv(dir_or_csv: str | Path, default_name: str) -> Path:
    path = Path(dir_or_csv)
    if path.is_dir():
        path = path / default_name
    if not path.exists():
        raise DataFormatError(path, "no such file")
    if not path.is_file():
        raise DataFormatError(path, "is not a file")
    return path


def _read_csv_rows(
    csv_path: Path, required: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (first line number, {column: value}) for each data row; strict about shape."""
    try:
        data = csv_path.read_bytes()
    except OSError as exc:
        raise DataFormatError(csv_path, f"cannot be read: {printable(str(exc))}") from exc
    # decoded up front, so that a byte that is not UTF-8 is reported with its line
    reader = csv.reader(io.StringIO(decode_utf8(csv_path, data), newline=""))
    header = _read_header(csv_path, reader, required)
    n_rows = 0
    blank_line: int | None = None
    end = reader.line_num
    while True:
        start = end + 1
        try:
            row = next(reader, None)
        except csv.Error as exc:
            raise DataFormatError(csv_path, f"malformed CSV: {exc}", reader.line_num) from None
        if row is None:
            break
        end = reader.line_num
        if not row or not any(v.strip() for v in row):
            blank_line = start if blank_line is None else blank_line
            continue
        if blank_line is not None:  # blank lines are only tolerated at the end
            raise DataFormatError(csv_path, "blank line inside the data", blank_line)
        if len(row) != len(header):
            raise DataFormatError(
                csv_path, f"expected {len(header)} fields, found {len(row)}", start
            )
        rec = dict(zip(header, (v.strip() for v in row), strict=True))
        if not rec["image"]:
            raise DataFormatError(csv_path, "empty image path", start)
        n_rows += 1
        yield start, rec
    if n_rows == 0:
        raise DataFormatError(csv_path, "has a header but no data rows", 1)


def _read_header(csv_path: Path, reader, required: tuple[str, ...]) -> list[str]:
    """The stripped column names of line 1; every ``required`` one present, none twice."""
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DataFormatError(csv_path, f"malformed CSV: {exc}", 1) from None
    if header is None or not any(h.strip() for h in header):
        raise DataFormatError(csv_path, "file is empty (expected a header line)", 1)
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataFormatError(csv_path, f"duplicate column(s): {_listed(dupes)}", 1)
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(
            csv_path, f"missing column(s) {', '.join(missing)} (header has: {_listed(header)})", 1
        )
    return header


def _listed(names: list[str]) -> str:
    """Column names for a one-line message (a quoted header cell may hold a line break)."""
    return printable(", ".join(names))


def _parse_angle(
    csv_path: Path, line: int, name: str, text: str, limit: float, limit_text: str
) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(csv_path, f"{name} is not a number: {text!r}", line) from None
    if not math.isfinite(value):
        raise DataFormatError(csv_path, f"{name} is not finite: {text!r}", line)
    if abs(value) > limit:
        raise DataFormatError(
            csv_path,
            f"{name} {value:g} is outside [-{limit_text}, {limit_text}] "
            "(expected radians, not degrees)",
            line,
        )
    return value


def _load_images(csv_path: Path, items: list[tuple[int, str]], size: tuple[int, int]) -> np.ndarray:
    """Load (line, relative path) images into an (N, H, W) uint8 array, in order."""
    h, w = _check_size(size)
    base = csv_path.parent
    out = np.empty((len(items), h, w), dtype=np.uint8)

    # Serial on purpose: for small PNGs a thread pool was slower (GIL-bound), and
    # the first error then names the earliest bad line.
    for i, (line, rel) in enumerate(items):
        out[i] = _load_one(csv_path, line, base / rel, rel, (h, w))
    return out


def _load_one(
    csv_path: Path, line: int, image_path: Path, rel: str, size: tuple[int, int]
) -> np.ndarray:
    shown = printable(rel)
    if not image_path.is_file():
        raise DataFormatError(csv_path, f"image file not found: {shown}", line)
    try:
        with Image.open(image_path) as im:
            im.load()
            return _to_gray(im, size, shown)
    except DataFormatError as exc:
        raise DataFormatError(csv_path, exc.problem, line) from exc
    except Exception as exc:  # Pillow raises many types for undecodable files
        raise DataFormatError(
            csv_path, f"image {shown} cannot be decoded: {printable(str(exc))}", line
        ) from exc


def _to_gray(im: Image.Image, size: tuple[int, int], name: str) -> np.ndarray:
    if im.mode in _UNSUPPORTED_MODES:
        raise DataFormatError(name, f"image {name} has unsupported mode {im.mode!r}")
    if im.mode != "L":
        im = im.convert("L")
    h, w = size
    if im.size != (w, h):  # Pillow sizes are (width, height)
        im = im.resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


# --------------------------------------------------------------------------- MPIIGaze .mat


def read_mpiigaze_mat(
    path: str | Path,
    *,
    eye: str = "both",
    flip_left: bool = True,
    size: tuple[int, int] = DEFAULT_SIZE,
) -> EyeImages:
    """Read one MPIIGaze normalised per-day file (``Data/Normalized/pXX/dayYY.mat``).

    ``eye`` is ``"right"``, ``"left"`` or ``"both"`` (right eyes first, then left).
    Gaze vectors are converted to (pitch, yaw) with :func:`gaze_vector_to_pitchyaw`;
    head pose is checked for shape when present but not returned.

    ``flip_left`` (default True) mirrors left-eye images horizontally and negates their
    yaw. A mirrored left eye looks like a right eye (nose side on the same side of the
    patch), so one model can serve both eyes and mixes with right-eye data; mirroring
    about the vertical axis maps g_x to -g_x, which flips the sign of yaw and leaves
    pitch unchanged. This is the usual practice with MPIIGaze.
    """
    if eye not in ("right", "left", "both"):
        raise ValueError(f"eye must be 'right', 'left' or 'both', got {eye!r}")
    h, w = _check_size(size)
    mat_path = Path(path)
    if not mat_path.is_file():
        raise DataFormatError(mat_path, "no such file" if not mat_path.exists() else "not a file")
    mat = _loadmat(mat_path)
    if "data" not in mat:
        raise DataFormatError(mat_path, "no 'data' variable (not an MPIIGaze normalised file)")
    data = mat["data"]

    parts: list[tuple[np.ndarray, np.ndarray, list[str]]] = []
    for side in ("right", "left") if eye == "both" else (eye,):
        side_struct = _field(mat_path, data, side, "data")
        images = _field(mat_path, side_struct, "image", f"data.{side}")
        gaze = _field(mat_path, side_struct, "gaze", f"data.{side}")
        where = f"data.{side}"
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataFormatError(
                mat_path,
                f"{where}.image must be an N x H x W uint8 array, "
                f"got shape {images.shape} {images.dtype}",
            )
        n = images.shape[0]
        if gaze.shape != (n, 3) or not np.issubdtype(gaze.dtype, np.number):
            raise DataFormatError(
                mat_path, f"{where}.gaze must be {n} x 3 numbers, got shape {gaze.shape}"
            )
        if _has_field(side_struct, "pose"):
            pose = _field(mat_path, side_struct, "pose", where)
            if pose.shape != (n, 3):
                raise DataFormatError(
                    mat_path, f"{where}.pose must be {n} x 3, got shape {pose.shape}"
                )
        try:
            pitchyaw = gaze_vector_to_pitchyaw(gaze)
        except ValueError as exc:
            raise DataFormatError(mat_path, f"{where}.gaze: {exc}") from exc
        if images.shape[1:] != (h, w):
            resized = np.empty((n, h, w), dtype=np.uint8)
            for i, im in enumerate(images):
                resized[i] = _to_gray(Image.fromarray(im), (h, w), str(mat_path))
            images = resized
        if side == "left" and flip_left:
            images = images[:, :, ::-1]
            pitchyaw = pitchyaw * np.array([1.0, -1.0])
        names = [f"{mat_path}#{side}/{i}" for i in range(n)]
        parts.append((np.ascontiguousarray(images, dtype=np.uint8), pitchyaw, names))

    return EyeImages(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]).astype(np.float32),
        tuple(name for p in parts for name in p[2]),
        str(path),
    )


def _loadmat(mat_path: Path) -> dict:
    import scipy.io

    from realdata.mat5_check import check_mat5_type_codes

    check_mat5_type_codes(mat_path)
    try:
        return scipy.io.loadmat(mat_path)
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5) files
        raise DataFormatError(
            mat_path, f"unsupported MAT file version: {printable(str(exc))}"
        ) from exc
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError, zlib errors...
        raise DataFormatError(
            mat_path, f"not a readable MATLAB .mat file: {printable(str(exc))}"
        ) from exc


def _has_field(struct: np.ndarray, name: str) -> bool:
    names = getattr(getattr(struct, "dtype", None), "names", None)
    return bool(names) and name in names


def _field(mat_path: Path, struct: object, name: str, where: str) -> np.ndarray:
    """``struct[name][0, 0]`` for a 1 x 1 MATLAB struct as loaded by scipy.io.loadmat."""
    if not isinstance(struct, np.ndarray) or not _has_field(struct, name):
        raise DataFormatError(mat_path, f"{where} has no field {name!r}")
    if struct.size != 1:
        raise DataFormatError(mat_path, f"{where} must be a 1 x 1 struct, got {struct.shape}")
    value = struct[name].reshape(-1)[0]
    if not isinstance(value, np.ndarray):
        raise DataFormatError(mat_path, f"{where}.{name} is not an array")
    return value
