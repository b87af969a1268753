"""Pure analysis: per-slice gaze errors (:mod:`analysis.gaze_eval`), landmark NMEs
(:mod:`analysis.landmark_eval`), domain-gap measures between synthetic and target data
(:mod:`analysis.domain_gap`), per-image statistics (:mod:`analysis.image_stats`), errors
and domain gap by slice of any observed variable (:mod:`analysis.slices`), the
scene-distribution update policy (:mod:`analysis.update_policy`) that turns them into
the next distribution version, and the loop's stopping rule (:mod:`analysis.stopping`).
Plots live in :mod:`analysis.plots` (matplotlib, imported on use).

Pure package: numpy/scipy only; never imports Prefect, MLflow, Optuna or Great
Expectations, and importing it has no side effects. Import from the modules.
"""
