"""Pure analysis: per-slice gaze errors (:mod:`analysis.gaze_eval`) and domain-gap
measures between synthetic and target data (:mod:`analysis.domain_gap`), the inputs of
the scene-distribution update.

Pure package: numpy/scipy only; never imports Prefect, MLflow, Optuna or Great
Expectations, and importing it has no side effects.
"""
