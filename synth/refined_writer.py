"""The writer of a refined batch: the parent's images replaced, everything else carried.

A refined batch has the parent's distribution, seed, sample count, metadata table and
extra files (face landmarks: copied byte for byte, so the labels cannot drift), plus the
files that made it (the refiner, a label probe) under ``refiner/``. Its id hashes the
parent's generator settings with the parent's id and the refiner's checksum, so two
refiners of one parent never share an id. Written atomically like any batch
(:class:`synth.shards.BatchWriter`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from synth.shards import BatchReader, BatchWriter

__all__ = ["RefinedBatchWriter"]


class RefinedBatchWriter(BatchWriter):
    def __init__(self, out: str | Path, *, parent: BatchReader, files: dict[str, Path],
                 generator: dict[str, Any], lineage: dict[str, Any], overwrite: bool = False):
        super().__init__(out, task=parent.task, dist=parent.distribution,
                         seed=int(parent.manifest["seed"]), n=parent.n, generator=generator,
                         shard_size=int(parent.manifest.get("shard_size", 4096)),
                         overwrite=overwrite, lineage=lineage)
        self.parent, self.files = parent, files

    def write_extra_files(self, folder: Path) -> None:
        for rel in self.parent.extra_files:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.parent.path / rel, folder / rel)
            self.add_extra_file(rel)
        for rel, src in self.files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, folder / rel)
            self.add_extra_file(rel)
