"""Pure PyTorch models for synthloop: gaze CNNs, L2CS gaze bins, stacked-hourglass
landmark networks with soft-argmax heatmaps, the label-transfer net, gradient reversal,
DA objectives (DANN, DALN for bins and for heatmaps), schedules and the name registries.

Never imports Prefect, MLflow, Optuna or Great Expectations, and importing has no side
effects beyond filling the in-process registries (tests/test_architecture.py).

Examples::

    >>> from models import create_model, create_method, list_models
    >>> model = create_model("gaze_resnet_s")
    >>> method = create_method("dann", feature_dim=model.feature_dim)
    >>> faces = create_model("hourglass_s", num_points=68)   # list_models(task="landmarks")
"""

from models.da_losses import (
    DALNLoss,
    DALNMethod,
    DAMethod,
    DANNLoss,
    DANNMethod,
    DomainDiscriminator,
    SourceOnly,
    angular_error_deg,
    gaze_loss,
    gaze_vectors,
    nuclear_norm_gram,
)
from models.gaze_bins import PITCH_BINS, YAW_BINS, GazeBins
from models.gaze_net import GazeNet, GazeNetConfig, GazeOutput, HeadOutput
from models.grl import GradientReversal, grl
from models.registry import (
    create_method,
    create_model,
    list_methods,
    list_models,
    register_method,
    register_model,
)
from models.schedules import grl_coeff, lr_inverse_decay, warmup_cosine

__all__ = [
    "PITCH_BINS",
    "YAW_BINS",
    "DALNLoss",
    "DALNMethod",
    "DAMethod",
    "DANNLoss",
    "DANNMethod",
    "DomainDiscriminator",
    "GazeBins",
    "GazeNet",
    "GazeNetConfig",
    "GazeOutput",
    "GradientReversal",
    "HeadOutput",
    "SourceOnly",
    "angular_error_deg",
    "create_method",
    "create_model",
    "gaze_loss",
    "gaze_vectors",
    "grl",
    "grl_coeff",
    "list_methods",
    "list_models",
    "lr_inverse_decay",
    "nuclear_norm_gram",
    "register_method",
    "register_model",
    "warmup_cosine",
]

# --- training loop (models/train.py and helpers): appended re-exports. The functions
# train() and augment() are NOT re-exported: a package attribute named like a submodule
# would shadow it (``import models.train as t`` would then bind the function).
from models.augment import AugmentConfig  # noqa: E402
from models.checkpoint import load_checkpoint, load_model, save_checkpoint  # noqa: E402
from models.data import ArraySource, OnTheFlySource, ShardSource, split_indices  # noqa: E402
from models.train import TrainConfig, TrainResult, evaluate, train_step  # noqa: E402
from models.validators import (  # noqa: E402
    bnm_score,
    information_maximization,
    prediction_entropy,
    snd_score,
    unsupervised_scores,
)

__all__ += [
    "ArraySource",
    "AugmentConfig",
    "OnTheFlySource",
    "ShardSource",
    "TrainConfig",
    "TrainResult",
    "bnm_score",
    "evaluate",
    "information_maximization",
    "load_checkpoint",
    "load_model",
    "prediction_entropy",
    "save_checkpoint",
    "snd_score",
    "split_indices",
    "train_step",
    "unsupervised_scores",
]

# --- landmarks (appended): hourglass models, heatmap ops, the landmark task, label transfer
from models.augment import GeometryConfig  # noqa: E402
from models.da_losses import HeatmapDALNLoss  # noqa: E402
from models.heatmaps import cell_centres, gaussian_heatmaps, heatmap_kl, soft_argmax  # noqa: E402
from models.hourglass import HourglassConfig, HourglassNet, LandmarkOutput  # noqa: E402
from models.label_transfer import (  # noqa: E402
    LabelTransfer,
    LabelTransferFit,
    apply_label_transfer,
    fit_label_transfer,
    save_label_transfer,
)
from models.landmark_losses import (  # noqa: E402
    LandmarkTask,
    LandmarkTaskConfig,
    landmark_loss,
    nme,
    predict_points,
)
from models.registry import create_task, list_tasks, model_task  # noqa: E402

__all__ += [
    "GeometryConfig",
    "HeatmapDALNLoss",
    "HourglassConfig",
    "HourglassNet",
    "LabelTransfer",
    "LabelTransferFit",
    "LandmarkOutput",
    "LandmarkTask",
    "LandmarkTaskConfig",
    "apply_label_transfer",
    "cell_centres",
    "create_task",
    "fit_label_transfer",
    "gaussian_heatmaps",
    "heatmap_kl",
    "landmark_loss",
    "list_tasks",
    "model_task",
    "nme",
    "predict_points",
    "save_label_transfer",
    "soft_argmax",
]
