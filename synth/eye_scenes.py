"""What the bytes of an eye batch are a function of, without torch: the scene draw, the
chunking and the generator settings a batch records (its id is a hash of them).

Determinism: scene factors for the whole batch come from one numpy PCG64 stream seeded
by ``seed``, so they do not depend on how the batch is chunked. Textures and sensor noise
come from a torch generator per chunk, seeded from (seed, chunk index)
(:func:`chunk_seed`); the chunk size is part of the recorded settings. Same distribution,
seed, chunk size and device type give identical bytes.

The renderer itself (:mod:`synth.eye_generator`) needs torch, ~1.4 s to import. A process
that only plans a batch and has its shards rendered elsewhere (the writer of a fanned-out
batch, a planned id) uses this module and never imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from realdata.errors import UsageError
from synth.distribution import SceneDistribution
from synth.eye_distribution import ABSENT_MEANS_OFF, EYE_TASK

GENERATOR_NAME = "synthloop.eyes"
GENERATOR_VERSION = "2"  # 2: glasses, lid fold, lower lash line; no seam under the eye
CPU_CHUNK = 128  # ~1 MB per float temporary at 36x60: stays in a core's L2 cache
GPU_CHUNK = 16384
#: device types the renderer runs on
DEVICE_TYPES = ("cpu", "cuda")


def chunk_seed(seed: int, chunk_index: int) -> int:
    return int(np.random.SeedSequence([seed, chunk_index]).generate_state(1, np.uint64)[0] >> 1)


def sample_scenes(dist: SceneDistribution, n: int, seed: int) -> dict[str, np.ndarray]:
    """Draw ``n`` scenes; a distribution the renderer cannot use (another task, an unknown or
    missing factor, a support outside the physical limits) raises a user error naming its
    file (``EYE_TASK.check``)."""
    EYE_TASK.check(dist)
    scenes = dist.sample(np.random.default_rng(seed), n)
    for name, value in ABSENT_MEANS_OFF.items():
        scenes.setdefault(name, np.full(n, value))
    return scenes


def device_type(device: Any) -> str:
    """``cpu`` or ``cuda`` for a device name (``cuda:1`` -> ``cuda``) or a torch device."""
    kind = str(device).split(":", 1)[0]
    if kind not in DEVICE_TYPES:
        raise UsageError(f"device {str(device)!r}: the eye renderer runs on {' or '.join(DEVICE_TYPES)}")
    return kind


def default_chunk(device: Any) -> int:
    return GPU_CHUNK if device_type(device) == "cuda" else CPU_CHUNK


def generator_settings(device: Any, compiled: bool, chunk: int | None = None) -> dict[str, Any]:
    """The settings a batch rendered on ``device`` records (and its id hashes)."""
    return {"name": GENERATOR_NAME, "version": GENERATOR_VERSION, "device_type": device_type(device),
            "chunk": chunk or default_chunk(device), "compiled": compiled}
