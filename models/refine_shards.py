"""Refining a batch shard by shard: the job one process runs to write shard ``index`` of a
refined batch (its parent's shard ``index`` through a trained refiner), so that the same
``map_shards`` fan-out that renders batches (a Dask cluster through Prefect, a process
pool, plain ``map``) also refines them.

A refined shard depends only on the parent shard and the refiner's weights: refining runs
per image (no batch statistics; the refiner has no normalisation layers) and rounds to
uint8, so it is the same whichever process, chunking or thread count refines it (tested).
Each job checks the parent shard and the refiner against the checksums the caller read,
so a worker that sees other files (a stale mount, a batch replaced meanwhile) fails
instead of writing a batch that mixes them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.simgan import load_refiner, refine_images
from realdata.errors import DataFormatError
from synth.shard_jobs import RenderedShard
from synth.shards import BatchReader, save_shard, sha256_file


@dataclass(frozen=True)
class RefineShardJob:
    """Everything one process needs to refine shard ``index`` (picklable; paths absolute,
    reachable from the worker)."""

    folder: str  # the refined batch's temporary folder (its writer's ``tmp``)
    parent: str  # the parent batch folder
    parent_sha256: str  # of the parent's shard ``index``, as its manifest records it
    refiner: str  # a refiner.pt
    refiner_sha256: str
    index: int
    device: str = "cpu"
    condition: np.ndarray | None = None  # the shard's rows of the metadata column a
    # conditioned refiner reads (models.refiners.conditioned_on); None for the others


@functools.lru_cache(maxsize=2)
def _refiner(path: str, sha256: str, device: str):
    """The refiner, loaded once per process for all the shards it refines."""
    if sha256_file(Path(path)) != sha256:
        raise DataFormatError(Path(path), "is not the refiner this batch is refined with "
                              "(checksum differs): was it replaced while the batch was refined?")
    return load_refiner(path).to(device)


def refine_shard(job: RefineShardJob) -> RenderedShard:
    """Refine the parent's shard ``job.index`` into ``job.folder``. Its rows are the
    parent's, which the writer already holds (``rows`` None); ``stats`` carries the summed
    absolute change in gray levels and the pixel count, for the batch's mean change."""
    parent = BatchReader(job.parent, verify=False)
    entry = parent.manifest["shards"][job.index]
    path = Path(job.parent) / entry["file"]
    if sha256_file(path) != job.parent_sha256:
        raise DataFormatError(path, "changed since refinement started (checksum differs from "
                              "the parent's manifest as first read)")
    start = int(np.sum([s["n"] for s in parent.manifest["shards"][:job.index]]))
    images = parent.images(slice(start, start + entry["n"]))
    refined = refine_images(_refiner(job.refiner, job.refiner_sha256, job.device), images,
                            condition=job.condition)
    out = save_shard(Path(job.folder), job.index, refined)
    change = float(np.abs(images.astype(np.int16) - refined).sum())
    return RenderedShard(job.index, out, tuple(refined.shape[1:]), None,
                         stats={"abs_change": change, "pixels": int(images.size)})
