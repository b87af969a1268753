"""Synthetic faces labeled in the real convention, so that they train the 68 head too.

In syn+real training the 68 head otherwise learns from the real labeled faces alone; with
25 of them it over-fits while the dense head sees thousands. A label transfer fitted on
those real faces (a dense model's predictions on them -> their 68 labels, closed form,
:mod:`models.label_transfer_ridge`) maps every synthetic face's exact dense points to 68
points in the annotators' convention (jaw on the outline, brows on their upper edge), and
those become the synthetic faces' labels for the 68 head. The dense model is the one the
run starts from (its ``init_weights``): pre-trained on the same synthetic faces, it has
not seen the real labels, so the transfer's leave-one-out choice of its weight is honest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from realdata.real_faces import RealFaces
from synthloop.errors import UsageError
from synthloop.landmarks.source import SynHead68

__all__ = ["transferred_synthetic_68"]


def transferred_synthetic_68(dense_model: str | Path) -> SynHead68:
    """The :data:`~synthloop.landmarks.source.SynHead68` of ``dense_model`` (a checkpoint
    or run folder of a model whose first channels are the batch's dense set)."""

    def labels(real: RealFaces, idx: np.ndarray, syn_points: np.ndarray) -> np.ndarray:
        from models.label_transfer import apply_label_transfer
        from synthloop.landmarks.transfer import fit_transfer_on_real

        transfer = fit_transfer_on_real(dense_model, real.subset(idx)).fit.model
        if transfer.cfg.num_dense != syn_points.shape[1]:
            raise UsageError(f"{dense_model}: {transfer.cfg.num_dense} dense points, the "
                             f"batch has {syn_points.shape[1]}; start from a model trained "
                             "on this batch's dense set")
        out = apply_label_transfer(transfer, torch.tensor(syn_points, dtype=torch.float32))
        return out.numpy().astype(np.float32)

    return labels
