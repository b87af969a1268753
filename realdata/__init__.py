"""Readers for real (non-synthetic) data.

Pure package: never imports Prefect, MLflow, Optuna or Great Expectations. Malformed
input raises :class:`synthloop.errors.DataFormatError` naming the file (and line).
"""

from realdata.eyes import (
    EyeImages,
    read_eye_folder,
    read_eye_labels,
    read_eye_manifest,
    read_mpiigaze_mat,
)
from realdata.gaze import gaze_vector_to_pitchyaw, pitchyaw_to_gaze_vector

__all__ = [
    "EyeImages",
    "gaze_vector_to_pitchyaw",
    "pitchyaw_to_gaze_vector",
    "read_eye_folder",
    "read_eye_labels",
    "read_eye_manifest",
    "read_mpiigaze_mat",
]
