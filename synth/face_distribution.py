"""The default scene distribution for synthetic faces (version 1 of the landmark task),
and how its few interpretable factors become the model's many shape weights.

Identity: ICT-FaceKit has 100 PCA identity modes with weights ~ N(0, 1). The three
largest modes are factors of their own (``identity_pc1..3``, binned, so the loop can
re-weight e.g. face width); the other modes are drawn N(0, identity_scale^2) inside the
renderer from the batch's seeded stream (not re-weightable one by one, by design: 97
more factors would make every slice too thin to measure).

Expression: the 53 ARKit blendshape weights are derived from a categorical
``expression_preset`` (neutral, smile, open mouth, talking, anger, sadness, pucker,
laughing, scream, random mix) scaled by ``expression_intensity``, plus sparse random
``expression_jitter`` on all shapes, left/right ``expression_asymmetry``, ``eye_blink``
and the eyes' gaze (eyeLook* shapes; the eyeballs also rotate).

Pose angles follow DESIGN.md's gaze convention applied to the face's forward vector:
yaw > 0 turns the face toward the image's left, pitch > 0 turns it up; roll > 0 turns
the face clockwise in the image. Every angle is in radians.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

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
    Limits,
    TaskFactors,
)

D = math.radians

#: Factor names the face renderer reads (checked when a distribution is rendered).
FACE_FACTORS = (
    "identity_pc1", "identity_pc2", "identity_pc3", "identity_scale",
    "expression_preset", "expression_intensity", "expression_jitter", "expression_asymmetry",
    "eye_blink", "eye_gaze_yaw", "eye_gaze_pitch",
    "head_yaw", "head_pitch", "head_roll",
    "camera_distance_cm", "focal_length_px",
    "light_polar", "light_azimuth", "light_intensity", "fill_intensity", "ambient",
    "light_warmth", "specular",
    "skin_tone", "skin_hue", "skin_texture", "lip_tint", "brow_darkness", "iris_colour",
    "hair_tone", "hair_line",
    "background_kind", "background_brightness",
    "occluder_kind", "occluder_position", "occluder_shade",
    "blur_sigma_px", "noise_sigma", "gamma", "contrast", "jpeg_quality",
)

PRESET_NAMES = ("neutral", "smile", "open", "talk", "anger", "sad", "pucker", "laugh",
                "scream", "random")
BACKGROUND_NAMES = ("flat", "gradient", "smooth-noise", "clutter")
OCCLUDER_NAMES = ("none", "glasses", "hand", "mask", "hair")

#: Blendshape weights per expression preset (at intensity 1); "_LR" means both sides.
PRESETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {"mouthSmile_LR": 0.9, "cheekSquint_LR": 0.4, "eyeSquint_LR": 0.15,
              "mouthUpperUp_LR": 0.1},
    "open": {"jawOpen": 0.6, "browInnerUp_LR": 0.7, "browOuterUp_LR": 0.6, "eyeWide_LR": 0.5,
             "mouthFunnel": 0.15},
    "talk": {"jawOpen": 0.3, "mouthLowerDown_LR": 0.3, "mouthUpperUp_LR": 0.15,
             "mouthStretch_LR": 0.15},
    "anger": {"browDown_LR": 0.9, "noseSneer_LR": 0.4, "eyeSquint_LR": 0.4,
              "mouthPress_LR": 0.4, "mouthFrown_LR": 0.4},
    "sad": {"browInnerUp_LR": 0.8, "mouthFrown_LR": 0.7, "mouthShrugLower": 0.4,
            "eyeSquint_LR": 0.1},
    "pucker": {"mouthPucker": 0.9, "mouthFunnel": 0.3},
    "laugh": {"jawOpen": 0.4, "mouthSmile_LR": 1.0, "cheekSquint_LR": 0.7, "eyeSquint_LR": 0.5,
              "mouthUpperUp_LR": 0.3},
    "scream": {"jawOpen": 0.95, "mouthStretch_LR": 0.5, "browInnerUp_LR": 0.6, "eyeWide_LR": 0.6,
               "mouthLowerDown_LR": 0.5},
    "random": {},
}

#: The task face distributions serve (the manifest and distribution ``task`` field).
TASK = "landmarks"

_IDENTITY_MODE = Limits(-5.0, 5.0, why="a weight of an N(0, 1) identity mode: beyond 5 sd no face")


def _index(names: Sequence[str]) -> Limits:
    return Limits(0.0, float(len(names) - 1), integral=True,
                  why=f"an index into {', '.join(names)}")


#: What each face factor can physically be; a distribution whose support leaves these is
#: refused before rendering (see synth.eye_distribution.EYE_LIMITS). The kinds are indices:
#: a preset 12 would silently render a neutral face.
FACE_LIMITS: dict[str, Limits] = {
    "identity_pc1": _IDENTITY_MODE, "identity_pc2": _IDENTITY_MODE, "identity_pc3": _IDENTITY_MODE,
    "identity_scale": Limits(0.0, 3.0, why="the sd of N(0, 1) identity modes"),
    "expression_preset": _index(PRESET_NAMES),
    "expression_intensity": Limits(0.0, 2.0, why="a scale of blendshape weights in [0, 1]"),
    "expression_jitter": FRACTION, "expression_asymmetry": FRACTION, "eye_blink": FRACTION,
    "eye_gaze_yaw": FORWARD_ANGLE, "eye_gaze_pitch": FORWARD_ANGLE,
    "head_yaw": FORWARD_ANGLE, "head_pitch": FORWARD_ANGLE, "head_roll": PLANE_ANGLE,
    "camera_distance_cm": Limits(10.0, 1000.0, why="a camera that sees a face"),
    "focal_length_px": Limits(50.0, 20000.0, why="a camera lens"),
    "light_polar": POLAR_ANGLE, "light_azimuth": PLANE_ANGLE,
    "light_intensity": INTENSITY, "fill_intensity": INTENSITY, "ambient": INTENSITY,
    "light_warmth": Limits(-1.0, 1.0, why="-1 cool ... 1 warm"),
    "specular": FRACTION,
    "skin_tone": FRACTION, "skin_hue": FRACTION, "skin_texture": FRACTION, "lip_tint": FRACTION,
    "brow_darkness": FRACTION, "iris_colour": FRACTION, "hair_tone": FRACTION, "hair_line": FRACTION,
    "background_kind": _index(BACKGROUND_NAMES), "background_brightness": FRACTION,
    "occluder_kind": _index(OCCLUDER_NAMES), "occluder_position": FRACTION,
    "occluder_shade": FRACTION,
    "blur_sigma_px": BLUR_SIGMA_PX, "noise_sigma": NOISE_SIGMA, "gamma": GAMMA,
    "contrast": CONTRAST, "jpeg_quality": JPEG_QUALITY,
}

#: What the face renderer reads (square RGB crops); see synth.eye_distribution.EYE_TASK.
FACE_TASK = TaskFactors(TASK, FACE_FACTORS, FACE_LIMITS, square_rgb=True)


def default_face_distribution(size: int = 128) -> SceneDistribution:
    f = Factor
    factors = (
        # identity
        f.shaped("identity_pc1", -3.0, 3.0, 12, 0.0, 1.0, doc="weight of identity mode 1 (~N(0,1))"),
        f.shaped("identity_pc2", -3.0, 3.0, 12, 0.0, 1.0, doc="weight of identity mode 2"),
        f.shaped("identity_pc3", -3.0, 3.0, 12, 0.0, 1.0, doc="weight of identity mode 3"),
        f.uniform("identity_scale", 0.4, 1.4, 5,
                  doc="std of the other identity modes, drawn N(0, scale^2) per sample"),
        # expression
        f.categorical("expression_preset", {0.0: 0.24, 1.0: 0.16, 2.0: 0.08, 3.0: 0.12, 4.0: 0.07,
                                            5.0: 0.06, 6.0: 0.05, 7.0: 0.08, 8.0: 0.04, 9.0: 0.10},
                      doc="0 neutral 1 smile 2 open 3 talk 4 anger 5 sad 6 pucker 7 laugh "
                          "8 scream 9 random mix"),
        f.uniform("expression_intensity", 0.0, 1.0, 5, doc="scales the preset's blendshape weights"),
        f.uniform("expression_jitter", 0.0, 0.3, 3,
                  doc="std of sparse random weights added to all 53 shapes"),
        f.uniform("expression_asymmetry", 0.0, 0.5, 3,
                  doc="relative left/right difference of paired (_L/_R) shapes"),
        f.shaped("eye_blink", 0.0, 1.0, 5, 0.0, 0.15, doc="eyelid closure (eyeBlink_L/R weight)"),
        f.shaped("eye_gaze_yaw", D(-30), D(30), 6, 0.0, D(15), unit="rad",
                 doc="eyes' gaze yaw relative to the head; > 0 toward the image's left"),
        f.shaped("eye_gaze_pitch", D(-20), D(20), 4, 0.0, D(10), unit="rad",
                 doc="eyes' gaze pitch relative to the head; > 0 looks up"),
        # head pose relative to the camera (DESIGN.md convention on the face's forward axis)
        f.shaped("head_yaw", D(-75), D(75), 15, 0.0, D(35), unit="rad",
                 doc="> 0 turns the face toward the image's left"),
        f.shaped("head_pitch", D(-35), D(35), 7, 0.0, D(15), unit="rad", doc="> 0 looks up"),
        f.shaped("head_roll", D(-25), D(25), 5, 0.0, D(10), unit="rad",
                 doc="> 0 turns the face clockwise in the image"),
        # camera: distance sets perspective; with the focal length, the face's source size
        f.shaped("camera_distance_cm", 35.0, 200.0, 6, 70.0, 50.0, unit="cm",
                 doc="camera to head centre; nearer = stronger perspective"),
        f.uniform("focal_length_px", 300.0, 1800.0, 5, unit="px",
                  doc="source camera focal length; a face smaller than the crop in the source "
                      "image is upsampled (extra blur)"),
        # illumination: key light + opposite fill + hemisphere ambient
        f.shaped("light_polar", 0.0, D(85), 6, D(35), D(30), unit="rad",
                 doc="angle between the key light and the camera axis"),
        f.uniform("light_azimuth", -math.pi, math.pi, 8, unit="rad",
                  doc="direction the key light comes from in the image plane: 0 right, "
                      "pi/2 above"),
        f.uniform("light_intensity", 0.5, 1.4, 4),
        f.uniform("fill_intensity", 0.0, 0.5, 4, doc="opposite-side fill light"),
        f.uniform("ambient", 0.12, 0.6, 4, doc="hemisphere ambient (brighter from above)"),
        f.uniform("light_warmth", -1.0, 1.0, 4, doc="-1 cool (bluish) ... 1 warm (tungsten)"),
        f.uniform("specular", 0.0, 1.0, 4, doc="strength of skin highlights"),
        # albedo
        f.uniform("skin_tone", 0.0, 1.0, 8, doc="skin albedo, 0 very dark ... 1 very light"),
        f.uniform("skin_hue", 0.0, 1.0, 4, doc="0 olive/yellow ... 1 pink/red undertone"),
        f.uniform("skin_texture", 0.0, 1.0, 4, doc="amplitude of blotches and pores"),
        f.uniform("lip_tint", 0.0, 1.0, 4, doc="0 lips like skin ... 1 strongly red"),
        f.uniform("brow_darkness", 0.0, 1.0, 4, doc="brow contrast against skin"),
        f.uniform("iris_colour", 0.0, 1.0, 4, doc="0 dark brown ... 1 light blue"),
        f.uniform("hair_tone", 0.0, 1.0, 4, doc="0 black ... 1 blond"),
        f.shaped("hair_line", 0.0, 1.0, 4, 0.7, 0.4, doc="0 bald ... 1 low hairline"),
        # background
        f.categorical("background_kind", {0.0: 0.2, 1.0: 0.25, 2.0: 0.3, 3.0: 0.25},
                      doc="0 flat 1 gradient 2 smooth noise 3 clutter"),
        f.uniform("background_brightness", 0.05, 0.95, 6),
        # occluders drawn into the image; landmarks under them are marked occluded
        f.categorical("occluder_kind", {0.0: 0.55, 1.0: 0.15, 2.0: 0.1, 3.0: 0.1, 4.0: 0.1},
                      doc="0 none 1 glasses 2 hand 3 mask 4 hair"),
        f.uniform("occluder_position", 0.0, 1.0, 4, doc="where the occluder sits (kind-specific)"),
        f.uniform("occluder_shade", 0.0, 1.0, 4, doc="occluder colour / lens darkness"),
        # camera pipeline
        f.shaped("blur_sigma_px", 0.0, 1.5, 6, 0.5, 0.5, unit="px"),
        f.shaped("noise_sigma", 0.0, 0.06, 6, 0.01, 0.015, doc="fraction of full scale"),
        f.uniform("gamma", 0.8, 1.25, 4),
        f.uniform("contrast", 0.75, 1.25, 4),
        f.uniform("jpeg_quality", 30.0, 98.0, 6),
    )
    assert tuple(x.name for x in factors) == FACE_FACTORS
    return SceneDistribution(name="faces-default-v1", task=TASK, factors=factors,
                             image=ImageSpec(height=size, width=size, channels=3))


# --------------------------------------------------------------------------- shape weights


def identity_coefficients(f: Mapping[str, np.ndarray], n_modes: int,
                          rng: np.random.Generator) -> np.ndarray:
    """(n, n_modes) identity weights: modes 1-3 from their factors, the rest N(0, s^2)."""
    scale = np.asarray(f["identity_scale"], dtype=np.float64)
    w = rng.standard_normal((len(scale), n_modes)) * scale[:, None]
    k = min(3, n_modes)
    w[:, :k] = np.stack([f[f"identity_pc{i + 1}"] for i in range(k)], axis=1)
    return w.astype(np.float32)


def _expand(weights: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, w in weights.items():
        if name.endswith("_LR"):
            out[name[:-3] + "_L"] = w
            out[name[:-3] + "_R"] = w
        else:
            out[name] = w
    return out


def expression_coefficients(f: Mapping[str, np.ndarray], names: Sequence[str],
                            rng: np.random.Generator) -> np.ndarray:
    """(n, E) blendshape weights in [0, 1] for the model's expression ``names``; shapes a
    model lacks are skipped (the fallback head has 14 of ICT's 53)."""
    idx = {nm: i for i, nm in enumerate(names)}
    preset = np.rint(np.asarray(f["expression_preset"])).astype(int)
    n, e = len(preset), len(names)
    inten = np.asarray(f["expression_intensity"], dtype=np.float64)
    # drawn unconditionally, so each sample's stream use does not depend on the others
    jitter = np.abs(rng.standard_normal((n, e))) * (rng.random((n, e)) < 0.25)
    mix = rng.random((n, e)) * 0.6 * (rng.random((n, e)) < 0.3)
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    w = np.zeros((n, e))
    for p, pname in enumerate(PRESET_NAMES):
        rows = preset == p
        if not rows.any():
            continue
        if pname == "random":
            w[rows] = mix[rows]
        for shape, v in _expand(PRESETS[pname]).items():
            if shape in idx:
                w[rows, idx[shape]] = v
    w *= inten[:, None]
    w += jitter * np.asarray(f["expression_jitter"])[:, None]
    asym = np.asarray(f["expression_asymmetry"]) * side
    for nm, i in idx.items():
        if nm.endswith("_L") and nm[:-2] + "_R" in idx:
            w[:, i] *= 1.0 + asym
            w[:, idx[nm[:-2] + "_R"]] *= 1.0 - asym
    blink = np.asarray(f["eye_blink"], dtype=np.float64)
    for nm in ("eyeBlink_L", "eyeBlink_R"):
        if nm in idx:
            w[:, idx[nm]] = np.maximum(w[:, idx[nm]], blink)
    # gaze: yaw > 0 looks toward the image's left = the subject's right (-x)
    gy = np.asarray(f["eye_gaze_yaw"]) / D(30)
    gp = np.asarray(f["eye_gaze_pitch"]) / D(20)
    look = {"eyeLookOut_R": gy, "eyeLookIn_L": gy, "eyeLookIn_R": -gy, "eyeLookOut_L": -gy,
            "eyeLookUp_L": gp, "eyeLookUp_R": gp, "eyeLookDown_L": -gp, "eyeLookDown_R": -gp}
    for nm, v in look.items():
        if nm in idx:
            w[:, idx[nm]] = np.clip(v, 0.0, 1.0) * 0.8
    return np.clip(w, 0.0, 1.0).astype(np.float32)
