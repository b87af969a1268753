"""The landmark training recipe: the :class:`~models.train.TrainConfig` fields that make
the CPU landmark models converge, in one place for ``synthloop train --task landmarks``,
the feedback loop and the benchmarks.

- Wing loss on the soft-argmax coordinates (Feng et al., CVPR 2018): steep near zero, so
  the last pixel of error still pulls, and logarithmic, not quadratic, for outliers.
- The full face augmentation (:mod:`models.landmark_augment`): flips with the layout's
  mirror permutation (no flips when the points have none), rotation, scale, occlusion,
  colour, blur, noise, JPEG. Small training sets (tens to hundreds of real faces)
  over-fit within a few hundred steps without it.
- AdamW at 2e-3 with light weight decay (1e-4) and warm-up into cosine decay.
- bf16 autocast and channels_last on the CPU: about 2x faster for these CNNs on CPUs
  with native bf16 (``benchmarks/bench_landmark_step.py``); on CPUs without it training
  stays float32 (``models.precision``).
- An average of the weights (:mod:`models.ema`) as the model that is evaluated and kept.

Measured on LFPW (645 training faces, 160 test faces, ``landmark_resnet_s``):
``benchmarks/bench_landmark_label_efficiency.py`` and ``docs/landmarks.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_LANDMARK_MODEL", "EMA_DECAY", "landmark_recipe"]

DEFAULT_LANDMARK_MODEL = "landmark_resnet_s"
EMA_DECAY = 0.998  # an average over the last ~500 steps


def landmark_recipe(mirror: Sequence[int] | np.ndarray | None, *, steps: int,
                    ema: float | None = EMA_DECAY) -> dict[str, Any]:
    """TrainConfig fields (``lr``, ``weight_decay``, ``warmup``, ``cpu_amp``, ``ema``,
    ``task_kwargs``) for a ``steps``-step run whose points flip with ``mirror``."""
    task_kwargs: dict[str, Any] = {"coord": "wing", "augment": "faces"}
    if mirror is not None:
        task_kwargs["mirror"] = [int(i) for i in np.asarray(mirror).reshape(-1)]
    return {"lr": 2e-3, "weight_decay": 1e-4, "warmup": max(1, min(200, steps // 20)),
            "cpu_amp": True, "ema": ema, "task_kwargs": task_kwargs}
