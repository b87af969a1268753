"""synthloop: a data-centric feedback loop for training vision models on synthetic data.

This package holds the application glue (settings, command line, errors). The pure
packages (synth, realdata, models, analysis) sit beside it and never import
Prefect, MLflow, Optuna or Great Expectations.
"""

__version__ = "0.1.0"
