"""Pure PyTorch for synthloop: gaze CNNs and L2CS gaze bins (``gaze_net``, ``gaze_bins``,
``gaze_loss``), stacked-hourglass landmark networks with soft-argmax heatmaps
(``hourglass``, ``heatmaps``, ``landmark_losses``), the label-transfer net, gradient
reversal and the DA objectives (``grl``, ``da_losses``), the training tasks
(``models.tasks``), the one training loop (``train``), inference (``predict``,
``evaluate``), checkpoints, schedules and the name registries (``registry``).

Never imports Prefect, MLflow, Optuna or Great Expectations, and importing has no side
effects beyond filling the in-process registries (tests/test_architecture.py). Import
from the modules themselves; this package file re-exports nothing, so that importing
one module does not load them all.

Examples::

    >>> from models.registry import create_method, create_model
    >>> model = create_model("gaze_resnet_s")
    >>> method = create_method("dann", feature_dim=model.feature_dim)
    >>> faces = create_model("hourglass_s", num_points=68)   # list_models(task="landmarks")
"""
