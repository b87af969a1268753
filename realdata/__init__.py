"""Readers for real (non-synthetic) data, face crops, splits of real data, and the
project's error types (:mod:`realdata.errors`, the lowest layer).

Pure package: never imports Prefect, MLflow, Optuna or Great Expectations. Malformed
input raises :class:`realdata.errors.DataFormatError` naming the file (and line). Import
from the modules (``realdata.eyes``, ``realdata.landmarks``, ``realdata.gaze``...).
"""
