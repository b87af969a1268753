"""The default scene distribution for eye patches (version 2 of the gaze task).

Ranges follow what MPIIGaze-style normalised eye patches show: gaze within about
+-40 deg pitch and +-45 deg yaw, head pose within +-30 deg, a camera with a focal length
near 960 px, and histogram-equalised patches. The camera distance (420-640 mm) sets
the eye's size in the patch; version 2 draws eyes about 13 % larger than version 1's
480-720 mm, since the Columbia patches' mean image showed a larger eye and an
exploratory run with the camera closer cut the source-only error on them from 15.5 to
14.2 deg (one seed). Measured by where the lid and iris edges sit (mean vertical
gradient per column), Columbia lies between the two versions and MPIIGaze's patches are
a little tighter than both: real framings differ by about this much, and no image
statistic identifies it yet.

Version 2 adds what real patches show and version 1 could not render: glasses (a lens
with a dark rim and glare), a lid fold hanging down to the lashes, and a dark line
under the lower lid.

Shaped factors get a soft Gaussian prior with mass left in every bin, so that the
feedback loop can raise any region later without leaving the support.
"""

from __future__ import annotations

import math

from synth.distribution import (
    Factor,
    ImageSpec,
    SceneDistribution,
)
from synth.factor_limits import (
    BLUR_SIGMA_PX,
    CONTRAST,
    FORWARD_ANGLE,
    FRACTION,
    GAMMA,
    INTENSITY,
    JPEG_QUALITY,
    NOISE_SIGMA,
    PLANE_ANGLE,
    POLAR_ANGLE,
    SWITCH,
    Limits,
    TaskFactors,
)

D = math.radians

#: Factor names the eye renderer reads (checked when a distribution is rendered).
EYE_FACTORS = (
    "gaze_pitch", "gaze_yaw", "head_pitch", "head_yaw", "head_roll",
    "eye_openness", "blink", "eye_width_mm", "lid_tilt_mm", "crease_mm", "lash_mm",
    "lower_lash_mm", "lid_fold",
    "iris_radius_mm", "iris_albedo", "iris_hue", "iris_texture", "pupil_radius_mm",
    "sclera_albedo", "sclera_tint", "skin_tone", "skin_texture",
    "glasses", "lens_width_mm", "lens_height_mm", "lens_offset_mm", "glasses_frame_mm", "lens_glare",
    "light_polar", "light_azimuth", "light_intensity", "ambient", "glint_strength",
    "camera_distance_mm", "focal_length_px", "offset_x_px", "offset_y_px",
    "blur_sigma_px", "noise_sigma", "gamma", "contrast", "jpeg_quality", "histeq",
)

#: Factors added in version 2 (glasses, lid fold, lower lash line), with the value that
#: renders an eye as version 1 did: a distribution saved before them still samples
#: (they are held at these values) instead of failing on a missing factor.
ABSENT_MEANS_OFF = {
    "lower_lash_mm": 0.0, "lid_fold": 0.0, "glasses": 0.0, "lens_width_mm": 22.0,
    "lens_height_mm": 15.0, "lens_offset_mm": 0.0, "glasses_frame_mm": 1.0, "lens_glare": 0.0,
}

#: The task eye-patch distributions serve (the manifest and distribution ``task`` field).
TASK = "gaze"

#: What each eye factor can physically be. A distribution whose support leaves these is
#: refused before rendering (the gaze labels of a +-400 deg support would be meaningless);
#: they are wide enough for any edit a person means, and every version the feedback loop
#: derives keeps the default's support (it only re-weights bins).
EYE_LIMITS: dict[str, Limits] = {
    "gaze_pitch": FORWARD_ANGLE, "gaze_yaw": FORWARD_ANGLE,
    "head_pitch": FORWARD_ANGLE, "head_yaw": FORWARD_ANGLE, "head_roll": PLANE_ANGLE,
    "eye_openness": Limits(0.0, 3.0, why="a scale of the aperture"),
    "blink": SWITCH,
    "eye_width_mm": Limits(10.0, 50.0, why="a human eye, corner to corner"),
    "lid_tilt_mm": Limits(-10.0, 10.0, why="within the eye's height"),
    "crease_mm": Limits(0.0, 15.0, why="between the lid and the brow"),
    "lash_mm": Limits(0.0, 5.0, why="a lash band"),
    "lower_lash_mm": Limits(0.0, 5.0, why="a lash line"),
    "lid_fold": FRACTION,
    "iris_radius_mm": Limits(3.0, 7.8, why="the iris sits under the 7.8 mm cornea"),
    "iris_albedo": FRACTION, "iris_hue": FRACTION, "iris_texture": FRACTION,
    "pupil_radius_mm": Limits(0.3, 5.0, why="a human pupil"),
    "sclera_albedo": FRACTION, "sclera_tint": FRACTION,
    "skin_tone": FRACTION, "skin_texture": FRACTION,
    "glasses": SWITCH,
    "lens_width_mm": Limits(5.0, 40.0, why="a spectacle lens"),
    "lens_height_mm": Limits(5.0, 40.0, why="a spectacle lens"),
    "lens_offset_mm": Limits(-20.0, 20.0, why="a lens in front of the eye"),
    "glasses_frame_mm": Limits(0.0, 5.0, why="a spectacle rim"),
    "lens_glare": FRACTION,
    "light_polar": POLAR_ANGLE, "light_azimuth": PLANE_ANGLE,
    "light_intensity": INTENSITY, "ambient": INTENSITY, "glint_strength": INTENSITY,
    "camera_distance_mm": Limits(50.0, 5000.0, why="a camera outside the head that still "
                                 "sees the eye"),
    "focal_length_px": Limits(50.0, 20000.0, why="a camera lens"),
    "offset_x_px": Limits(-100.0, 100.0, why="a jitter that keeps the eye in the patch"),
    "offset_y_px": Limits(-100.0, 100.0, why="a jitter that keeps the eye in the patch"),
    "blur_sigma_px": BLUR_SIGMA_PX, "noise_sigma": NOISE_SIGMA, "gamma": GAMMA,
    "contrast": CONTRAST, "jpeg_quality": JPEG_QUALITY,
    "histeq": SWITCH,
}

#: What the eye renderer reads; ``EYE_TASK.check(dist)`` refuses, before anything is
#: rendered, a distribution for another task, with an unknown or a missing factor, a
#: support outside ``EYE_LIMITS``, naming the file it was read from.
#: The renderer holds ~25 MB per 256 x 256 eye while it renders (measured: 16 eyes at
#: 512 x 512 took 2 GB), so a 128-eye CPU chunk of the largest allowed eyes needs ~3 GB.
EYE_MAX_SIDE = 256
EYE_TASK = TaskFactors(TASK, EYE_FACTORS, EYE_LIMITS, optional=frozenset(ABSENT_MEANS_OFF),
                       max_side=EYE_MAX_SIDE)


def default_eye_distribution(
    height: int = 36, width: int = 60, channels: int = 1
) -> SceneDistribution:
    f = Factor
    factors = (
        # labels: the gaze direction in the normalised camera frame (DESIGN.md convention)
        f.shaped("gaze_pitch", D(-40), D(40), 16, 0.0, D(18), unit="rad",
                 doc="gaze pitch, camera frame; > 0 looks up"),
        f.shaped("gaze_yaw", D(-45), D(45), 16, 0.0, D(22), unit="rad",
                 doc="gaze yaw, camera frame; > 0 moves the iris to the image's left"),
        # head pose relative to the (normalised) camera: moves lids and skin, not the label
        f.shaped("head_pitch", D(-30), D(30), 8, 0.0, D(12), unit="rad"),
        f.shaped("head_yaw", D(-30), D(30), 8, 0.0, D(15), unit="rad"),
        f.uniform("head_roll", D(-8), D(8), 4, unit="rad",
                  doc="small: MPIIGaze normalisation removes most roll"),
        # eyelids
        f.uniform("eye_openness", 0.55, 1.25, 6, doc="scales the aperture above the iris"),
        f.categorical("blink", {0.0: 0.96, 1.0: 0.04}, doc="1 = lids (nearly) closed"),
        f.uniform("eye_width_mm", 24.0, 30.0, 4, unit="mm", doc="corner to corner"),
        f.uniform("lid_tilt_mm", -1.5, 2.0, 4, unit="mm",
                  doc="outer corner above (<0) or below the inner one"),
        f.uniform("crease_mm", 2.5, 6.0, 4, unit="mm", doc="lid crease above the lid margin"),
        f.uniform("lash_mm", 0.3, 2.0, 4, unit="mm", doc="upper lash band thickness"),
        f.uniform("lower_lash_mm", 0.0, 0.8, 4, unit="mm", doc="dark line under the lower lid"),
        f.uniform("lid_fold", 0.0, 1.0, 4,
                  doc="0 = crease above a visible lid band, 1 = a skin fold down to the lashes"),
        # iris, pupil, sclera
        f.uniform("iris_radius_mm", 5.6, 6.4, 4, unit="mm"),
        f.uniform("iris_albedo", 0.06, 0.55, 6, doc="dark brown ... light blue"),
        f.uniform("iris_hue", 0.0, 1.0, 4, doc="0 brown, 0.5 green/hazel, 1 blue (RGB only)"),
        f.uniform("iris_texture", 0.0, 1.0, 4, doc="contrast of radial fibres"),
        f.uniform("pupil_radius_mm", 1.2, 3.4, 4, unit="mm"),
        f.uniform("sclera_albedo", 0.55, 0.95, 4),
        f.uniform("sclera_tint", 0.0, 1.0, 4, doc="0 white, 1 reddish/yellowish"),
        # skin
        f.uniform("skin_tone", 0.12, 0.85, 8, doc="albedo, dark to light"),
        f.uniform("skin_texture", 0.0, 0.6, 4, doc="amplitude of pores / blotches"),
        # spectacles (real eye patches show frames and lens glare; the rest only when on)
        f.categorical("glasses", {0.0: 0.85, 1.0: 0.15}, doc="1 = wearing glasses"),
        f.uniform("lens_width_mm", 16.0, 28.0, 4, unit="mm", doc="lens half-width"),
        f.uniform("lens_height_mm", 9.0, 17.0, 4, unit="mm", doc="lens half-height"),
        f.uniform("lens_offset_mm", 0.0, 6.0, 4, unit="mm", doc="lens centre below the eye's"),
        f.uniform("glasses_frame_mm", 0.3, 1.6, 4, unit="mm", doc="rim thickness"),
        f.uniform("lens_glare", 0.0, 1.0, 4, doc="brightness of reflections on the lens"),
        # illumination (directional light + ambient), corneal glint
        f.shaped("light_polar", 0.0, D(80), 8, D(25), D(30), unit="rad",
                 doc="angle between light and camera axis"),
        f.uniform("light_azimuth", -math.pi, math.pi, 8, unit="rad"),
        f.uniform("light_intensity", 0.45, 1.35, 6),
        f.uniform("ambient", 0.08, 0.55, 6),
        f.uniform("glint_strength", 0.0, 1.0, 4),
        # camera: distance and focal length set the scale (px per mm = f / d)
        f.uniform("camera_distance_mm", 420.0, 640.0, 6, unit="mm"),
        f.uniform("focal_length_px", 880.0, 1100.0, 4, unit="px"),
        f.uniform("offset_x_px", -3.0, 3.0, 4, unit="px", doc="normalisation jitter"),
        f.uniform("offset_y_px", -2.0, 2.0, 4, unit="px"),
        # camera pipeline
        f.shaped("blur_sigma_px", 0.0, 1.6, 8, 0.7, 0.5, unit="px"),
        f.shaped("noise_sigma", 0.0, 0.05, 8, 0.008, 0.012, doc="fraction of full scale"),
        f.uniform("gamma", 0.7, 1.4, 4),
        f.uniform("contrast", 0.7, 1.3, 4),
        f.uniform("jpeg_quality", 50.0, 98.0, 6),
        f.categorical("histeq", {0.0: 0.3, 1.0: 0.7},
                      doc="1 = histogram equalised, as MPIIGaze patches are"),
    )
    assert tuple(x.name for x in factors) == EYE_FACTORS
    return SceneDistribution(
        name="eyes-default-v2",
        task=TASK,
        factors=factors,
        image=ImageSpec(height=height, width=width, channels=channels),
    )
