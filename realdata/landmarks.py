"""Readers for real facial-landmark annotations: iBug ``.pts``, dlib imglab XML, COCO keypoints.

Coordinates everywhere in the project are 0-based pixel coordinates with the centre of
the top-left pixel at (0, 0) (x right, y down). The iBug/300-W ``.pts`` format is 1-based
(the top-left pixel centre is (1, 1)), so :func:`read_pts` subtracts 1 and
:func:`write_pts` adds it back. dlib's imglab XML is 0-based. COCO-style face files are
converted from ``.pts`` files verbatim in practice (the 300-VW sample's keypoints equal its
``.pts`` numbers to the last digit), so :func:`read_coco_keypoints` treats them as 1-based
unless told otherwise.

Missing points (COCO ``v = 0``, dlib parts that are absent) are NaN in ``points`` and False
in ``visible``. Boxes are ``(x0, y0, x1, y1)`` in the same 0-based coordinates.

Every unreadable or malformed input raises :class:`realdata.errors.DataFormatError`
naming the file and, where there is one, the 1-based line.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

import numpy as np
from PIL import Image

from realdata.errors import DataFormatError, printable, shown

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm")
N_POINTS_68 = 68

Box = tuple[float, float, float, float]


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, eq=False)
class FaceRecord:
    """One annotated face.

    image:   the image file, resolved relative to the annotation file's folder.
    points:  (K, 2) float64, 0-based pixel coordinates; NaN where a point is missing.
    visible: (K,) bool, False where a point is missing (COCO ``v = 0``; absent dlib part).
             COCO ``v = 1`` (labelled but occluded) counts as present: its coordinates
             are real annotations.
    box:     (x0, y0, x1, y1) face box in 0-based pixel coordinates, or None.
    """

    image: Path
    points: np.ndarray
    visible: np.ndarray
    box: Box | None = None

    def __post_init__(self) -> None:
        if self.points.ndim != 2 or self.points.shape[1] != 2:
            raise ValueError(f"points must be (K, 2), got {self.points.shape}")
        k = len(self.points)
        if self.visible.shape != (k,) or self.visible.dtype != np.bool_:
            raise ValueError(f"visible must be ({k},) bool, got {self.visible.shape}")


@dataclass(frozen=True, eq=False)
class FaceSet:
    """Faces with landmarks, images read on demand.

    names:       sample names (folders: the file stems, sorted).
    image_paths: one image file per sample, or None (annotations read without images).
    points:      (N, K, 2) float64, 0-based pixel coordinates; all-NaN rows for images
                 that had no labels (``require_labels=False``).
    source:      the folder (or annotation file) that was read.
    """

    names: tuple[str, ...]
    image_paths: tuple[Path | None, ...]
    points: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.points.ndim != 3 or self.points.shape[0] != n or self.points.shape[2] != 2:
            raise ValueError(f"points must be ({n}, K, 2), got {self.points.shape}")
        if len(self.image_paths) != n:
            raise ValueError(f"expected {n} image paths, got {len(self.image_paths)}")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def labeled(self) -> np.ndarray:
        """(N,) bool: the samples whose points are all finite."""
        return np.all(np.isfinite(self.points), axis=(1, 2))

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as (H, W, 3) RGB uint8, read from disk now (never cached)."""
        path = self.image_paths[i]
        if path is None:
            raise ValueError(f"sample {self.names[i]!r} has no image (read with_images=False?)")
        return load_rgb(path)

    def subset(self, indices: Sequence[int] | slice) -> FaceSet:
        """The samples at ``indices`` (a slice or a sequence of ints), same source."""
        idx = range(len(self))[indices] if isinstance(indices, slice) else list(indices)
        return FaceSet(
            tuple(self.names[i] for i in idx),
            tuple(self.image_paths[i] for i in idx),
            self.points[list(idx)],
            self.source,
        )

    def iter_images(self) -> Iterator[np.ndarray]:
        """Images in order, one at a time, so a large set never sits in memory at once."""
        for i in range(len(self)):
            yield self.image(i)

    @classmethod
    def from_records(cls, records: Sequence[FaceRecord], source: str = "") -> FaceSet:
        """A FaceSet from reader records (all with the same number of points); names are
        the image stems with the record index appended, since an image may hold several
        faces. Records with different point counts raise DataFormatError naming
        ``source`` (else the first odd record's image) and which records differ."""
        _check_same_point_count(records, source)
        k = records[0].points.shape[0] if records else N_POINTS_68
        pts = np.stack([r.points for r in records]) if records else np.zeros((0, k, 2))
        return cls(
            tuple(f"{r.image.stem}#{i}" for i, r in enumerate(records)),
            tuple(r.image for r in records),
            pts,
            source,
        )


def _check_same_point_count(records: Sequence[FaceRecord], source: str) -> None:
    by_count: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_count.setdefault(r.points.shape[0], []).append(i)
    if len(by_count) < 2:
        return
    # most common count first: the odd ones out are the records to look at
    groups = sorted(by_count.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    described = "; ".join(
        f"{len(idx)} with {k} (first: record {idx[0]}, {printable(records[idx[0]].image.name)})"
        for k, idx in groups
    )
    path = source or records[groups[1][1][0]].image
    raise DataFormatError(path, f"records have different point counts: {described}")


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image as (H, W, 3) RGB uint8 (grayscale and palette images are converted)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "image file not found")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # Pillow raises many types for undecodable files
        raise DataFormatError(path, f"image cannot be decoded: {printable(str(exc))}") from exc


def decode_utf8(path: Path, data: bytes) -> str:
    """``data`` as UTF-8 text (a BOM is dropped); DataFormatError naming the line of the
    first byte that is not UTF-8."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len(_LINE_BREAK.findall(data, 0, exc.start)) + 1
        raise DataFormatError(
            path, f"not UTF-8 text (byte 0x{data[exc.start]:02x}: {exc.reason})", line
        ) from None


# Line ends as editors count them (str.splitlines would also split on \v, \f, U+2028...,
# which shifts every later line number).
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


# --------------------------------------------------------------------------- .pts


def read_pts(path: str | Path, *, n_points: int | None = None) -> np.ndarray:
    """Read an iBug ``.pts`` file into (N, 2) float64 0-based pixel coordinates.

    Layout: header lines ``key: value`` (``version: 1``, ``n_points: N``; ``n_points`` is
    required), a line ``{``, N lines of two numbers (1-based x y), a line ``}``. Blank
    lines and comment lines (``#`` or ``//``) are allowed anywhere. ``n_points``, when
    given, is the count the caller requires (e.g. 68).
    """
    path = Path(path)
    lines = _content_lines(path)
    declared: int | None = None
    it = iter(lines)
    open_line = None
    for line, text in it:  # header, up to '{'
        if text == "{":
            open_line = line
            break
        if ":" not in text:
            raise DataFormatError(
                path, f"expected a header line 'key: value' or '{{', found {text!r}", line
            )
        key, value = (s.strip() for s in text.split(":", 1))
        if key == "n_points":
            try:
                declared = int(value)
            except ValueError:
                raise DataFormatError(path, f"n_points is not an integer: {value!r}", line) from None
            if declared < 0:
                raise DataFormatError(path, f"n_points is negative: {declared}", line)
    if open_line is None:
        raise DataFormatError(path, "missing opening '{' (no point block found)")
    if declared is None:
        raise DataFormatError(path, "header has no 'n_points:' line", open_line)
    coords: list[tuple[float, float]] = []
    close_line = None
    for line, text in it:  # the point block, up to '}'
        if text == "}":
            close_line = line
            break
        coords.append(_parse_xy(path, text, line))
    if close_line is None:
        raise DataFormatError(path, f"missing closing '}}' for the '{{' on line {open_line}")
    for line, text in it:
        raise DataFormatError(path, f"unexpected text after '}}': {text!r}", line)
    if len(coords) != declared:
        raise DataFormatError(
            path, f"n_points says {declared} but the block holds {len(coords)} points", close_line
        )
    if n_points is not None and declared != n_points:
        raise DataFormatError(path, f"expected {n_points} points, file has {declared}")
    return np.asarray(coords, dtype=np.float64).reshape(-1, 2) - 1.0


def _content_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of every line that is not blank or a comment."""
    raw = decode_utf8(path, _read_bytes(path))
    out = []
    for i, line in enumerate(re.split(r"\r\n|\r|\n", raw), 1):
        s = line.strip()
        if s and not s.startswith(("#", "//")):
            out.append((i, s))
    return out


def _parse_xy(path: Path, text: str, line: int) -> tuple[float, float]:
    fields = text.split()
    if len(fields) != 2:
        raise DataFormatError(path, f"expected 2 numbers 'x y', found {text!r}", line)
    try:
        x, y = float(fields[0]), float(fields[1])
    except ValueError:
        raise DataFormatError(path, f"not a number in {text!r}", line) from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise DataFormatError(path, f"coordinate is not finite: {text!r}", line)
    return x, y


def write_pts(path: str | Path, points: np.ndarray, *, decimals: int = 6) -> None:
    """Write (N, 2) 0-based points as a 1-based iBug ``.pts`` file, atomically (a reader
    sees the old file or the new one, never a part). NaN cannot be written: ValueError."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError(".pts cannot hold missing or non-finite points")
    body = "".join(f"{x:.{decimals}f} {y:.{decimals}f}\n" for x, y in pts + 1.0)
    atomic_write_text(Path(path), f"version: 1\nn_points: {len(pts)}\n{{\n{body}}}\n")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- dlib imglab XML


def read_imglab_xml(path: str | Path, *, n_points: int | None = None) -> list[FaceRecord]:
    """Read a dlib imglab dataset XML (what ``imglab`` and dlib's 300-W training files use)::

        <dataset><images>
          <image file='a.jpg'>
            <box top='10' left='20' width='100' height='110'>
              <part name='00' x='25' y='40'/> ...
            </box>
          </image>
        </images></dataset>

    One record per ``<box>``, in file order; boxes marked ``ignore='1'`` are "don't care"
    regions in dlib and are skipped. Coordinates are dlib's 0-based pixels; the box becomes
    ``(left, top, left + width, top + height)``. Part names must be non-negative integers
    and give the point index (dlib orders names as strings, which for its zero-padded
    '00'..'67' is the same order). The number of points K is ``n_points`` when given,
    otherwise the largest index in the file + 1; parts a box does not list are NaN / not
    visible. Errors name the file and the line of the offending element.
    """
    path = Path(path)
    data = _read_bytes(path)
    boxes: list[tuple[str, Box, dict[int, tuple[float, float, int]]]] = []
    stack: list[str] = []
    image_file = ""
    current: tuple[str, Box, dict[int, tuple[float, float, int]]] | None = None
    seen_images = False
    parser = expat.ParserCreate()

    def attr(attrs: dict[str, str], name: str, tag: str, line: int) -> str:
        if name not in attrs:
            raise DataFormatError(path, f"<{tag}> has no '{name}' attribute", line)
        return attrs[name]

    def number(attrs: dict[str, str], name: str, tag: str, line: int) -> float:
        text = attr(attrs, name, tag, line)
        try:
            value = float(text)
        except ValueError:
            raise DataFormatError(path, f"<{tag}> {name}={text!r} is not a number", line) from None
        if not math.isfinite(value):
            raise DataFormatError(path, f"<{tag}> {name}={text!r} is not finite", line)
        return value

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal image_file, current, seen_images
        line = parser.CurrentLineNumber
        where = tuple(stack)
        if not where and tag != "dataset":
            raise DataFormatError(path, f"root element is <{tag}>, expected <dataset>", line)
        if tag == "images" and where == ("dataset",):
            seen_images = True
        elif tag == "image" and where == ("dataset", "images"):
            image_file = attr(attrs, "file", tag, line)
            if not image_file.strip():
                raise DataFormatError(path, "<image> has an empty 'file' attribute", line)
        elif tag == "box" and where == ("dataset", "images", "image"):
            top, left = number(attrs, "top", tag, line), number(attrs, "left", tag, line)
            w, h = number(attrs, "width", tag, line), number(attrs, "height", tag, line)
            if w < 0 or h < 0:
                raise DataFormatError(path, f"<box> has negative size {w:g} x {h:g}", line)
            if attrs.get("ignore", "0").strip() not in ("0", ""):
                tag = "ignored-box"  # its parts are skipped with it
            else:
                current = (image_file, (left, top, left + w, top + h), {})
        elif tag == "part" and where == ("dataset", "images", "image", "box"):
            assert current is not None
            name = attr(attrs, "name", tag, line)
            if not name.strip().isdigit():
                raise DataFormatError(
                    path, f"<part> name={name!r} is not a point index (0, 1, ... or 00, 01, ...)",
                    line,
                )
            idx, parts = int(name), current[2]
            if idx in parts:
                raise DataFormatError(path, f"<part> name={name!r} appears twice in one box", line)
            parts[idx] = (number(attrs, "x", tag, line), number(attrs, "y", tag, line), line)
        stack.append(tag)

    def end(tag: str) -> None:
        nonlocal current
        if stack.pop() == "box" and current is not None:
            boxes.append(current)
            current = None

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except DataFormatError:
        raise
    except expat.ExpatError as exc:
        raise DataFormatError(path, f"malformed XML: {expat.ErrorString(exc.code)}",
                              exc.lineno) from exc
    except (LookupError, ValueError) as exc:
        # the XML declaration names an encoding Python does not know, or one expat cannot
        # read (multi-byte encodings other than UTF-8/16)
        raise DataFormatError(path, f"unsupported XML encoding: {printable(str(exc))}",
                              parser.CurrentLineNumber) from exc
    if not seen_images:
        raise DataFormatError(path, "no <images> element under <dataset>")

    max_idx = max((i for _, _, parts in boxes for i in parts), default=-1)
    k = max_idx + 1 if n_points is None else n_points
    records = []
    for file, box, parts in boxes:
        pts = np.full((k, 2), np.nan)
        visible = np.zeros(k, dtype=bool)
        for idx, (x, y, pline) in parts.items():
            if idx >= k:
                raise DataFormatError(
                    path, f"<part> index {idx} is out of range for {k} points", pline
                )
            pts[idx] = (x, y)
            visible[idx] = True
        records.append(FaceRecord(path.parent / file, pts, visible, box))
    return records


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataFormatError(path, "no such file" if not path.exists() else "not a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataFormatError(path, f"cannot be read: {exc}") from exc


# --------------------------------------------------------------------------- COCO keypoints


def read_coco_keypoints(
    path: str | Path, *, one_based: bool = True, n_points: int | None = None
) -> list[FaceRecord]:
    """Read a COCO-style keypoint file: ``images`` (``id``, ``file_name``) and
    ``annotations`` (``image_id``, ``keypoints`` = flat ``[x, y, v] * K``, optional
    ``bbox`` = ``[x, y, w, h]``, ``category_id``, ``num_keypoints``), optional
    ``categories`` (``id``, ``keypoints`` = the point names). One record per annotation,
    in file order.

    ``v = 0`` means "not labelled": the point is NaN and not visible. ``v`` in {1, 2}
    points are kept. ``one_based`` (default True) subtracts 1 from keypoints and box
    corners: face files in this format (the 300-W / 300-VW samples, mmpose and HRNet
    conversions) copy the 1-based ``.pts`` numbers verbatim. Pass False for files whose
    keypoints are already 0-based pixel coordinates.

    Point counts are checked as :func:`read_pts` checks its ``n_points``: every annotation
    must hold ``n_points`` points when that is given, else the count its category declares
    (its list of point names, or a ``num_keypoints`` of the category), else the count of
    the file's first annotation (one file, one layout). An annotation's own
    ``num_keypoints`` (COCO: how many points are labelled) must be that count or the
    number of its labelled points. Errors name the file and the element
    (``annotations[3] (id 12).keypoints``); JSON syntax errors name the line.
    """
    path = Path(path)
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise DataFormatError(path, "top level must be a JSON object with images/annotations")
    images = _list_field(path, doc, "images")
    annotations = _list_field(path, doc, "annotations")
    files = _coco_image_files(path, images)
    declared = _coco_category_point_counts(path, doc)

    shift = 1.0 if one_based else 0.0
    layout = _PointLayout(path, n_points)
    records = []
    for i, ann in enumerate(annotations):
        where = _annotation_name(i, ann)
        if not isinstance(ann, dict):
            raise DataFormatError(path, f"{where} must be an object")
        for field in ("image_id", "keypoints"):
            if field not in ann:
                raise DataFormatError(path, f"{where} has no '{field}'")
        key = _id_key(path, ann["image_id"], f"{where}.image_id")
        if key not in files:
            raise DataFormatError(
                path, f"{where}.image_id {shown(ann['image_id'])} is not in images"
            )
        kp = _numbers(path, ann["keypoints"], f"{where}.keypoints")
        if len(kp) % 3:
            raise DataFormatError(
                path, f"{where}.keypoints has {len(kp)} numbers, not a multiple of 3 (x, y, v)"
            )
        kp = kp.reshape(-1, 3)
        v = kp[:, 2]
        if not np.all(np.isin(v, (0, 1, 2))):
            bad = v[~np.isin(v, (0, 1, 2))][0]
            raise DataFormatError(path, f"{where}.keypoints: visibility {bad:g} not in 0, 1, 2")
        visible = v > 0
        if not np.all(np.isfinite(kp[visible, :2])):
            raise DataFormatError(path, f"{where}.keypoints: a labelled point is not finite")
        layout.check(where, len(kp), _declared_for(path, where, ann, declared))
        _check_num_keypoints(path, where, ann, len(kp), int(visible.sum()))
        pts = np.where(visible[:, None], kp[:, :2] - shift, np.nan)
        records.append(FaceRecord(path.parent / files[key], pts, visible,
                                  _coco_box(path, ann, where, shift)))
    return records


def _read_json(path: Path) -> object:
    text = decode_utf8(path, _read_bytes(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"malformed JSON: {exc.msg}", exc.lineno) from exc
    except RecursionError:
        raise DataFormatError(path, "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts
        raise DataFormatError(path, f"malformed JSON: {printable(str(exc))}") from exc


def _coco_image_files(path: Path, images: list) -> dict[object, str]:
    files: dict[object, str] = {}
    for i, im in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise DataFormatError(path, f"{where} must be an object with 'id' and 'file_name'")
        if not isinstance(im["file_name"], str) or not im["file_name"].strip():
            raise DataFormatError(path, f"{where}.file_name must be a non-empty string")
        key = _id_key(path, im["id"], f"{where}.id")
        if key in files:
            raise DataFormatError(path, f"{where}: image id {shown(im['id'])} appears twice")
        files[key] = im["file_name"]
    return files


def _coco_category_point_counts(path: Path, doc: dict) -> dict[object, int | None]:
    """{category id: the point count it declares, or None}. A category declares a count
    with a non-empty ``keypoints`` list of point names or a ``num_keypoints`` number
    (an empty name list, as in the 300-W sample, declares nothing)."""
    if doc.get("categories") is None:
        return {}
    counts: dict[object, int | None] = {}
    for i, cat in enumerate(_list_field(path, doc, "categories")):
        where = f"categories[{i}]"
        if not isinstance(cat, dict) or "id" not in cat:
            raise DataFormatError(path, f"{where} must be an object with an 'id'")
        names = cat.get("keypoints") or []
        if not isinstance(names, list):
            raise DataFormatError(path, f"{where}.keypoints must be a list of point names")
        count = cat.get("num_keypoints")
        if count is not None and not _is_count(count):
            raise DataFormatError(
                path, f"{where}.num_keypoints must be a non-negative integer, got {shown(count)}"
            )
        if names and count is not None and count != len(names):
            raise DataFormatError(
                path, f"{where}: num_keypoints {count} but {len(names)} keypoint names"
            )
        counts[_id_key(path, cat["id"], f"{where}.id")] = len(names) or count
    return counts


def _declared_for(path: Path, where: str, ann: dict, declared: dict) -> tuple[int, str] | None:
    """(count, who declares it) from the annotation's category, or None."""
    if ann.get("category_id") is None or not declared:
        return None
    key = _id_key(path, ann["category_id"], f"{where}.category_id")
    if key not in declared:
        raise DataFormatError(
            path, f"{where}.category_id {shown(ann['category_id'])} is not in categories"
        )
    count = declared[key]
    return None if count is None else (count, f"its category {shown(ann['category_id'])}")


class _PointLayout:
    """The point count every annotation of one file must have (see read_coco_keypoints):
    the caller's, else the category's, else the first annotation's."""

    def __init__(self, path: Path, n_points: int | None):
        self.path = path
        self.required = n_points
        self.first: tuple[int, str] | None = None  # (count, annotation) that set the layout

    def check(self, where: str, count: int, declared: tuple[int, str] | None) -> None:
        if self.required is not None:
            want, why = self.required, f"expected {self.required}"
        elif declared is not None:
            want, why = declared[0], f"{declared[1]} declares {declared[0]}"
        elif self.first is not None:
            want, why = self.first[0], f"{self.first[1]} has {self.first[0]} (one file, one layout)"
        else:
            want, why = count, ""
        if count != want:
            raise DataFormatError(self.path, f"{where}.keypoints has {count} points, {why}")
        if self.first is None:
            self.first = (count, where)


def _check_num_keypoints(path: Path, where: str, ann: dict, count: int, labelled: int) -> None:
    declared = ann.get("num_keypoints")
    if declared is None:
        return
    if not _is_count(declared):
        raise DataFormatError(
            path, f"{where}.num_keypoints must be a non-negative integer, got {shown(declared)}"
        )
    # COCO counts the labelled points; converters from .pts often write the total
    if declared not in (labelled, count):
        raise DataFormatError(
            path, f"{where}.num_keypoints says {declared} but keypoints hold {count} points "
            f"({labelled} labelled)"
        )


def _coco_box(path: Path, ann: dict, where: str, shift: float) -> Box | None:
    if ann.get("bbox") is None:
        return None
    b = _numbers(path, ann["bbox"], f"{where}.bbox")
    if len(b) != 4 or not np.all(np.isfinite(b)) or b[2] < 0 or b[3] < 0:
        raise DataFormatError(path, f"{where}.bbox must be [x, y, w, h] with w, h >= 0")
    x, y = b[0] - shift, b[1] - shift
    return (float(x), float(y), float(x + b[2]), float(y + b[3]))


def _annotation_name(i: int, ann: object) -> str:
    """``annotations[3]``, with the annotation's id when it has a usable one."""
    ann_id = ann.get("id") if isinstance(ann, dict) else None
    if isinstance(ann_id, int | str) and not isinstance(ann_id, bool):
        return f"annotations[{i}] (id {shown(ann_id)})"
    return f"annotations[{i}]"


def _list_field(path: Path, doc: dict, name: str) -> list:
    if name not in doc:
        raise DataFormatError(path, f"no '{name}' list at the top level")
    if not isinstance(doc[name], list):
        raise DataFormatError(path, f"'{name}' must be a list")
    return doc[name]


def _id_key(path: Path, value: object, where: str) -> object:
    """The dictionary key of a COCO id: ids are ints (tolerated: strings, and 197.0 for
    197); never match "197" to 197 silently, and refuse lists, objects and booleans."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DataFormatError(path, f"{where} must be a number or a string, got {shown(value)}")
    return value


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _numbers(path: Path, value: object, where: str) -> np.ndarray:
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        raise DataFormatError(path, f"{where} must be a list of numbers")
    try:
        return np.asarray(value, dtype=np.float64)
    except OverflowError:  # a JSON integer beyond float range
        raise DataFormatError(path, f"{where}: a number is too large") from None


# --------------------------------------------------------------------------- folders


def read_landmark_folder(
    dir: str | Path,
    *,
    with_images: bool = True,
    require_labels: bool = True,
    n_points: int = N_POINTS_68,
) -> FaceSet:
    """Read a folder of images (.jpg/.jpeg/.png/.ppm) with sibling ``.pts`` files
    (``image_0001.jpg`` + ``image_0001.pts``), the 300-W / LFPW layout.

    Samples are sorted by name (file stem). Every ``.pts`` must hold ``n_points`` points.
    With ``with_images`` (default) each ``.pts`` needs an image (else an error names the
    ``.pts``) and each image needs a ``.pts`` (else an error names the image) unless
    ``require_labels=False``, when the image is kept with all-NaN points. Without
    ``with_images`` only the ``.pts`` files are read and ``image_paths`` are None. Images
    are not read here: :meth:`FaceSet.image` reads one on demand. Other files are ignored.
    """
    folder = Path(dir)
    if not folder.is_dir():
        raise DataFormatError(folder, "is not a folder" if folder.exists() else "no such folder")
    pts_files: dict[str, Path] = {}
    image_files: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.name.startswith(".") or not f.is_file():
            continue
        suffix = f.suffix.lower()
        if suffix == ".pts":
            pts_files[f.stem] = f
        elif suffix in IMAGE_SUFFIXES and with_images:
            if f.stem in image_files:
                raise DataFormatError(
                    f, f"two images share the name {f.stem!r}: {image_files[f.stem].name}, {f.name}"
                )
            image_files[f.stem] = f
    if with_images:
        for stem, p in pts_files.items():
            if stem not in image_files:
                raise DataFormatError(
                    p, f"has no image beside it ({', '.join(stem + s for s in IMAGE_SUFFIXES)})"
                )
        if require_labels:
            for stem, im in image_files.items():
                if stem not in pts_files:
                    raise DataFormatError(im, f"has no landmark file {stem}.pts beside it")
        names = sorted(image_files)
    else:
        names = sorted(pts_files)
    if not names:
        what = "images or .pts files" if with_images else ".pts files"
        raise DataFormatError(folder, f"holds no {what}")
    points = np.full((len(names), n_points, 2), np.nan)
    for i, name in enumerate(names):
        if name in pts_files:
            points[i] = read_pts(pts_files[name], n_points=n_points)
    paths = tuple(image_files[n] for n in names) if with_images else (None,) * len(names)
    return FaceSet(tuple(names), paths, points, str(folder))
