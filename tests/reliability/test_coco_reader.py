"""D15: COCO keypoint files are checked for their point count, as .pts files are, and
records of different point counts give an error naming the file and the records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from realdata.errors import DataFormatError
from realdata.landmarks import FaceRecord, FaceSet, read_coco_keypoints


def _coco(tmp_path: Path, counts: list[int], category: dict | None = None,
          **annotation_fields) -> Path:
    """One image, one annotation per entry of ``counts`` (that many points, all labelled,
    ids 10, 11, ...), optionally one category that every annotation belongs to."""
    doc: dict = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": []}
    if category is not None:
        doc["categories"] = [{"id": 1, "name": "face", **category}]
    for i, k in enumerate(counts):
        ann = {"id": 10 + i, "image_id": 1, "keypoints": [5.0, 6.0, 2] * k, **annotation_fields}
        if category is not None:
            ann["category_id"] = 1
        doc["annotations"].append(ann)
    path = tmp_path / "anno.json"
    path.write_text(json.dumps(doc))
    return path


def _error(call) -> DataFormatError:
    with pytest.raises(DataFormatError) as err:
        call()
    assert len(str(err.value).splitlines()) == 1
    return err.value


def test_points_against_the_count_the_caller_expects(tmp_path):  # case #76
    path = _coco(tmp_path, [67])
    err = _error(lambda: read_coco_keypoints(path, n_points=68))
    assert str(err) == f"{path}: annotations[0] (id 10).keypoints has 67 points, expected 68"
    assert read_coco_keypoints(_coco(tmp_path, [68]), n_points=68)[0].points.shape == (68, 2)


def test_points_against_the_count_the_category_declares(tmp_path):
    names = [f"p{i}" for i in range(68)]
    path = _coco(tmp_path, [68, 67], category={"keypoints": names})
    err = _error(lambda: read_coco_keypoints(path))
    assert err.path == path
    assert err.problem == "annotations[1] (id 11).keypoints has 67 points, its category 1 declares 68"
    # a category may declare the count as a number instead of point names
    path = _coco(tmp_path, [5], category={"num_keypoints": 4})
    assert "has 5 points, its category 1 declares 4" in _error(
        lambda: read_coco_keypoints(path)).problem


def test_annotation_num_keypoints_must_match_what_it_holds(tmp_path):
    """Case #76 as the audit built it: a 300-W style file (an empty name list in the
    category, num_keypoints 68 in the annotation) with one point removed."""
    path = _coco(tmp_path, [67], category={"keypoints": []}, num_keypoints=68)
    err = _error(lambda: read_coco_keypoints(path))
    assert err.problem == ("annotations[0] (id 10).num_keypoints says 68 but keypoints hold "
                           "67 points (67 labelled)")
    # COCO's meaning (the labelled points) is accepted as well as the total
    doc = json.loads(path.read_text())
    doc["annotations"][0].update(keypoints=[5.0, 6.0, 2] * 66 + [0, 0, 0], num_keypoints=66)
    path.write_text(json.dumps(doc))
    (record,) = read_coco_keypoints(path)
    assert record.points.shape == (67, 2) and record.visible.sum() == 66


def test_mixed_counts_in_one_file_name_the_annotations(tmp_path):  # case #78
    path = _coco(tmp_path, [68, 68, 67])
    err = _error(lambda: FaceSet.from_records(read_coco_keypoints(path), source=str(path)))
    assert str(err) == (f"{path}: annotations[2] (id 12).keypoints has 67 points, "
                        "annotations[0] (id 10) has 68 (one file, one layout)")


def test_unknown_category_is_an_error(tmp_path):
    path = _coco(tmp_path, [3], category={"keypoints": ["a", "b", "c"]})
    doc = json.loads(path.read_text())
    doc["annotations"][0]["category_id"] = 7
    path.write_text(json.dumps(doc))
    assert _error(lambda: read_coco_keypoints(path)).problem == (
        "annotations[0] (id 10).category_id 7 is not in categories")


def _record(image: str, k: int) -> FaceRecord:
    return FaceRecord(Path(image), np.zeros((k, 2)), np.ones(k, dtype=bool))


def test_from_records_with_different_point_counts_names_the_source_and_records():
    records = [_record("a.jpg", 68), _record("b.jpg", 67), _record("c.jpg", 68)]
    err = _error(lambda: FaceSet.from_records(records, source="faces.json"))
    assert str(err) == ("faces.json: records have different point counts: 2 with 68 "
                        "(first: record 0, a.jpg); 1 with 67 (first: record 1, b.jpg)")
    # without a source, the first record that differs is the file named
    assert _error(lambda: FaceSet.from_records(records)).path == Path("b.jpg")
