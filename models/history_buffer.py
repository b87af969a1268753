"""The SimGAN history of refined images: the discriminator sees half of each fake batch
from the current refiner and half from refined images of earlier steps, so it keeps
rejecting artefacts the refiner made before and the refiner cannot cycle back to them.

After each discriminator step, random slots of the buffer are overwritten with the newest
refined images (half a batch), as in the paper. Sampling and replacement use the
buffer's own ``torch.Generator``: the same seed draws the same slots.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ImageHistory"]


class ImageHistory:
    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"history capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._gen = torch.Generator().manual_seed(seed)
        self._images: Tensor | None = None  # (filled, C, H, W), detached, on the CPU
        self.filled = 0

    def __len__(self) -> int:
        return self.filled

    def mix(self, refined: Tensor) -> Tensor:
        """The discriminator's fake batch: the first half of ``refined`` and as many
        images drawn from the history (while it is empty: ``refined`` itself)."""
        if self.filled == 0:
            return refined
        half = len(refined) // 2
        idx = torch.randint(self.filled, (len(refined) - half,), generator=self._gen)
        old = self._images[idx].to(device=refined.device, dtype=refined.dtype)
        return torch.cat([refined[:half], old])

    def push(self, refined: Tensor) -> None:
        """Store half of ``refined`` (at least one image): appended while there is room,
        then written over random slots."""
        new = refined.detach().to("cpu", torch.float32)[: max(1, len(refined) // 2)]
        if self._images is None:
            self._images = torch.empty((self.capacity, *new.shape[1:]), dtype=torch.float32)
        room = self.capacity - self.filled
        head, tail = new[:room], new[room:]
        self._images[self.filled:self.filled + len(head)] = head
        self.filled += len(head)
        if len(tail):
            slots = torch.randperm(self.capacity, generator=self._gen)[: len(tail)]
            self._images[slots] = tail
