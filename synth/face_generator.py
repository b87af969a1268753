"""Drawing face scenes from a distribution and rendering them in chunks.

Determinism mirrors the eye generator: scene factors for the whole batch come from one
numpy PCG64 stream seeded by ``seed`` (independent of chunking); the per-sample extras
(identity modes beyond the first three, expression jitter, textures, background,
sensor noise) come from a stream per chunk seeded from (seed, chunk index). The chunk
size and the model's fingerprint are part of the generator settings a batch records.
Same distribution, model, seed and chunk size give identical bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from synth.distribution import SceneDistribution
from synth.eye_scenes import chunk_seed
from synth.face_distribution import FACE_TASK
from synth.face_loading import load_face_model
from synth.face_model import FaceModel, model_fingerprint
from synth.face_renderer import render_faces

if TYPE_CHECKING:
    import torch

GENERATOR_NAME = "synthloop.faces"
GENERATOR_VERSION = "2"  # 2: the blend-shape product in float32 on one thread (same bytes on any core count)
CPU_CHUNK = 64  # the blendshape product for 64 faces is ~16 MB; larger chunks gain nothing

#: Per-sample label arrays every chunk carries (besides the dense sets).
LABELS = ("points68", "visible68", "pose", "crop_box")


def sample_face_scenes(dist: SceneDistribution, n: int, seed: int) -> dict[str, np.ndarray]:
    """Draw ``n`` scenes; a distribution the renderer cannot use (another task, an unknown or
    missing factor, a support outside the physical limits, an image that is not square
    RGB) raises a user error naming its file (``FACE_TASK.check``)."""
    FACE_TASK.check(dist)
    return dist.sample(np.random.default_rng(seed), n)


@dataclass(frozen=True)
class FaceChunk:
    start: int
    images: np.ndarray             # uint8 (k, H, W, 3)
    labels: dict[str, np.ndarray]  # points68, visible68, pose, crop_box, <set>, <set>_visible


class FaceGenerator:
    """Renders batches of faces from a distribution with a face model (CPU, numba)."""

    def __init__(self, dist: SceneDistribution, model: FaceModel | None = None,
                 chunk: int | None = None, landmark_sets: Sequence[str] = ("dense500",)):
        FACE_TASK.check(dist)  # before the face model is loaded or anything rendered
        self.dist = dist
        self.model = model if model is not None else load_face_model()
        self.chunk = chunk or CPU_CHUNK
        self.size = dist.image.height
        self.landmark_sets = tuple(landmark_sets)

    @property
    def settings(self) -> dict:
        return {"name": GENERATOR_NAME, "version": GENERATOR_VERSION, "device_type": "cpu",
                "chunk": self.chunk, "model": model_fingerprint(self.model),
                "model_source": "builtin-fallback" if self.model.is_fallback else "ict-facekit",
                "landmark_sets": list(self.landmark_sets)}

    def render(self, scenes: dict[str, np.ndarray], chunk_index: int, seed: int) -> dict[str, np.ndarray]:
        """Render one chunk of already drawn scenes."""
        return render_faces(self.model, scenes, size=self.size, seed=chunk_seed(seed, chunk_index),
                            landmark_sets=self.landmark_sets)

    def iter_chunks(self, n: int, seed: int, scenes: dict[str, np.ndarray] | None = None,
                    progress: Callable[[int], None] | None = None,
                    chunks: range | None = None) -> Iterator[FaceChunk]:
        """The batch's chunks in order, or only those numbered in ``chunks`` (a process
        rendering part of a batch gets exactly the bytes the whole render has there)."""
        scenes = scenes if scenes is not None else sample_face_scenes(self.dist, n, seed)
        keys = LABELS + tuple(k for s in self.landmark_sets for k in (s, s + "_visible"))
        for ci in chunks if chunks is not None else range(-(-n // self.chunk)):
            start = ci * self.chunk
            stop = min(start + self.chunk, n)
            out = self.render({k: v[start:stop] for k, v in scenes.items()}, ci, seed)
            yield FaceChunk(start, out["images"], {k: out[k] for k in keys})
            if progress is not None:
                progress(stop - start)

    def render_all(self, n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Draw and render ``n`` scenes in memory: (uint8 images, scene factors, labels)."""
        scenes = sample_face_scenes(self.dist, n, seed)
        chunks = list(self.iter_chunks(n, seed, scenes=scenes))
        images = np.concatenate([c.images for c in chunks])
        labels = {k: np.concatenate([c.labels[k] for c in chunks]) for k in chunks[0].labels}
        return images, scenes, labels

    def labeled_batch(self, n: int, seed: int) -> dict[str, torch.Tensor]:
        """``n`` freshly rendered faces: ``image`` uint8 (n, 3, H, W), ``points68`` float32
        (n, 68, 2) crop pixels, ``visible68`` bool (n, 68), and the first dense set as
        ``dense`` / ``dense_visible``. Plain tensors (no graph), ready for training."""
        import torch  # here only: rendering faces needs no torch (~1 s to import per process)

        scenes = sample_face_scenes(self.dist, n, seed)
        out = self.render(scenes, 0, seed)
        batch = {"image": torch.from_numpy(out["images"]).permute(0, 3, 1, 2).contiguous(),
                 "points68": torch.from_numpy(out["points68"]),
                 "visible68": torch.from_numpy(out["visible68"])}
        if self.landmark_sets:
            batch["dense"] = torch.from_numpy(out["dense"])
            batch["dense_visible"] = torch.from_numpy(out["dense_visible"])
        return batch
