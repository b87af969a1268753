"""The renderer's labels agree with its geometry, and the camera pipeline does what it says."""

import math

import numpy as np
import pytest
import torch

from realdata.gaze import gaze_vector_to_pitchyaw, pitchyaw_to_gaze_vector
from synth.camera import camera_operators, equalise_histogram, gaussian_blur, jpeg_quantise
from synth.distribution import ImageSpec
from synth.eye_distribution import EYE_FACTORS
from synth.eye_renderer import gaze_vector, head_rotation, render_eyes

CLEAN = {  # a well-lit, open eye with the camera pipeline switched (nearly) off
    "head_pitch": 0.0, "head_yaw": 0.0, "head_roll": 0.0, "eye_openness": 1.25, "blink": 0.0,
    "eye_width_mm": 28.0, "lid_tilt_mm": 0.0, "crease_mm": 4.0, "lash_mm": 0.6,
    "iris_radius_mm": 6.0, "iris_albedo": 0.35, "iris_hue": 0.0, "iris_texture": 0.0,
    "pupil_radius_mm": 2.5, "sclera_albedo": 0.9, "sclera_tint": 0.0, "skin_tone": 0.7,
    "skin_texture": 0.0, "light_polar": 0.0, "light_azimuth": 0.0, "light_intensity": 0.9,
    "ambient": 0.3, "glint_strength": 0.0, "camera_distance_mm": 600.0, "focal_length_px": 960.0,
    "offset_x_px": 0.0, "offset_y_px": 0.0, "blur_sigma_px": 0.0, "noise_sigma": 0.0,
    "gamma": 1.0, "contrast": 1.0, "jpeg_quality": 100.0, "histeq": 0.0,
    "lower_lash_mm": 0.0, "lid_fold": 0.0, "glasses": 0.0, "lens_width_mm": 22.0,
    "lens_height_mm": 15.0, "lens_offset_mm": 0.0, "glasses_frame_mm": 1.0, "lens_glare": 0.0,
}


def render(pitchyaw, spec=None, centre="eyeball", **over):
    spec = spec or ImageSpec()
    n = len(pitchyaw)
    f = {k: torch.full((n,), float(over.get(k, v))) for k, v in CLEAN.items()}
    f["gaze_pitch"] = torch.tensor([p for p, _ in pitchyaw], dtype=torch.float32)
    f["gaze_yaw"] = torch.tensor([y for _, y in pitchyaw], dtype=torch.float32)
    assert set(f) == set(EYE_FACTORS)
    images, geo = render_eyes(f, spec, torch.Generator().manual_seed(0), centre=centre)
    return images.numpy(), {k: v.numpy() for k, v in geo.items()}


def pupil_centroid(img: np.ndarray) -> tuple[float, float]:
    """Centre of the darkest pixels: the pupil (albedo 0.02) is the darkest thing in CLEAN."""
    mask = img <= np.percentile(img, 2)
    ys, xs = np.nonzero(mask)
    return xs.mean() + 0.5, ys.mean() + 0.5


def test_gaze_vector_follows_the_design_convention():
    p, y = torch.tensor([0.3, -0.2, 0.0]), torch.tensor([0.4, 0.1, 0.0])
    g = torch.stack(gaze_vector(p, y), -1).numpy()
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1, atol=1e-6)
    # pitch = asin(-g_y), yaw = atan2(-g_x, -g_z); the reader-side helper agrees
    np.testing.assert_allclose(np.arcsin(-g[:, 1]), p.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.arctan2(-g[:, 0], -g[:, 2]), y.numpy(), atol=1e-6)
    np.testing.assert_allclose(gaze_vector_to_pitchyaw(g), np.stack([p, y], 1), atol=1e-6)
    np.testing.assert_allclose(pitchyaw_to_gaze_vector(np.stack([p, y], 1)), g, atol=1e-6)


def test_head_rotation_forward_axis_has_the_head_pose_angles():
    p, y, r = torch.tensor([0.2]), torch.tensor([-0.4]), torch.tensor([0.1])
    R = head_rotation(p, y, r)[0].numpy()
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)
    fwd = R @ np.array([0.0, 0.0, -1.0])
    np.testing.assert_allclose(gaze_vector_to_pitchyaw(fwd[None])[0], [0.2, -0.4], atol=1e-6)


def test_iris_moves_left_for_positive_yaw_and_up_for_positive_pitch():
    imgs, geo = render([(0.0, -0.3), (0.0, 0.0), (0.0, 0.3), (0.25, 0.0), (-0.15, 0.0)])
    cx = [pupil_centroid(im)[0] for im in imgs]
    cy = [pupil_centroid(im)[1] for im in imgs]
    assert cx[0] > cx[1] + 3 > cx[2] + 6  # yaw > 0 -> image left
    assert cy[3] < cy[1] - 2 and cy[4] > cy[1] + 1  # pitch > 0 -> up (y is down)
    # the straight-ahead eye is centred in the patch
    assert abs(cx[1] - 30) < 1.0 and abs(cy[1] - 18) < 1.5


def test_projected_pupil_metadata_matches_the_rendered_pupil():
    angles = [(p, y) for p in (-0.15, 0.0, 0.2) for y in (-0.35, 0.0, 0.35)]
    imgs, geo = render(angles)
    for i, im in enumerate(imgs):
        cx, cy = pupil_centroid(im)
        # the cornea magnifies and shifts the pupil a little; within 1.5 px of the projection
        assert abs(cx - geo["pupil_x_px"][i]) < 1.5, (angles[i], cx, geo["pupil_x_px"][i])
        assert abs(cy - geo["pupil_y_px"][i]) < 1.5, (angles[i], cy, geo["pupil_y_px"][i])


def test_pupil_size_and_blink_change_the_image_where_expected():
    open_, _ = render([(0.0, 0.0)])
    closed, _ = render([(0.0, 0.0)], blink=1.0)
    small, _ = render([(0.0, 0.0)], pupil_radius_mm=1.2)
    dark = lambda im: (im < 20).sum()  # noqa: E731
    assert dark(small[0]) < dark(open_[0])
    assert dark(closed[0]) < dark(open_[0]) * 0.3  # the lid hides the pupil


def test_head_pose_moves_the_lids_but_not_the_label_geometry():
    a, ga = render([(0.0, 0.0)])
    b, gb = render([(0.0, 0.0)], head_yaw=0.3)
    assert np.abs(a[0].astype(int) - b[0].astype(int)).mean() > 2
    assert ga["pupil_x_px"][0] == pytest.approx(gb["pupil_x_px"][0])


def test_rgb_and_larger_patches():
    imgs, _ = render([(0.1, 0.2)], spec=ImageSpec(72, 120, 3))
    assert imgs.shape == (1, 72, 120, 3) and imgs.dtype == np.uint8
    assert imgs.std() > 10


def test_histogram_equalisation_matches_the_opencv_formula():
    rng = np.random.default_rng(0)
    x = rng.integers(40, 120, size=(2, 1, 8, 10)).astype(np.uint8)
    out = equalise_histogram(torch.from_numpy(x)).numpy()
    for b in range(2):
        v = x[b, 0].ravel()
        hist = np.bincount(v, minlength=256)
        cdf = hist.cumsum()
        cmin = cdf[hist > 0][0]
        lut = np.round((cdf - cmin) * 255.0 / (v.size - cmin)).clip(0, 255)
        np.testing.assert_array_equal(out[b, 0].ravel(), lut[v])
    assert out.min() == 0 and out.max() == 255
    const = np.full((1, 1, 4, 4), 77, np.uint8)  # a constant image stays as it is
    np.testing.assert_array_equal(equalise_histogram(torch.from_numpy(const)).numpy(), const)


def test_jpeg_loss_grows_as_quality_drops_and_vanishes_at_100():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(128, 40, (3, 1, 36, 60)).clip(0, 255).round().astype(np.float32))
    ops = camera_operators(36, 60, "cpu")
    err = [float((jpeg_quantise(x, torch.full((3,), q), ops) - x).abs().mean()) for q in (100, 80, 30)]
    assert err[0] < 0.6 < err[1] < err[2]


def test_blur_preserves_mean_and_a_tiny_sigma_is_identity():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.random((2, 1, 36, 60)).astype(np.float32))
    ops = camera_operators(36, 60, "cpu")
    same = gaussian_blur(x, torch.tensor([1e-3, 1e-3]), ops)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    blurred = gaussian_blur(x, torch.tensor([1.5, 1.5]), ops)
    assert float(blurred.std()) < 0.6 * float(x.std())
    assert abs(float(blurred.mean()) - float(x.mean())) < 0.01


def test_render_is_deterministic_and_seed_sensitive():
    from synth.eye_distribution import default_eye_distribution
    from synth.eye_generator import EyeGenerator

    g = EyeGenerator(default_eye_distribution())
    a = np.concatenate([c.images for c in g.iter_chunks(300, seed=5)])
    b = np.concatenate([c.images for c in g.iter_chunks(300, seed=5)])
    c = np.concatenate([c.images for c in g.iter_chunks(300, seed=6)])
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    assert not math.isclose(a.mean(), c.mean(), rel_tol=1e-6)


def test_centring_on_the_corners_moves_a_turned_eye_by_its_depth_in_front_of_the_eyeball():
    """Gaze into the camera, head turned 30 deg: centred on the eyeball the pupil is at the
    patch centre; centred on the eye corners (as normalised real eyes are) the whole eye
    moves by the corners' sideways offset, fl * front * sin(yaw) / (d - front * cos(yaw))
    with front = the skin's depth in front of the eyeball at the corners."""
    yaw = math.radians(30)
    eyeball_img, eyeball = render([(0.0, 0.0)], head_yaw=yaw)
    corner_img, corner = render([(0.0, 0.0)], head_yaw=yaw, centre="corners")
    half_w, skin_r, skin_front = 14.0, 40.0, 12.6  # CLEAN's eye width; the renderer's skin
    front = skin_front - (skin_r - math.sqrt(skin_r ** 2 - half_w ** 2))
    shift = 960.0 * front * math.sin(yaw) / (600.0 - front * math.cos(yaw))
    assert shift > 5  # pixels: a visible displacement of the iris
    assert corner["pupil_x_px"][0] - eyeball["pupil_x_px"][0] == pytest.approx(shift, abs=1e-3)
    assert corner["pupil_y_px"][0] == pytest.approx(eyeball["pupil_y_px"][0], abs=1e-4)
    cx = pupil_centroid(corner_img[0])[0] - pupil_centroid(eyeball_img[0])[0]
    assert cx == pytest.approx(shift, abs=1.0)  # the pixels moved with the geometry
    # a head facing the camera has its corners in front of the eyeball: nothing moves
    straight, _ = render([(0.2, -0.1)])
    straight_c, _ = render([(0.2, -0.1)], centre="corners")
    np.testing.assert_array_equal(straight, straight_c)
    with pytest.raises(ValueError, match="centre must be one of"):
        render([(0.0, 0.0)], centre="nose")


def test_centring_on_outline_landmarks_follows_the_lids_up_and_down():
    """Centred on the mean of six outline points (corners, two points on each lid at a
    third of the width), as crops from 68-point landmarks are, the patch moves with the
    lids: looking up raises them, so the pupil rises less in the patch than centred on
    the corners, by fl * (mean lid offset) / (d - front); sideways nothing changes."""
    half_w, skin_r, skin_front = 14.0, 40.0, 12.6
    front = skin_front - (skin_r - math.sqrt(skin_r ** 2 - half_w ** 2))
    moved = {}
    for centre in ("corners", "outline"):
        _, geo = render([(-0.2, 0.0), (0.2, 0.0), (0.0, -0.25), (0.0, 0.25)], centre=centre)
        moved[centre] = geo
    for k, pitch in enumerate((-0.2, 0.2)):
        s = math.sin(pitch)  # eye pitch in the head (head straight)
        a_lo = max(2.2, 4.0 - 0.35 * 12.0 * s)
        a_up = 0.6 * 12.0 * s + 3.6 * CLEAN["eye_openness"]
        down = (a_lo * (8 / 9) ** 0.9 - a_up * (8 / 9) ** 0.7) / 3.0  # mm below the corners
        assert moved["outline"]["pupil_y_px"][k] - moved["corners"]["pupil_y_px"][k] == \
            pytest.approx(-960.0 * down / (600.0 - front), abs=1e-3)
    rise = {c: g["pupil_y_px"][0] - g["pupil_y_px"][1] for c, g in moved.items()}
    assert 0.3 * rise["corners"] < rise["outline"] < 0.9 * rise["corners"]
    np.testing.assert_allclose(moved["outline"]["pupil_x_px"][2:], moved["corners"]["pupil_x_px"][2:],
                               atol=1e-4)


def test_skin_beside_the_eye_has_no_seam_at_the_lid_line():
    """Beyond the eye corners the skin is one smooth surface: no step where the lower
    lid's line would continue (the under-lid shadow once drew one across the patch)."""
    # off the pixel grid: a one-pixel line centred between two rows would hide
    img = render([(0.0, 0.0)], skin_tone=0.7, lower_lash_mm=0.8, lash_mm=1.2,
                 offset_y_px=0.3)[0][0].astype(float)
    for col in (1, 2, img.shape[1] - 3, img.shape[1] - 2):  # corners sit near x = 8 and 52
        steps = np.abs(np.diff(img[:, col]))
        assert steps.max() <= 3, (col, steps.max())


def test_glasses_draw_a_dark_rim_only_when_worn():
    # a wide lens 8 mm high: its lower rim crosses the patch ~13 px below the eye centre
    rim = dict(lens_width_mm=40.0, lens_height_mm=8.0, lens_offset_mm=0.0, glasses_frame_mm=1.2)
    off = render([(0.0, 0.0)], glasses=0.0, **rim)[0][0].astype(float)
    on = render([(0.0, 0.0)], glasses=1.0, **rim)[0][0].astype(float)
    row = 18 + round(8.0 * 960 / 600)  # centre row + 8 mm at 1.6 px/mm
    band = slice(row - 1, row + 2)
    assert on[band, 20:40].mean() < 0.5 * off[band, 20:40].mean()
    # away from the rim and the lens edge the eye is the same
    np.testing.assert_allclose(on[12:24, 20:40], off[12:24, 20:40], atol=0.13 * 255)
    # glasses off: the lens factors change nothing
    other = render([(0.0, 0.0)], glasses=0.0, lens_width_mm=17.0, lens_height_mm=19.0,
                   lens_offset_mm=5.0, glasses_frame_mm=0.4, lens_glare=1.0)[0][0]
    np.testing.assert_array_equal(other, off.astype(np.uint8))


def test_lid_fold_moves_the_crease_shadow_down_to_the_lashes():
    """With a fold the dark line above the eye sits lower (at the lash line), not a crease
    higher up the lid."""
    flat = render([(0.0, 0.0)], lid_fold=0.0, lash_mm=0.3, eye_openness=0.8)[0][0].astype(float)
    fold = render([(0.0, 0.0)], lid_fold=1.0, lash_mm=0.3, eye_openness=0.8)[0][0].astype(float)
    col_flat, col_fold = flat[:, 28:33].mean(1), fold[:, 28:33].mean(1)
    # the crease: darkest skin row well above the lid (rows 0..8); with the fold the
    # shadow moves lower, so the upper rows brighten and the rows just above the lid darken
    assert col_fold[:5].mean() > col_flat[:5].mean()
    top_flat, top_fold = int(np.argmin(col_flat[:12])), int(np.argmin(col_fold[:12]))
    assert top_fold > top_flat


def test_lower_lash_line_darkens_just_below_the_lower_lid():
    plain = render([(0.0, 0.0)], lower_lash_mm=0.0)[0][0].astype(float)
    lined = render([(0.0, 0.0)], lower_lash_mm=0.8)[0][0].astype(float)
    diff = (plain - lined)[:, 25:35].mean(1)  # > 0 where the line darkens
    assert diff.max() > 20
    assert 18 < int(np.argmax(diff)) < 30  # below the centre row, at the lower lid
    assert np.abs(diff[:14]).max() < 2  # nothing changes above the eye
