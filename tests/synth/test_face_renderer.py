"""Face renderer: landmarks agree with the rendered mesh, visibility, jaw contour sliding,
the crop protocol, determinism, and face batches on disk. Mostly on the built-in head
(runs anywhere); a few checks repeat on ICT-FaceKit when ../shared has it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from realdata.face_crop import DEFAULT_ENLARGE, CropTransform, box_from_landmarks
from synth import face_loading as fl
from synth.face_distribution import default_face_distribution
from synth.face_fallback import fallback_face_model
from synth.face_generator import FaceGenerator
from synth.face_renderer import CROP_SCALE, crop_box, render_faces, render_geometry
from synth.generate_faces import generate_face_batch, planned_face_batch_id, read_face_labels
from synth.shards import BatchReader
from synthloop.errors import DataFormatError

needs_ict = pytest.mark.skipif(not fl.DEFAULT_PATH.is_file(), reason="ICT-FaceKit asset not in ../shared")
SIZE = 128


@pytest.fixture(scope="module")
def head():
    return fallback_face_model()


@pytest.fixture(scope="module")
def ict():
    return fl.load_face_model(fl.DEFAULT_PATH) if fl.DEFAULT_PATH.is_file() else None


def scenes(n: int, seed: int = 0, **fixed) -> dict[str, np.ndarray]:
    """Default scenes with some factors pinned (angles in degrees for readability)."""
    f = default_face_distribution(SIZE).sample(np.random.default_rng(seed), n)
    for k, v in fixed.items():
        v = np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()
        f[k] = np.radians(v) if k in ("head_yaw", "head_pitch", "head_roll") else v
    return f


PLAIN = dict(occluder_kind=0, expression_preset=0, eye_blink=0, head_pitch=0, head_roll=0,
             blur_sigma_px=0, noise_sigma=0, jpeg_quality=100, focal_length_px=1500)


def test_outputs_and_crop_protocol(head):
    f = scenes(6)
    out = render_faces(head, f, size=SIZE, seed=3, landmark_sets=("dense500", "dense1001"))
    assert out["images"].shape == (6, SIZE, SIZE, 3) and out["images"].dtype == np.uint8
    assert out["points68"].shape == (6, 68, 2) and out["visible68"].dtype == bool
    assert out["dense"].shape == (6, 500, 2) and out["dense1001"].shape == (6, 1001, 2)
    assert np.array_equal(out["dense"][:, :68], out["points68"])
    assert np.array_equal(out["dense1001"][:, :500], out["dense500"])
    assert np.array_equal(out["dense_ids"], head.dense_sets["dense500"])
    np.testing.assert_allclose(out["pose"][:, 0], f["head_yaw"], rtol=1e-6)
    # the crop is the protocol's box around the 68 points, in pixel-centre coordinates
    p = out["points68"].astype(np.float64)
    lo, hi = p.min(1), p.max(1)
    np.testing.assert_allclose((hi - lo).max(1), SIZE / DEFAULT_ENLARGE, rtol=1e-4)
    np.testing.assert_allclose((lo + hi) / 2, (SIZE - 1) / 2, atol=1e-3)
    x0, y0, side = crop_box(p)[0]
    assert (x0, y0, side) == pytest.approx((-0.5, -0.5, SIZE), abs=1e-3)
    assert out["images"].std() > 10


def test_crop_is_the_real_face_protocol(head):
    """One protocol for real and synthetic faces: the renderer's enlargement is
    realdata's, and mapping its crop points back to source pixels with realdata's
    CropTransform, then boxing them with realdata's box_from_landmarks, gives back the
    crop box the renderer recorded."""
    assert CROP_SCALE == DEFAULT_ENLARGE == 1.25
    out = render_faces(head, scenes(4, seed=1), size=SIZE, seed=2)
    for pts, (x0, y0, side) in zip(out["points68"], out["crop_box"].astype(np.float64), strict=True):
        tf = CropTransform.from_box((x0, y0, x0 + side, y0 + side), SIZE)
        src = tf.from_crop(pts)
        np.testing.assert_allclose(box_from_landmarks(src), (x0, y0, x0 + side, y0 + side),
                                   atol=1e-3 * side)
        np.testing.assert_allclose(tf.to_crop(src), pts, atol=1e-4)


def test_same_seed_same_bytes(head):
    f = scenes(4, seed=7)
    a = render_faces(head, f, size=SIZE, seed=11)
    b = render_faces(head, f, size=SIZE, seed=11)
    for k in ("images", "points68", "visible68", "dense", "dense_visible"):
        assert np.array_equal(a[k], b[k]), k
    c = render_faces(head, f, size=SIZE, seed=12)
    assert not np.array_equal(a["images"], c["images"])


def _check_landmarks_on_mesh(model, f, index, min_exact=0.95):
    """Visible landmarks lie on their own vertex's pixel: the triangle drawn there uses
    that vertex or one within 1.5 px of it, at the same depth. That holds exactly for
    (almost) all of them; the rest sit within a pixel of an occluding edge or on the
    silhouette, where the visibility rule looks one pixel around, and there some
    neighbouring pixel must see the point's own surface or the background."""
    g = render_geometry(model, f, index, size=SIZE, seed=5)
    out = render_faces(model, f, size=SIZE, seed=5)
    np.testing.assert_allclose(out["points68"][index], g["pix"][g["ids68"]], atol=1e-5)
    exact = edge = 0
    for k in range(17, 60):  # not the contour (slides) nor inner lips (hidden when closed)
        if not out["visible68"][index, k]:
            continue
        vid = g["ids68"][k]
        x, y = np.floor(g["pix"][vid] + 0.5).astype(int)
        t = g["tri_id"][y, x]
        if t >= 0:
            corners = g["triangles"][t]
            near = np.linalg.norm(g["pix"][corners] - g["pix"][vid], axis=1).min()
            own = vid in corners or near < 1.5
            if own and abs(g["zbuf"][y, x] - g["depth"][vid]) < 0.5:
                exact += 1
                continue
        edge += 1
        win_t = g["tri_id"][y - 1:y + 2, x - 1:x + 2]
        win_z = g["zbuf"][y - 1:y + 2, x - 1:x + 2]
        assert ((win_t < 0) | (win_z > g["depth"][vid] - 0.8)).any(), f"landmark {k} is hidden"
    assert exact >= 25 and exact >= min_exact * (exact + edge), (exact, edge)


def test_landmarks_agree_with_the_rendered_mesh(head):
    f = scenes(3, **PLAIN, head_yaw=[0, 25, -40])
    for i, min_exact in enumerate((0.95, 0.85, 0.8)):
        _check_landmarks_on_mesh(head, f, i, min_exact)


def test_visibility_flips_when_the_head_turns_or_an_occluder_covers(head):
    f = scenes(3, **PLAIN, head_yaw=[0, 75, 0])
    f["occluder_kind"][2] = 3  # a mask over mouth and nose
    f["occluder_position"][2] = 0.8
    out = render_faces(head, f, size=SIZE, seed=0)
    v = out["visible68"]
    assert v[0].all()  # frontal, neutral, nothing in front
    assert not v[1, 39] and v[1, 42]  # yaw +75: the right eye's inner corner hides behind the nose
    assert v[1, 9:17].all() and v[1, 42:48].all()  # the near side stays visible
    assert not v[2, 48:68].any() and v[2, 36:48].all()  # the mask hides the mouth, not the eyes
    g = render_geometry(head, f, 1, size=SIZE, seed=0)
    vid = g["ids68"][39]
    x, y = np.floor(g["pix"][vid] + 0.5).astype(int)
    assert g["zbuf"][y, x] < g["depth"][vid] - 1.0  # something is a centimetre in front


@pytest.mark.parametrize("yaw", [45, -45])
def test_jaw_contour_slides_to_the_silhouette(head, yaw):
    f = scenes(1, **PLAIN, head_yaw=yaw)
    g = render_geometry(head, f, 0, size=SIZE, seed=0)
    far = range(2, 7) if yaw > 0 else range(10, 15)
    near = range(9, 17) if yaw > 0 else range(0, 8)
    background = g["zbuf"] > 1e20  # not tri_id: eyelash overlays draw without depth
    for j in far:
        assert g["ids68"][j] != head.landmarks68[j], f"jaw point {j} did not slide"
        x, y = np.floor(g["pix"][g["ids68"][j]] + 0.5).astype(int)
        win = background[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3]
        assert win.any() and not win.all(), f"jaw point {j} is not on the face's outline"
    assert all(g["ids68"][j] == head.landmarks68[j] for j in near)
    out = render_faces(head, f, size=SIZE, seed=0)
    assert out["visible68"][0, list(far)].all()  # on the silhouette = visible


def test_generator_chunks_and_labeled_batch(head):
    dist = default_face_distribution(64)
    gen = FaceGenerator(dist, model=head, chunk=3)
    images, sc, labels = gen.render_all(5, seed=2)
    assert images.shape == (5, 64, 64, 3) and labels["points68"].shape == (5, 68, 2)
    again, _, labels2 = FaceGenerator(dist, model=head, chunk=3).render_all(5, seed=2)
    assert np.array_equal(images, again) and np.array_equal(labels["visible68"], labels2["visible68"])
    batch = gen.labeled_batch(4, seed=1)
    assert tuple(batch["image"].shape) == (4, 3, 64, 64) and tuple(batch["dense"].shape) == (4, 500, 2)
    assert gen.settings["model_source"] == "builtin-fallback"


def test_face_batch_on_disk(head, tmp_path):
    dist = default_face_distribution(64)
    kw = dict(n=7, seed=4, dist=dist, model=head, chunk=4, shard_size=5)
    bid, path = generate_face_batch(tmp_path / "a", **kw)
    bid2, path2 = generate_face_batch(tmp_path / "b", **kw)
    assert bid == bid2
    r = BatchReader(path)
    assert r.task == "landmarks" and r.n == 7 and r.image_shape == (64, 64, 3)
    # the id is known before rendering, and it covers the crop protocol
    assert bid == planned_face_batch_id(n=7, seed=4, dist=dist, model=head, chunk=4)
    assert r.manifest["generator"]["crop_enlarge"] == DEFAULT_ENLARGE
    meta = r.metadata
    assert {"yaw", "pitch", "roll", "head_yaw", "crop_side_px", "n_visible68"} <= set(meta.columns)
    lab = read_face_labels(path)
    assert lab["points68"].shape == (7, 68, 2) and lab["dense500_visible"].shape == (7, 500)
    assert np.array_equal(lab["dense500_vertex_ids"], head.dense_sets["dense500"])
    assert np.array_equal(lab["dense500_mirror"], head.dense_mirror["dense500"])  # flips need it
    assert np.array_equal(meta["n_visible68"], lab["visible68"].sum(1))
    lab2 = read_face_labels(path2)
    assert all(np.array_equal(lab[k], lab2[k]) for k in lab)
    assert np.array_equal(r.images(), BatchReader(path2).images())
    # the manifest checksums the landmark files like the shards
    assert set(r.extra_files) == {"landmarks/landmarks.json"} | {
        f"landmarks/{k}.npy" for k in lab}
    (path / "landmarks" / "points68.npy").write_bytes(b"corrupt")
    with pytest.raises(Exception, match="points68.npy"):
        read_face_labels(path)
    with pytest.raises(DataFormatError, match="points68.npy"):
        BatchReader(path)


# --------------------------------------------------------------------------- ICT-FaceKit


@needs_ict
def test_ict_landmarks_contour_and_visibility(ict):
    f = scenes(3, **PLAIN, head_yaw=[0, 45, -60])
    _check_landmarks_on_mesh(ict, f, 0, 0.95)
    _check_landmarks_on_mesh(ict, f, 1, 0.8)
    out = render_faces(ict, f, size=SIZE, seed=0)
    assert out["visible68"][0].mean() > 0.95
    g = render_geometry(ict, f, 2, size=SIZE, seed=0)  # yaw -60: the left (+x) side turns away
    background = g["zbuf"] > 1e20
    on_outline = 0
    for j in range(9, 17):
        assert g["ids68"][j] != ict.landmarks68[j]
        x, y = np.floor(g["pix"][g["ids68"][j]] + 0.5).astype(int)
        if background[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3].any():
            on_outline += 1
        else:  # the cheek's outline passes behind the nose or lips there
            assert not out["visible68"][2, j], j
    assert on_outline >= 4
    assert not out["visible68"][2, 42]  # the far eye's inner corner hides behind the nose
    assert out["images"][:, 40:90, 40:90].std() > 10


@needs_ict
def test_ict_rendering_is_deterministic_given_the_seed(ict):
    """Same scenes and seed: the same bytes (images, points, visibility); another seed
    renders other faces. (Speed is measured by benchmarks/bench_face_generation.py.)"""
    f = scenes(8, seed=3)
    a = render_faces(ict, f, size=SIZE, seed=1)
    b = render_faces(ict, f, size=SIZE, seed=1)
    for k in ("images", "dense", "points68", "visible68", "crop_box"):
        assert np.array_equal(a[k], b[k]), k
    assert math.isfinite(float(a["points68"].sum()))
    c = render_faces(ict, f, size=SIZE, seed=2)
    assert not np.array_equal(a["images"], c["images"])
