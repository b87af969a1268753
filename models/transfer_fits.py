"""The ways to fit the label-transfer network, by name. Each entry takes
``(dense_pred (N, D, 2), real68 (N, M, 2), steps, seed, **options)`` and returns a
:class:`~models.label_transfer.LabelTransferFit` whose model is a
:class:`~models.label_transfer.LabelTransfer` (one checkpoint format, one ``apply``).

- ``ridge`` (default): closed form, its one weight chosen by exact leave-one-out error on
  the labeled faces (:mod:`models.label_transfer_ridge`); ``steps``/``seed`` unused. On
  LFPW it beats the MLP at every number of labeled faces measured (25, 100, 645), by most
  where they are few (docs/landmarks.md).
- ``mlp``: the MLP + linear shortcut trained by AdamW for ``steps`` steps
  (:func:`models.label_transfer.fit_label_transfer`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from models.label_transfer import LabelTransferFit, fit_label_transfer
from models.label_transfer_ridge import fit_label_transfer_ridge

__all__ = ["DEFAULT_TRANSFER_FIT", "TRANSFER_FITS", "fit_transfer"]

TRANSFER_FITS: dict[str, Callable[..., LabelTransferFit]] = {
    "ridge": fit_label_transfer_ridge,
    "mlp": fit_label_transfer,
}
DEFAULT_TRANSFER_FIT = "ridge"


def fit_transfer(dense_pred: Tensor, real68: Tensor, *, method: str = DEFAULT_TRANSFER_FIT,
                 steps: int = 2000, seed: int = 0, **options: Any) -> LabelTransferFit:
    """Fit the label transfer by ``method`` (a key of :data:`TRANSFER_FITS`)."""
    try:
        fit = TRANSFER_FITS[method]
    except KeyError:
        raise ValueError(f"unknown label-transfer fit {method!r}; choose from "
                         f"{', '.join(TRANSFER_FITS)}") from None
    return fit(dense_pred, real68, steps, seed, **options)
