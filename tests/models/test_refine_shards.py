"""Refining a batch shard by shard (models.refine_shards): each shard equals the whole
batch refined at once, whatever order, process or thread count refines it, and a job
refuses a parent shard or refiner that is not the one the batch started with."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pandas as pd
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.refine_shards import RefineShardJob, refine_shard
from models.refiner import Refiner, RefinerConfig
from models.simgan import refine_images
from realdata.errors import DataFormatError
from synth.eye_distribution import default_eye_distribution
from synth.shards import BatchReader, BatchWriter, sha256_file


@pytest.fixture(scope="module")
def parent_and_refiner(tmp_path_factory):
    """A 250-image parent in shards of 100 (the last one short) and a refiner whose
    residual is not zero (an untrained one is the identity and would prove nothing)."""
    root = tmp_path_factory.mktemp("refine-shards")
    dist = default_eye_distribution()
    images = np.random.default_rng(0).integers(0, 256, (250, 36, 60), dtype=np.uint8)
    with BatchWriter(root / "parent", task=dist.task, dist=dist, seed=0, n=250,
                     generator={"name": "test"}, shard_size=100) as w:
        w.add(images, pd.DataFrame({"pitch": np.zeros(250), "yaw": np.zeros(250)}))
    torch.manual_seed(0)
    net = Refiner(RefinerConfig(channels=1, width=8, blocks=1))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    ckpt = save_checkpoint(root / "refiner.pt", net, None, None, 1, {}, model_name="simgan_refiner")
    return root, images, net.eval(), ckpt


def _jobs(root, ckpt, out):
    parent = BatchReader(root / "parent")
    return [RefineShardJob(str(out), str(root / "parent"), e["sha256"], str(ckpt),
                           sha256_file(ckpt), i) for i, e in enumerate(parent.manifest["shards"])]


def _refined(out, shards):
    by_index = {s.index: np.load(out / s.entry["file"]) for s in shards}
    return np.concatenate([by_index[i] for i in sorted(by_index)])


def test_shards_equal_the_batch_refined_at_once_in_any_order(parent_and_refiner, tmp_path):
    root, images, net, ckpt = parent_and_refiner
    (tmp_path / "shards").mkdir()
    shards = [refine_shard(j) for j in reversed(_jobs(root, ckpt, tmp_path))]
    assert [s.entry["n"] for s in sorted(shards, key=lambda s: s.index)] == [100, 100, 50]
    whole = refine_images(net, images)
    assert np.array_equal(_refined(tmp_path, shards), whole)
    assert not np.array_equal(whole, images)  # the refiner really changed them
    change = sum(s.stats["abs_change"] for s in shards) / sum(s.stats["pixels"] for s in shards)
    assert change == pytest.approx(np.abs(whole.astype(int) - images).mean())
    assert all(s.rows is None for s in shards)  # the writer keeps the parent's rows


def test_spawned_single_thread_workers_write_the_same_bytes(parent_and_refiner, tmp_path):
    root, images, net, ckpt = parent_and_refiner
    (tmp_path / "shards").mkdir()
    torch.set_num_threads(2)
    here = refine_images(net, images)
    with ProcessPoolExecutor(2, mp_context=get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as pool:
        shards = list(pool.map(refine_shard, _jobs(root, ckpt, tmp_path)))
    assert np.array_equal(_refined(tmp_path, shards), here)


def test_a_changed_parent_shard_or_refiner_is_refused(parent_and_refiner, tmp_path):
    root, _, _, ckpt = parent_and_refiner
    (tmp_path / "shards").mkdir()
    job = _jobs(root, ckpt, tmp_path)[1]
    with pytest.raises(DataFormatError, match="images-00001.npy.*changed since refinement"):
        refine_shard(dataclasses.replace(job, parent_sha256="0" * 64))
    with pytest.raises(DataFormatError, match="refiner.pt.*not the refiner"):
        refine_shard(dataclasses.replace(job, refiner_sha256="0" * 64))
    assert not list((tmp_path / "shards").iterdir())  # nothing written before the checks
