"""Stateless, step-keyed batch sources for the training loop.

A source is anything with ``batch(step) -> dict``: ``image`` a uint8 ``(B, C, H, W)``
tensor and, when labels exist, the task's label tensors: gaze ``pitchyaw`` float32
``(B, 2)`` radians; landmarks ``points`` float32 ``(B, K, 2)`` ``(x, y)`` pixel-centre
coordinates and optionally ``visible`` ``(B, K)``.
Batch ``k`` is drawn from a generator seeded by ``(seed, k)`` and nothing else, so

- resuming at step ``k`` needs no sampler state (the checkpoint's step is enough);
- source and target sets of different sizes need no epoch bookkeeping;
- the same ``(seed, k)`` gives the same batch in any process, on any machine.

Sampling is without replacement within a batch and with replacement across batches
(each batch is an independent draw). Over ``n / B`` steps every sample is seen about
once on average, like an epoch, without the epoch boundary.

Examples::

    >>> src = ShardSource(BatchReader("batches/b1"), batch_size=64, seed=0)
    >>> src.batch(0)["image"].shape
    torch.Size([64, 1, 36, 60])
    >>> train_idx, val_idx = holdout_split(len(reader), 100, seed=0)   # realdata.splits
    >>> val = ShardSource(reader, 64, 0, indices=val_idx).gather(range(len(val_idx)))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:  # synth.shards pulls in pandas; only the type is needed here
    from synth.distribution import SceneDistribution
    from synth.shards import BatchReader

__all__ = [
    "ArraySource",
    "BatchSource",
    "ConcatSource",
    "OnTheFlySource",
    "ShardSource",
    "batch_gaze_labels",
    "per_sample_labels",
    "step_seed",
]


@runtime_checkable
class BatchSource(Protocol):
    batch_size: int

    def batch(self, step: int) -> dict[str, Tensor]: ...


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """A 63-bit seed for ``(seed, step, stream)``: independent streams for data,
    augmentation and dropout at the same step (SeedSequence mixes all the words)."""
    ss = np.random.SeedSequence([int(seed), int(step), int(stream)])
    return int(ss.generate_state(1, np.uint64)[0] >> 1)


def _draw(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """``batch_size`` positions in ``range(n)`` for ``step``: no repeats within a batch
    unless ``batch_size > n``; sorted, so memory-mapped reads run forward."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    rng = np.random.default_rng([int(seed), int(step)])
    idx = rng.choice(n, size=batch_size, replace=batch_size > n)
    return np.sort(idx)


def _to_nchw(images: np.ndarray) -> Tensor:
    """uint8 (k, H, W) / (k, H, W, 3) / (k, C, H, W) -> contiguous uint8 (k, C, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(images))
    if t.ndim == 3:
        return t.unsqueeze(1)
    if t.ndim == 4 and t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):
        return t.permute(0, 3, 1, 2).contiguous()
    return t


def per_sample_labels(labels: dict[str, np.ndarray | Tensor] | None, n: int) -> dict[str, np.ndarray]:
    """Label arrays as contiguous float32, each checked to hold one entry per sample."""
    out: dict[str, np.ndarray] = {}
    for key, arr in (labels or {}).items():
        a = arr.numpy() if isinstance(arr, Tensor) else np.asarray(arr)
        if key == "image" or a.ndim == 0 or a.shape[0] != n:
            raise ValueError(f"label {key!r} must be a per-sample array of length {n} "
                             f"(and not 'image'), got {a.shape}")
        out[key] = np.ascontiguousarray(a, dtype=np.float32)
    return out


def batch_gaze_labels(reader: BatchReader) -> dict[str, np.ndarray]:
    """An eye batch's labels as a source serves them: ``pitchyaw`` from the metadata's
    ``pitch`` and ``yaw`` columns (radians)."""
    meta = reader.metadata
    return {"pitchyaw": np.stack([meta["pitch"].to_numpy(np.float32),
                                  meta["yaw"].to_numpy(np.float32)], axis=1)}


class ShardSource:
    """Random batches from a batch folder (a :class:`synth.shards.BatchReader`) with
    per-sample labels held in memory.

    Args:
        reader: an open batch; images ``(H, W)``, ``(H, W, 3)`` or ``(C, H, W)`` uint8.
        labels: batch key -> per-sample array over the whole batch (first dim
            ``len(reader)``), returned as float32: an eye batch's gaze labels
            (:func:`batch_gaze_labels`, the default) or a face batch's landmarks
            (``{"points": (N, K, 2), "visible": (N, K)}``, often rearranged by the caller
            first: a dense set, or padded with missing points for a second head).
        indices: restrict sampling to these samples (e.g. the kept part of
            :func:`realdata.splits.holdout_split`); positions drawn per step index into
            this array.
    """

    def __init__(self, reader: BatchReader, batch_size: int, seed: int,
                 labels: dict[str, np.ndarray | Tensor] | None = None,
                 indices: Sequence[int] | np.ndarray | None = None):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.reader, self.batch_size, self.seed = reader, int(batch_size), int(seed)
        self.indices = (np.arange(len(reader), dtype=np.int64) if indices is None
                        else np.asarray(indices, dtype=np.int64))
        if len(self.indices) == 0:
            raise ValueError("ShardSource needs at least one sample")
        self.labels = per_sample_labels(batch_gaze_labels(reader) if labels is None else labels,
                                        len(reader))

    def __len__(self) -> int:
        return len(self.indices)

    def gather(self, positions: Sequence[int] | np.ndarray) -> dict[str, Tensor]:
        """The batch at explicit positions (into ``indices``): for fixed validation sets."""
        idx = self.indices[np.asarray(positions, dtype=np.int64)]
        out = {"image": _to_nchw(self.reader.images(idx))}
        for key, arr in self.labels.items():
            out[key] = torch.from_numpy(arr[idx])
        return out

    def batch(self, step: int) -> dict[str, Tensor]:
        return self.gather(_draw(len(self.indices), self.batch_size, self.seed, step))


class ArraySource:
    """Random batches from in-memory images, e.g. real target patches
    (:class:`realdata.eyes.EyeImages` ``.images``), labeled eyes
    (``labels={"pitchyaw": (N, 2)}``) or labeled face crops (``labels={"points":
    (N, K, 2), "visible": (N, K)}``; ``(N, H, W, 3)`` images are turned channels-first).

    Labels are optional. On a target source they are passed through only so that
    benchmarks can score the target; the training loop never trains on target labels.
    ``labels`` maps batch keys to per-sample arrays (first dimension ``N``), returned as
    float32 tensors.
    """

    def __init__(self, images: np.ndarray | Tensor, batch_size: int, seed: int,
                 labels: dict[str, np.ndarray | Tensor] | None = None):
        images = images.numpy() if isinstance(images, Tensor) else np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(f"images must be uint8 (N, H, W) or (N, C, H, W), got "
                             f"{images.dtype} {images.shape}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if len(images) == 0:
            raise ValueError("ArraySource needs at least one image")
        self.images = images
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.labels = per_sample_labels(labels, len(images))

    def __len__(self) -> int:
        return len(self.images)

    def gather(self, positions: Sequence[int] | np.ndarray) -> dict[str, Tensor]:
        idx = np.asarray(positions, dtype=np.int64)
        out = {"image": _to_nchw(self.images[idx])}
        for key, arr in self.labels.items():
            out[key] = torch.from_numpy(arr[idx])
        return out

    def batch(self, step: int) -> dict[str, Tensor]:
        return self.gather(_draw(len(self.images), self.batch_size, self.seed, step))


class ConcatSource:
    """Each batch is the concatenation of its parts' batches for the same step, e.g. 8
    synthetic and 8 real labeled faces per step. Every part must return the same keys
    with the same trailing shapes; each keeps its own seed, so the mix is reproducible
    per ``(seeds, step)`` like any source."""

    def __init__(self, *parts: BatchSource):
        if not parts:
            raise ValueError("ConcatSource needs at least one part")
        self.parts = parts
        self.batch_size = sum(int(p.batch_size) for p in parts)
        self.seed = getattr(parts[0], "seed", None)

    def batch(self, step: int) -> dict[str, Tensor]:
        batches = [p.batch(step) for p in self.parts]
        keys = set(batches[0])
        if any(set(b) != keys for b in batches):
            raise ValueError(f"parts return different keys: {[sorted(b) for b in batches]}")
        return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


class OnTheFlySource:
    """Renders every batch from a scene distribution: an endless, never-repeating
    synthetic source. Scenes for step ``k`` come from
    ``sample_scenes(dist, B, chunk_seed(seed, k))`` and the renderer's noise from the
    same seed, so batch ``k`` is reproducible (bytes match for the same device type).

    Images stay on ``device`` (render on the GPU that trains).
    """

    def __init__(self, dist: SceneDistribution, batch_size: int, seed: int,
                 device: str | torch.device = "cpu"):
        from synth.eye_generator import EyeGenerator

        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dist, self.batch_size, self.seed = dist, int(batch_size), int(seed)
        self.generator = EyeGenerator(dist, device=device, chunk=self.batch_size)

    def batch(self, step: int) -> dict[str, Tensor]:
        from synth.eye_generator import chunk_seed

        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return self.generator.labeled_batch(self.batch_size, chunk_seed(self.seed, step))

    def __repr__(self) -> str:
        return f"OnTheFlySource(dist={self.dist.id!r}, batch_size={self.batch_size}, seed={self.seed})"
