"""Fuzz every real-data reader with mutated copies of tiny valid files.

For every mutated input a reader either reads it, or raises the project's user error
(:class:`SynthloopError`, usually :class:`DataFormatError`) whose message is one line and
names a file of the input; it never leaks another exception type (UnicodeDecodeError,
IndexError, KeyError, TypeError, OverflowError, RecursionError, Pillow or numpy errors)
and never writes anything. Deterministic: hypothesis runs derandomised.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from realdata.errors import DataFormatError, SynthloopError
from realdata.eyes import read_eye_folder, read_mpiigaze_mat
from realdata.landmarks import (
    FaceSet,
    load_rgb,
    read_coco_keypoints,
    read_imglab_xml,
    read_pts,
)
from realdata.real_faces import load_real_faces

#: More examples for a deeper, still deterministic, search: SYNTHLOOP_FUZZ_SCALE=20.
SCALE = int(os.environ.get("SYNTHLOOP_FUZZ_SCALE", "1"))


def fuzz(n: int) -> settings:
    return settings(derandomize=True, max_examples=n * SCALE, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


# --------------------------------------------------------------------------- mutations

#: Bytes that matter to one of the formats (separators, quotes, brackets, numbers that
#: overflow or are not finite, bad UTF-8, a BOM, NUL, path pieces, line breaks).
TOKENS = [
    b"\n", b"\r", b"\r\n", b",", b'"', b"'", b"{", b"}", b"[", b"]", b":", b"<", b">", b"/",
    b"=", b"#", b"//", b" ", b"\t", b"-", b".", b"e", b"0", b"nan", b"inf", b"-inf", b"NaN",
    b"Infinity", b"1e309", b"-1e6", b"1e6", b"99999999999999999999999", b"1e300", b"\x00",
    b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"\x0b", b"\x85", b"../", b"images",
    b"null", b"true", b"[]", b"{}", b"-0", b"2", b"3", b"\"x\"", b"<!--", b"&amp;", b"&x;",
]


@st.composite
def mutated(draw, seed: bytes, max_ops: int = 4) -> bytes:
    """``seed`` after 1..max_ops random edits: bit flips, byte sets, token inserts,
    deletions, duplications and truncations."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["flip", "set", "insert", "insert", "delete", "dup",
                                   "truncate"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "dup":
            n = draw(st.integers(1, 64))
            data[pos:pos] = data[pos:pos + n]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def assert_reads_or_fails_cleanly(read: Callable[[], object], folder: Path) -> object:
    """Run ``read``: it returns, or raises a SynthloopError with a one-line message that
    names a file under ``folder``; any other exception propagates (a failure). Nothing
    under ``folder`` may change."""
    before = _snapshot(folder)
    result = None
    try:
        result = read()
    except SynthloopError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1, f"not one line: {message!r}"
        assert message.startswith(str(folder)), f"does not name the file: {message!r}"
        if isinstance(exc, DataFormatError):
            assert exc.path.is_relative_to(folder), exc.path
    assert _snapshot(folder) == before, "the reader wrote or changed a file"
    return result


class Scratch:
    """A fresh folder per example under the test's tmp_path (fixtures are per test)."""

    def __init__(self, root: Path):
        self.root = root

    def folder(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.root))


@pytest.fixture
def scratch(tmp_path) -> Scratch:
    return Scratch(tmp_path)


def _png(shape: tuple[int, ...], seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(shape: tuple[int, ...], seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


# --------------------------------------------------------------------------- gaze CSVs

EYE_SIZE = (4, 6)  # (height, width): tiny patches keep each example fast

LABELS = (
    b"image,pitch,yaw,head_pitch,head_yaw\n"
    b"images/00000.png,0.1745,-0.0873,0.0,0.2618\n"
    b"images/00001.png,-0.1745,0.2618,0.1,-0.1\n"
    b"images/00002.png,0.0,0.0,0.0,0.0\n"
)
MANIFEST = b"image\nimages/00000.png\nimages/00001.png\nimages/00002.png\n"
# the Columbia layout: image,subject,head_pose_P_deg,gaze_V_deg,gaze_H_deg,eye,source_path
META = (
    b"image,subject,head_pose_P_deg,gaze_V_deg,gaze_H_deg,eye,source_path\n"
    b"images/00000.png,0001,0,10,5,L,0001/0001_2m_0P_10V_5H_L.jpg\n"
    b"images/00001.png,0001,15,-10,-15,R,0001/0001_2m_15P_-10V_-15H_R.jpg\n"
    b"images/00002.png,0003,-30,0,0,L,0003/0003_2m_-30P_0V_0H_L.jpg\n"
)


def _eye_folder(folder: Path, files: dict[str, bytes]) -> Path:
    (folder / "images").mkdir()
    for i in range(3):
        (folder / "images" / f"{i:05d}.png").write_bytes(_png(EYE_SIZE, seed=i))
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


EYE_CASES = {
    "labels.csv": {"labels.csv": LABELS, "meta.csv": META},
    "meta.csv": {"labels.csv": LABELS, "meta.csv": META},
    "manifest.csv": {"manifest.csv": MANIFEST, "meta.csv": META},
}


@fuzz(200)
@given(target=st.sampled_from(sorted(EYE_CASES)), data=st.data())
def test_gaze_folder_reader(scratch, target, data):
    files = dict(EYE_CASES[target])
    files[target] = data.draw(mutated(files[target]), label=target)
    folder = _eye_folder(scratch.folder(), files)
    eyes = assert_reads_or_fails_cleanly(lambda: read_eye_folder(folder, size=EYE_SIZE), folder)
    if eyes is not None:
        assert eyes.images.shape[1:] == EYE_SIZE
        if eyes.pitchyaw is not None:
            assert np.all(np.abs(eyes.pitchyaw) <= [math.pi / 2, math.pi])


@fuzz(100)
@given(image=st.sampled_from(["png-L", "png-RGB", "jpeg-L", "jpeg-RGB"]), data=st.data())
def test_gaze_folder_with_a_damaged_image(scratch, image, data):
    kind, mode = image.split("-")
    shape = EYE_SIZE if mode == "L" else (*EYE_SIZE, 3)
    seed = _png(shape) if kind == "png" else _jpeg(shape)
    folder = _eye_folder(scratch.folder(), {"labels.csv": LABELS})
    (folder / "images" / "00001.png").write_bytes(data.draw(mutated(seed)))
    assert_reads_or_fails_cleanly(lambda: read_eye_folder(folder, size=EYE_SIZE), folder)


# --------------------------------------------------------------------------- MPIIGaze .mat


def _mat_seed() -> bytes:
    buf = io.BytesIO()
    eye = {"image": np.zeros((2, *EYE_SIZE), np.uint8), "gaze": [[0, 0, -1.0], [0.1, 0, -1]],
           "pose": np.zeros((2, 3))}
    scipy.io.savemat(buf, {"data": {"right": eye, "left": eye}})
    return buf.getvalue()


MAT_SEED = _mat_seed()


def _compressed(mat: bytes) -> bytes:
    """``mat`` with its variables in one miCOMPRESSED element, as MATLAB writes v7 files
    (the variables are mutated before compression, so the damage survives inflating)."""
    payload = zlib.compress(mat[128:])
    return mat[:128] + struct.pack("<II", 15, len(payload)) + payload


@fuzz(150)
@given(content=mutated(MAT_SEED), compress=st.booleans())
def test_mpiigaze_mat_reader(scratch, content, compress):
    folder = scratch.folder()
    (folder / "day01.mat").write_bytes(_compressed(content) if compress else content)
    assert_reads_or_fails_cleanly(lambda: read_mpiigaze_mat(folder / "day01.mat",
                                                            size=EYE_SIZE), folder)


def _mat_with(offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(MAT_SEED)
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


# byte offsets in MAT_SEED: the type code of data.left.image's data element, and the
# second dimension of the top-level struct `data`
LEFT_IMAGE_TYPE, DATA_DIM2 = 760, 164


def test_mat_reader_refuses_a_type_code_that_crashes_scipy(tmp_path):
    """scipy.io.loadmat indexes a table with this code unchecked: a segmentation fault.
    Read in a child process, so that a crash fails this test instead of ending pytest."""
    assert MAT_SEED[LEFT_IMAGE_TYPE] == 2  # miUINT8, the image bytes
    content = _mat_with(LEFT_IMAGE_TYPE, "<B", 164)
    plain, packed = tmp_path / "plain.mat", tmp_path / "packed.mat"
    plain.write_bytes(content)
    packed.write_bytes(_compressed(content))
    child = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom realdata.eyes import read_mpiigaze_mat\n"
         "from realdata.errors import DataFormatError\nfor path in sys.argv[1:]:\n"
         "    try:\n        read_mpiigaze_mat(path)\n    except DataFormatError as exc:\n"
         "        print(exc, flush=True)\n", str(plain), str(packed)],
        capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == 0, f"reader crashed the process (exit {child.returncode})"
    # offsets count from the file's start, or from the start of the inflated variable
    assert child.stdout.splitlines() == [
        f"{plain}: damaged MATLAB .mat file: array data at byte 760 has type code 164",
        f"{packed}: damaged MATLAB .mat file: array data at byte 632 has type code 164",
    ]


def test_mat_reader_refuses_dimensions_larger_than_the_file(tmp_path):
    """A struct whose damaged dimensions claim 3 million elements: scipy allocates them all
    before it runs out of bytes. The reader refuses it without allocating."""
    assert struct.unpack_from("<i", MAT_SEED, DATA_DIM2) == (1,)
    path = tmp_path / "day01.mat"
    path.write_bytes(_mat_with(DATA_DIM2, "<i", 3_000_000))
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match="claims 3000000 elements"):
            read_mpiigaze_mat(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_mat_reader_huge_gaze_vectors(tmp_path):
    """Gaze vectors are directions: scaled by 1e200 they give the same labels (squaring
    them overflowed, and every label came out as (0, 0))."""
    gaze = np.array([[0.0, 0.0, -1.0], [0.3, -0.2, -1.0]])
    eye = {"image": np.zeros((2, *EYE_SIZE), np.uint8), "gaze": gaze * 1e200}
    scipy.io.savemat(tmp_path / "day01.mat", {"data": {"right": eye}})
    eyes = read_mpiigaze_mat(tmp_path / "day01.mat", eye="right", size=EYE_SIZE)
    expected = [[0.0, 0.0], [math.asin(0.2 / math.hypot(0.3, 0.2, 1)), math.atan2(-0.3, 1.0)]]
    np.testing.assert_allclose(eyes.pitchyaw, expected, atol=1e-6)


# --------------------------------------------------------------------------- .pts


def _pts_seed(n: int = 68) -> bytes:
    pts = np.random.default_rng(3).uniform(8, 32, (n, 2))
    body = "".join(f"{x:.3f} {y:.3f}\n" for x, y in pts)
    return f"version: 1\nn_points: {n}\n{{\n{body}}}\n".encode()


PTS_SEED = _pts_seed()


@fuzz(200)
@given(content=mutated(PTS_SEED, max_ops=3))
def test_pts_reader(scratch, content):
    folder = scratch.folder()
    (folder / "face.pts").write_bytes(content)
    assert_reads_or_fails_cleanly(lambda: read_pts(folder / "face.pts"), folder)
    assert_reads_or_fails_cleanly(lambda: read_pts(folder / "face.pts", n_points=68), folder)


@fuzz(150)
@given(content=mutated(PTS_SEED, max_ops=2))
def test_pts_folder_to_cropped_faces(scratch, content):
    """The landmark CLI path: a folder of image + .pts, read and cropped by the protocol."""
    folder = scratch.folder()
    (folder / "face.png").write_bytes(_png((40, 40, 3)))
    (folder / "face.pts").write_bytes(content)
    assert_reads_or_fails_cleanly(lambda: load_real_faces(folder, size=16), folder)


@fuzz(60)
@given(x=st.floats(-1e12, 1e12), y=st.floats(-1e12, 1e12),
       spread=st.sampled_from([0.0, 1e-9, 1.0, 30.0, 1e3, 1e5, 1e7, 1e12]))
def test_pts_far_outside_the_image(scratch, x, y, spread):
    """Points in the wrong scale or frame (far outside a 40 x 40 image, or spread over a
    huge box) must fail with a message, not try to allocate a crop of the whole box."""
    folder = scratch.folder()
    (folder / "face.png").write_bytes(_png((40, 40, 3)))
    pts = np.array([x, y]) + np.random.default_rng(0).uniform(0, spread, (68, 2))
    body = "".join(f"{float(a)!r} {float(b)!r}\n" for a, b in pts)
    (folder / "face.pts").write_text(f"n_points: 68\n{{\n{body}}}\n")
    assert_reads_or_fails_cleanly(lambda: load_real_faces(folder, size=16), folder)


def test_cropped_faces_name_the_image_that_cannot_be_decoded(tmp_path):
    """The image's own error, not wrapped once more in the folder's name."""
    (tmp_path / "face.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "face.pts").write_bytes(PTS_SEED)
    with pytest.raises(DataFormatError) as err:
        load_real_faces(tmp_path, size=16)
    assert err.value.path == tmp_path / "face.jpg"
    assert str(err.value).startswith(f"{tmp_path / 'face.jpg'}: image cannot be decoded: ")


# --------------------------------------------------------------------------- images


IMAGE_SEEDS = {
    "png-L": _png((12, 10)), "png-RGB": _png((12, 10, 3)),
    "jpeg-L": _jpeg((12, 10)), "jpeg-RGB": _jpeg((12, 10, 3)),
}


@fuzz(200)
@given(kind=st.sampled_from(sorted(IMAGE_SEEDS)), data=st.data())
def test_image_reader(scratch, kind, data):
    folder = scratch.folder()
    path = folder / ("img.png" if kind.startswith("png") else "img.jpg")
    path.write_bytes(data.draw(mutated(IMAGE_SEEDS[kind]), label=kind))
    image = assert_reads_or_fails_cleanly(lambda: load_rgb(path), folder)
    if image is not None:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


# --------------------------------------------------------------------------- dlib XML

XML_SEED = b"""<?xml version='1.0' encoding='ISO-8859-1'?>
<?xml-stylesheet type='text/xsl' href='image_metadata_stylesheet.xsl'?>
<dataset>
<name>faces</name>
<images>
  <image file='a.jpg'>
    <box top='10' left='20' width='30' height='32'>
      <part name='00' x='25' y='14'/>
      <part name='01' x='31.5' y='18'/>
      <part name='02' x='40' y='30'/>
    </box>
    <box top='0' left='0' width='5' height='5' ignore='1'/>
  </image>
  <image file='sub/b.png'>
    <box top='1.5' left='2' width='3' height='4'>
      <part name='1' x='7' y='8'/>
    </box>
  </image>
</images>
</dataset>
"""


@fuzz(300)
@given(content=mutated(XML_SEED), n_points=st.sampled_from([None, 3, 68]))
def test_imglab_xml_reader(scratch, content, n_points):
    folder = scratch.folder()
    (folder / "faces.xml").write_bytes(content)
    records = assert_reads_or_fails_cleanly(
        lambda: read_imglab_xml(folder / "faces.xml", n_points=n_points), folder)
    if records:
        assert_reads_or_fails_cleanly(
            lambda: FaceSet.from_records(records, source=str(folder / "faces.xml")), folder)


# --------------------------------------------------------------------------- COCO JSON

COCO_SEED = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 40},
               {"id": 2, "file_name": "sub/b.png"}],
    "categories": [{"id": 1, "name": "face", "keypoints": ["p0", "p1", "p2"]}],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 1, "num_keypoints": 3, "iscrowd": 0,
         "keypoints": [11.0, 21.0, 2, 0, 0, 0, 31.5, 41.0, 1], "bbox": [10, 20, 30, 40]},
        {"id": 11, "image_id": 2, "category_id": 1, "num_keypoints": 3,
         "keypoints": [1, 2, 2, 3, 4, 2, 5, 6, 2]},
    ],
}

json_scalars = (st.none() | st.booleans() | st.integers(-(10**30), 10**30)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=8)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) into a JSON tree, the root included."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


COCO_PATHS = _paths(COCO_SEED)


@st.composite
def coco_documents(draw) -> bytes:
    """The seed with 1-3 subtrees replaced, deleted or duplicated, as JSON text
    (NaN / Infinity spelt as Python's json writes them), or byte-mutated JSON."""
    if draw(st.booleans()):
        return draw(mutated(json.dumps(COCO_SEED).encode()))
    doc = json.loads(json.dumps(COCO_SEED))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(COCO_PATHS))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            if not path:
                doc = draw(json_values)
            elif draw(st.booleans()):
                parent[path[-1]] = draw(json_values)
            else:
                del parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            pass  # an earlier edit removed or replaced this path
    return json.dumps(doc).encode()


@fuzz(300)
@given(content=coco_documents(), n_points=st.sampled_from([None, 3, 68]))
def test_coco_reader(scratch, content, n_points):
    folder = scratch.folder()
    (folder / "anno.json").write_bytes(content)
    kwargs = {} if n_points is None else {"n_points": n_points}
    records = assert_reads_or_fails_cleanly(
        lambda: read_coco_keypoints(folder / "anno.json", **kwargs), folder)
    if records:
        faces = assert_reads_or_fails_cleanly(
            lambda: FaceSet.from_records(records, source=str(folder / "anno.json")), folder)
        assert faces is not None  # one file's records always share their point count


@pytest.mark.parametrize("content", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"images": [{"id": 1, "file_name": "a"}], "annotations": [{"image_id": 1, '
    b'"keypoints": [1' + b"0" * 400 + b', 2, 2]}]}',
    b'{"images": [{"id": [1], "file_name": "a"}], "annotations": []}',
    b'{"images": [{"id": 1, "file_name": "a"}], "annotations": [{"image_id": {"a": 1}, '
    b'"keypoints": []}]}',
], ids=["nested-deeper-than-the-parser-recurses", "integer-beyond-float-range",
        "list-as-image-id", "object-as-annotation-image-id"])
def test_coco_reader_edge_cases(tmp_path, content):
    (tmp_path / "anno.json").write_bytes(content)
    with pytest.raises(DataFormatError) as err:
        read_coco_keypoints(tmp_path / "anno.json")
    assert err.value.path == tmp_path / "anno.json"
    assert len(str(err.value).splitlines()) == 1 and len(str(err.value)) < 300


@pytest.mark.parametrize("encoding", ["ISO-8859-99", "shift_jis", "utf-32"])
def test_imglab_xml_declaring_an_encoding_expat_cannot_read(tmp_path, encoding):
    path = tmp_path / "faces.xml"
    path.write_bytes(XML_SEED.replace(b"ISO-8859-1", encoding.encode()))
    with pytest.raises(DataFormatError) as err:
        read_imglab_xml(path)
    assert str(err.value).startswith(f"{path}:1: unsupported XML encoding")
