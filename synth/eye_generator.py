"""Rendering an eye batch's scenes in chunks (the scene draw, the chunking and the
settings a batch records: :mod:`synth.eye_scenes`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from synth.distribution import SceneDistribution
from synth.eye_distribution import EYE_FACTORS, EYE_TASK
from synth.eye_renderer import render_eyes
from synth.eye_scenes import (  # chunk_seed and sample_scenes are also imported from here
    chunk_seed,
    default_chunk,
    generator_settings,
    sample_scenes,
)


@dataclass(frozen=True)
class EyeChunk:
    start: int
    images: np.ndarray  # uint8 (k, H, W) or (k, H, W, 3)
    geometry: dict[str, np.ndarray]


class EyeGenerator:
    """Renders batches of eyes from a distribution on a device (``cpu`` or ``cuda``)."""

    def __init__(self, dist: SceneDistribution, device: str | torch.device = "cpu",
                 chunk: int | None = None, compiled: bool = False):
        EYE_TASK.check(dist)  # before anything is rendered or written
        self.dist = dist
        self.chunk = chunk or default_chunk(device)  # refuses a device the renderer cannot use
        self.device = torch.device(device)
        self.compiled = compiled

    @property
    def settings(self) -> dict:
        return generator_settings(self.device, self.compiled, self.chunk)

    def render(self, scenes: dict[str, np.ndarray], chunk_index: int, seed: int):
        """Render one chunk of already drawn scenes; returns device tensors."""
        t = {k: torch.as_tensor(scenes[k], dtype=torch.float32).to(self.device) for k in EYE_FACTORS}
        gen = torch.Generator(device=self.device).manual_seed(chunk_seed(seed, chunk_index))
        return render_eyes(t, self.dist.image, gen, compiled=self.compiled,
                           centre=self.dist.image.centre)

    def n_chunks(self, n: int) -> int:
        return -(-n // self.chunk)

    def iter_chunks(
        self, n: int, seed: int, scenes: dict[str, np.ndarray] | None = None,
        progress: Callable[[int], None] | None = None, chunks: range | None = None,
        offset: int = 0,
    ) -> Iterator[EyeChunk]:
        """The batch's chunks in order, or only those numbered in ``chunks`` (a process
        rendering part of a batch gets exactly the bytes the whole render has there).
        ``scenes`` may hold the batch's scenes from sample ``offset`` on only."""
        scenes = scenes if scenes is not None else sample_scenes(self.dist, n, seed)
        for ci in chunks if chunks is not None else range(self.n_chunks(n)):
            start = ci * self.chunk
            stop = min(start + self.chunk, n)
            part = {k: v[start - offset:stop - offset] for k, v in scenes.items()}
            k = stop - start
            if self.compiled and k < self.chunk:
                # pad the last chunk to the compiled shape (no recompile); samples are
                # rendered independently, so the padding does not touch real rows
                part = {key: np.concatenate([v, np.repeat(v[-1:], self.chunk - k)]) for key, v in part.items()}
            with torch.inference_mode():
                images, geo = self.render(part, ci, seed)
            yield EyeChunk(start, images[:k].cpu().numpy(), {g: v[:k].cpu().numpy() for g, v in geo.items()})
            if progress is not None:
                progress(stop - start)

    def render_all(self, n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Draw and render ``n`` scenes in memory: (uint8 images, the scene factors)."""
        scenes = sample_scenes(self.dist, n, seed)
        images = np.concatenate([c.images for c in self.iter_chunks(n, seed, scenes=scenes)])
        return images, scenes

    def labeled_batch(self, n: int, seed: int) -> dict[str, torch.Tensor]:
        """``n`` freshly rendered eyes on the generator's device: ``image`` uint8
        (n, C, H, W) and ``pitchyaw`` float32 (n, 2) radians. Plain ``no_grad`` (not
        inference_mode), so the tensors may enter a training graph later."""
        scenes = sample_scenes(self.dist, n, seed)
        with torch.no_grad():
            images, _ = self.render(scenes, 0, seed)
        image = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
        py = np.stack([scenes["gaze_pitch"], scenes["gaze_yaw"]], 1).astype(np.float32)
        return {"image": image.contiguous(), "pitchyaw": torch.from_numpy(py).to(images.device)}
