"""Generate one batch of synthetic eye patches to disk: draw scenes, render in chunks,
write shards. (Face batches: :mod:`synth.generate_faces`.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from realdata.errors import UsageError
from synth.distribution import SceneDistribution
from synth.eye_distribution import TASK, default_eye_distribution
from synth.eye_generator import EyeGenerator, sample_scenes
from synth.shards import BatchWriter, batch_id_for

#: Below this many samples the one-off torch.compile (~10-40 s on 2 cores) costs more
#: than it saves; above it the compiled renderer is ~3x faster on CPU.
AUTO_COMPILE_MIN = 30_000

def eye_metadata(scenes: dict[str, np.ndarray], geometry: dict[str, np.ndarray]) -> pd.DataFrame:
    """Labels first (DESIGN.md convention, radians), then every factor value, then geometry."""
    cols: dict[str, np.ndarray] = {
        "pitch": scenes["gaze_pitch"].astype(np.float64),
        "yaw": scenes["gaze_yaw"].astype(np.float64),
    }
    cols.update({k: v.astype(np.float64) for k, v in scenes.items()})  # exact: range checks
    cols.update({k: v.astype(np.float32) for k, v in geometry.items()})
    return pd.DataFrame(cols)


def planned_batch_id(*, n: int, seed: int, dist: SceneDistribution | None = None,
                     device: str = "cpu", compiled: bool | None = None) -> str:
    """The id ``generate_batch`` with these arguments writes (without rendering anything)."""
    dist = dist or default_eye_distribution()
    compiled = n >= AUTO_COMPILE_MIN if compiled is None else compiled
    return batch_id_for(dist.id, seed, n, EyeGenerator(dist, device=device, compiled=compiled).settings)


def generate_batch(
    out: str | Path,
    *,
    n: int,
    seed: int,
    dist: SceneDistribution | None = None,
    device: str = "cpu",
    compiled: bool | None = None,
    shard_size: int = 4096,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, Path]:
    """Write a batch folder; returns (batch id, path). Same inputs give identical bytes."""
    if n <= 0:
        raise UsageError(f"n must be positive, got {n}")
    dist = dist or default_eye_distribution()
    if dist.task != TASK:
        raise dist.error(f"distribution is for task {dist.task!r}, not {TASK!r} (eye patches)")
    if compiled is None:
        compiled = n >= AUTO_COMPILE_MIN
    gen = EyeGenerator(dist, device=device, compiled=compiled)
    scenes = sample_scenes(dist, n, seed)
    with BatchWriter(out, task=TASK, dist=dist, seed=seed, n=n, generator=gen.settings,
                     shard_size=shard_size, overwrite=overwrite) as w:
        for chunk in gen.iter_chunks(n, seed, scenes=scenes, progress=progress):
            k = len(chunk.images)
            part = {key: v[chunk.start:chunk.start + k] for key, v in scenes.items()}
            w.add(chunk.images, eye_metadata(part, chunk.geometry))
    return w.batch_id, Path(out)
