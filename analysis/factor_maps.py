"""Which scene factors real data can tell the update policy about, per task: factors its
labels observe directly (re-weighted by error mass) and appearance factors identified
through an image statistic (fitted by :func:`analysis.update_policy.fit_nuisance`).
The statistics are :mod:`analysis.image_stats` names; the factors are those of the
task's default distribution (``tests/analysis/test_update_policy.py`` checks both).
The measurements behind each choice are quoted with it.
"""

from __future__ import annotations

__all__ = ["EYE_HEAD_FACTORS", "EYE_LABEL_FACTORS", "EYE_NUISANCE", "FACE_LABEL_FACTORS",
           "FACE_NUISANCE"]

#: Eye factors that labels on real data observe directly.
EYE_LABEL_FACTORS = ("gaze_pitch", "gaze_yaw")

#: Eye factors observed where real labels carry the head pose too (MPIIGaze-style data
#: do: ``head_pitch,head_yaw`` columns of labels.csv). Head pose does not move the gaze
#: label but changes the lids, the visible sclera and the eye's outline, so a model
#: trained on few turned heads fails on them (simulated target v1, 600 steps from
#: scratch: the target's gaze distribution cut the error from 8.24 to 7.59 deg, its head
#: pose as well to 7.07; benchmarks/bench_shift_ablation.py).
EYE_HEAD_FACTORS = ("head_pitch", "head_yaw")

#: Eye appearance factor -> the :mod:`analysis.image_stats` statistic that identifies it,
#: in fitting order (histogram equalisation first: it changes every other statistic).
#: Kept only where the statistic's per-bin median is monotone in the factor and the
#: between-bin share of its variance is eta^2 >= 0.05, on 3072 rendered eyes each with
#: histeq off, always on (as real MPIIGaze patches are), and mixed as in the default.
#: Spearman rho (off, on, mixed) / eta^2 (off, on, mixed):
#: histeq -> hist_entropy: rho 0.73 / eta^2 0.56 (mixed only);
#: noise_sigma -> noise_sigma: 0.52, 0.49, 0.41 / 0.37, 0.29, 0.22;
#: blur_sigma_px -> sharpness: -0.67, -0.53, -0.56 / 0.42, 0.27, 0.30;
#: jpeg_quality -> blockiness: -0.66, -0.71, -0.69 / 0.38, 0.40, 0.39;
#: light_intensity -> hist_entropy: 0.44, 0.34, 0.24 / 0.19, 0.09, 0.05 (dim light leaves
#: fewer grey levels, which equalisation cannot create).
#: Dropped: gamma, ambient and light_intensity -> brightness, contrast -> contrast
#: (equalisation erases them: eta^2 0.001-0.055 with histeq on, 0.004 for contrast mixed).
#: Against the simulated target (synth.targets, with its camera), one round moved histeq
#: 0.70 -> 0.87 (target 1), blur 0.74 -> 1.00 px (1.16), light 0.90 -> 0.77 (0.65); noise
#: and JPEG moved toward *cleaner* images, as the target camera's downsampling makes them
#: look. Without the camera, four rounds with fresh probes brought the factor means to
#: noise 0.030 (target 0.027), JPEG quality 56 (58), light 0.61 (0.65), histeq 0.84 (1);
#: blur is the weakest fit (0.74 -> 0.77 px, target 1.16), confounded by dim light, noise
#: and JPEG through equalisation.
#: glasses -> rim_lines (renderer v2): on 3072 rendered eyes (patches centred on the
#: corners), rho 0.22 / eta^2 0.080 mixed, 0.22 / 0.085 with histeq on; the median
#: doubles with glasses (0.017 -> 0.035). On the real Columbia patches the median is
#: 0.022 (between the two), and the per-person medians are highest for the people who
#: wear glasses (0.05-0.14 against 0.01-0.03). lid_fold also lowers it (rho -0.20); it
#: and lower_lash_mm have no statistic of their own yet (a dark-line statistic in the
#: eye's rows reached eta^2 0.014 and 0.016), so the loop leaves them at their prior.
EYE_NUISANCE: dict[str, str] = {
    "histeq": "hist_entropy",
    "glasses": "rim_lines",
    "noise_sigma": "noise_sigma",
    "blur_sigma_px": "sharpness",
    "jpeg_quality": "blockiness",
    "light_intensity": "hist_entropy",
}

#: Face factors that labels on real data observe: head yaw, estimated from the true 68
#: points (:func:`analysis.landmark_eval.estimate_yaw_deg`, same sign as ``head_yaw``:
#: > 0 turns the face toward the image's left; on 384 faces of the built-in head, Spearman
#: rho 0.997 between the factor and the estimate, slope 1.10).
FACE_LABEL_FACTORS = ("head_yaw",)

#: Face appearance factor -> the :mod:`analysis.image_stats` statistic that identifies it
#: on the 128 x 128 RGB crops (statistics on luma). Checked on 384 faces of the built-in
#: head from the default face distribution: per-quintile medians monotone in the factor;
#: Spearman rho / eta^2: blur_sigma_px -> sharpness -0.48 / 0.18; noise_sigma ->
#: noise_sigma 0.62 / 0.27; jpeg_quality -> blockiness -0.84 / 0.58. Not kept (medians
#: not monotone): gamma -> brightness, contrast -> contrast, light_intensity -> brightness.
FACE_NUISANCE: dict[str, str] = {
    "blur_sigma_px": "sharpness",
    "noise_sigma": "noise_sigma",
    "jpeg_quality": "blockiness",
}
