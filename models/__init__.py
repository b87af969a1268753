"""Pure PyTorch models for synthloop: gaze CNNs, L2CS gaze bins, gradient reversal,
DA objectives (DANN, DALN), schedules and the name registries.

Never imports Prefect, MLflow, Optuna or Great Expectations, and importing has no side
effects beyond filling the in-process registries (tests/test_architecture.py).

Examples::

    >>> from models import create_model, create_method, list_models
    >>> model = create_model("gaze_resnet_s")
    >>> method = create_method("dann", feature_dim=model.feature_dim)
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
