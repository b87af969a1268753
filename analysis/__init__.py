"""Pure analysis: per-slice gaze errors (:mod:`analysis.gaze_eval`), domain-gap measures
between synthetic and target data (:mod:`analysis.domain_gap`), per-image statistics
(:mod:`analysis.image_stats`), errors and domain gap by slice of any observed variable
(:mod:`analysis.slices`), and the scene-distribution update policy
(:mod:`analysis.update_policy`) that turns them into the next distribution version.
Plots live in :mod:`analysis.plots` (matplotlib, imported on use).

Pure package: numpy/scipy only; never imports Prefect, MLflow, Optuna or Great
Expectations, and importing it has no side effects.
"""

from analysis.image_stats import IMAGE_STAT_NAMES, image_statistics_table
from analysis.slices import (
    domain_gap_by_slice,
    observed_variables,
    slice_edges,
    slice_errors,
    worst,
)
from analysis.update_policy import (
    EYE_LABEL_FACTORS,
    EYE_NUISANCE,
    NuisanceEvidence,
    UpdatePolicy,
    fit_nuisance,
    label_reweight,
    move_weights,
    update_distribution,
)

__all__ = [
    "EYE_LABEL_FACTORS",
    "EYE_NUISANCE",
    "IMAGE_STAT_NAMES",
    "NuisanceEvidence",
    "UpdatePolicy",
    "domain_gap_by_slice",
    "fit_nuisance",
    "image_statistics_table",
    "label_reweight",
    "move_weights",
    "observed_variables",
    "slice_edges",
    "slice_errors",
    "update_distribution",
    "worst",
]
