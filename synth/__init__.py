"""Pure synthetic-data code: scene distributions, renderers, camera pipeline, batch shards.

Never imports Prefect, MLflow, Optuna or Great Expectations (tests/test_architecture.py).
"""
