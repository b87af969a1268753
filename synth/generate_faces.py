"""Generate one synthetic face batch to disk: draw scenes, render in chunks, write shards.

The batch folder is the standard one (``synth/shards.py``: image shards, metadata table,
manifest, distribution) plus the landmark arrays, written inside the same atomic rename
and listed with sha256 and size in the manifest's ``extra_files`` (so
``BatchReader.verify_checksums`` covers them like the shards)::

    landmarks/landmarks.json          what follows, with shapes, sha256 and sizes
    landmarks/points68.npy            float32 (n, 68, 2) crop pixels, 0-based pixel centres
    landmarks/visible68.npy           bool (n, 68)
    landmarks/<set>.npy               float32 (n, D, 2) dense points (first 68 = points68)
    landmarks/<set>_visible.npy       bool (n, D)
    landmarks/<set>_vertex_ids.npy    int32 (D,) the face-model vertices of the set
    landmarks/<set>_mirror.npy        int32 (D,) left/right permutation: point k of the
                                      horizontally mirrored face is point mirror[k]
                                      (absent for a set of an asymmetric face model)

``metadata.parquet`` has one row per sample: every factor value, the head pose
(``yaw``, ``pitch``, ``roll``, rad), the crop box in source-camera pixels and how many
of the 68 points are visible.

Like eye batches, a face batch is written as one stream or fanned out, one job per shard
(:func:`render_face_shard`, run by the caller's ``map_shards``), with the same bytes: a
shard depends only on the distribution, seed, size, index and face model, and each job
checks that it loaded the model the batch names.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from realdata.errors import DataFormatError, UsageError
from realdata.face_crop import DEFAULT_ENLARGE
from synth.distribution import SceneDistribution
from synth.face_distribution import TASK, default_face_distribution
from synth.face_generator import CPU_CHUNK as FACE_CPU_CHUNK
from synth.face_generator import FaceGenerator, sample_face_scenes
from synth.face_model import FaceModel, model_fingerprint
from synth.manifest import NPY_ERRORS, member_path
from synth.shard_jobs import (
    RenderedShard,
    ShardJob,
    ShardMap,
    adopt_rendered,
    covering_chunks,
)
from synth.shard_layout import shard_count
from synth.shards import BatchWriter, batch_id_for, save_shard, sha256_file

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

LANDMARKS = "landmarks/landmarks.json"
FORMAT_VERSION = 1


def face_metadata(scenes: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The metadata rows' columns: pose first (rad), then every factor value (exact, for
    range checks), crop box, counts. Plain arrays: a face worker never imports pandas."""
    pose = labels["pose"].astype(np.float64)
    cols: dict[str, np.ndarray] = {"yaw": pose[:, 0], "pitch": pose[:, 1], "roll": pose[:, 2]}
    cols.update({k: np.asarray(v, dtype=np.float64) for k, v in scenes.items()})
    box = labels["crop_box"]
    cols.update({"crop_x0_px": box[:, 0], "crop_y0_px": box[:, 1], "crop_side_px": box[:, 2],
                 "n_visible68": labels["visible68"].sum(1).astype(np.int64)})
    return cols


class FaceBatchWriter(BatchWriter):
    """BatchWriter plus the landmark arrays, written into the batch's temporary folder
    before the atomic rename (a batch never appears without its labels) and registered
    as extra files, so the manifest checksums them."""

    def __init__(self, out: str | Path, *, dense_ids: dict[str, np.ndarray], model: str,
                 dense_mirror: dict[str, np.ndarray] | None = None, **kw: Any):
        super().__init__(out, **kw)
        self.dense_ids = dense_ids
        self.dense_mirror = dense_mirror or {}
        self.model = model
        self._labels: dict[str, list[np.ndarray]] = {}
        self._adopted_labels: dict[int, dict[str, np.ndarray]] = {}

    def add_labeled(self, images: np.ndarray, rows: pd.DataFrame | Mapping[str, np.ndarray],
                    labels: dict[str, np.ndarray]) -> None:
        _check_label_rows(labels, len(images))
        for k, v in labels.items():
            self._labels.setdefault(k, []).append(v)
        self.add(images, rows)

    def adopt_labeled_shard(self, shard: RenderedShard) -> None:
        """:meth:`adopt_shard` plus the shard's landmark arrays (kept in shard order)."""
        _check_label_rows(shard.labels or {}, shard.entry.get("n", -1))
        self.adopt_shard(shard.index, shard.entry, shard.image_shape, shard.rows)
        self._adopted_labels[shard.index] = shard.labels or {}

    def write_extra_files(self, folder: Path) -> None:
        for i in sorted(self._adopted_labels):
            for k, v in self._adopted_labels[i].items():
                self._labels.setdefault(k, []).append(v)
        (folder / "landmarks").mkdir(exist_ok=True)
        files: dict[str, dict[str, Any]] = {}
        arrays = {k: np.concatenate(v) for k, v in self._labels.items() if k not in ("pose", "crop_box")}
        arrays.update({f"{k}_vertex_ids": np.asarray(v, dtype=np.int32) for k, v in self.dense_ids.items()})
        arrays.update({f"{k}_mirror": np.asarray(v, dtype=np.int32) for k, v in self.dense_mirror.items()})
        for name, arr in arrays.items():
            rel = f"landmarks/{name}.npy"
            path = folder / rel
            np.save(path, np.ascontiguousarray(arr), allow_pickle=False)
            files[name] = {"file": rel, "shape": list(arr.shape), "dtype": str(arr.dtype),
                           "sha256": sha256_file(path), "bytes": path.stat().st_size}
            self.add_extra_file(rel)
        doc = {"format_version": FORMAT_VERSION, "n": self.n, "model": self.model,
               "coordinates": "crop pixels, 0-based, (0, 0) = centre of the top-left pixel",
               "crop": f"realdata.face_crop protocol: tight box of the 68 points, square, "
                       f"x{DEFAULT_ENLARGE}, centred",
               "dense_sets": sorted(self.dense_ids), "files": files}
        (folder / LANDMARKS).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        self.add_extra_file(LANDMARKS)


def _check_label_rows(labels: dict[str, np.ndarray], n: int) -> None:
    for k, v in labels.items():
        if len(v) != n:
            raise ValueError(f"label {k!r} has {len(v)} rows for {n} images")


def batch_settings(gen: FaceGenerator) -> dict[str, Any]:
    """What the manifest records as the generator (and the batch id hashes): the
    generator's settings plus the crop protocol's enlargement, so batches framed under a
    different protocol never share an id with these."""
    return {**gen.settings, "crop_enlarge": DEFAULT_ENLARGE}


def planned_face_batch_id(*, n: int, seed: int, dist: SceneDistribution | None = None,
                          model: FaceModel | None = None, landmark_sets: Sequence[str] = ("dense500",),
                          chunk: int | None = None) -> str:
    """The id ``generate_face_batch`` with these arguments writes, without rendering: it
    needs only the generator settings (which load the face model for its fingerprint)."""
    dist = dist or default_face_distribution()
    gen = FaceGenerator(dist, model=model, chunk=chunk, landmark_sets=landmark_sets)
    return batch_id_for(dist.id, seed, n, batch_settings(gen))


@dataclass(frozen=True)
class FaceShardJob(ShardJob):
    """Everything one process needs to render shard ``index`` of a face batch: the face
    model travels as where it came from plus its fingerprint."""

    model_source: str = "builtin-fallback"  # the model's npz path, or "builtin-fallback"
    model_fingerprint: str = ""
    landmark_sets: tuple[str, ...] = ("dense500",)
    chunk: int | None = None

    @property
    def grain(self) -> int:
        return self.chunk or FACE_CPU_CHUNK


@functools.lru_cache(maxsize=1)
def _shard_generator(distribution_json: str, n: int, seed: int, model_source: str,
                     fingerprint: str, landmark_sets: tuple[str, ...], chunk: int | None):
    """The generator and the batch's scenes, made once per process (a worker rendering
    several shards of one batch loads the face model and draws the scenes once)."""
    from synth.face_fallback import fallback_face_model
    from synth.face_loading import load_face_model

    model = fallback_face_model() if model_source == "builtin-fallback" else load_face_model(model_source)
    if model_fingerprint(model) != fingerprint:
        raise DataFormatError(Path(model_source), f"this worker loaded face model "
                              f"{model_fingerprint(model)}, the batch is rendered with {fingerprint}: "
                              "every worker must see the same face model file")
    dist = SceneDistribution.loads(distribution_json)
    gen = FaceGenerator(dist, model=model, chunk=chunk, landmark_sets=landmark_sets)
    return gen, sample_face_scenes(dist, n, seed)


def _model_ref(model: FaceModel) -> str:
    """Where a worker loads ``model`` from: an absolute path (workers need not share the
    writer's working directory), or ``builtin-fallback``."""
    return model.source if model.is_fallback else str(Path(model.source).resolve())


def render_face_shard(job: FaceShardJob) -> RenderedShard:
    """Render shard ``job.index`` of a face batch (or ``job.part`` of it) into
    ``job.folder``; its entry, rows and landmark arrays. Renders the whole chunks that
    overlap the job's samples."""
    start, stop = job.span
    gen, scenes = _shard_generator(job.distribution_json, job.n, job.seed, job.model_source,
                                   job.model_fingerprint, tuple(job.landmark_sets), job.chunk)
    covering, cut = covering_chunks(start, stop, gen.chunk)
    chunks = list(gen.iter_chunks(job.n, job.seed, scenes=scenes, chunks=covering))
    images = np.concatenate([c.images for c in chunks])[cut]
    labels = {k: np.concatenate([c.labels[k] for c in chunks])[cut] for k in chunks[0].labels}
    rows = face_metadata({k: v[start:stop] for k, v in scenes.items()}, labels)
    entry = save_shard(Path(job.folder), job.index, images, job.part)
    return RenderedShard(job.index, entry, tuple(images.shape[1:]), rows, labels, part=job.part)


def generate_face_batch(
    out: str | Path,
    *,
    n: int,
    seed: int,
    dist: SceneDistribution | None = None,
    model: FaceModel | None = None,
    landmark_sets: Sequence[str] = ("dense500",),
    chunk: int | None = None,
    shard_size: int = 4096,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    map_shards: ShardMap | None = None,
) -> tuple[str, Path]:
    """Write a face batch folder; returns (batch id, path). Same inputs give identical
    bytes, streamed or fanned out through ``map_shards``."""
    if n <= 0:
        raise UsageError(f"n must be positive, got {n}")
    dist = dist or default_face_distribution()
    if dist.task != TASK:
        raise dist.error(f"distribution is for task {dist.task!r}, not {TASK!r} (faces)")
    gen = FaceGenerator(dist, model=model, chunk=chunk, landmark_sets=landmark_sets)
    dense_ids = {s: gen.model.dense_sets[s] for s in gen.landmark_sets}
    mirror = {s: gen.model.dense_mirror[s] for s in gen.landmark_sets if s in gen.model.dense_mirror}
    with FaceBatchWriter(out, task=TASK, dist=dist, seed=seed, n=n, generator=batch_settings(gen),
                         shard_size=shard_size, overwrite=overwrite, dense_ids=dense_ids,
                         dense_mirror=mirror, model=model_fingerprint(gen.model)) as w:
        if map_shards is not None:
            jobs = [FaceShardJob(str(w.tmp), dist.dumps(), n, seed, shard_size, i,
                                 _model_ref(gen.model), model_fingerprint(gen.model), gen.landmark_sets,
                                 gen.chunk) for i in range(shard_count(n, shard_size))]
            adopt_rendered(map_shards, render_face_shard, jobs, w.adopt_labeled_shard, progress)
            return w.batch_id, Path(out)
        scenes = sample_face_scenes(dist, n, seed)  # the fanned-out jobs draw their own
        for c in gen.iter_chunks(n, seed, scenes=scenes, progress=progress):
            k = len(c.images)
            part = {key: v[c.start:c.start + k] for key, v in scenes.items()}
            w.add_labeled(c.images, face_metadata(part, c.labels), c.labels)
    return w.batch_id, Path(out)


def read_face_labels(batch_dir: str | Path, verify: bool = True) -> dict[str, np.ndarray]:
    """The landmark arrays of a face batch (memory-mapped), checked against landmarks.json;
    any problem raises DataFormatError naming the file."""
    root = Path(batch_dir)
    doc_path = root / LANDMARKS
    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFormatError(doc_path, "missing: not a face batch") from None
    except (ValueError, RecursionError) as e:  # bad JSON or UTF-8, absurd numbers or nesting
        raise DataFormatError(doc_path, f"not valid JSON ({e})") from None
    out: dict[str, np.ndarray] = {}
    for name, e in _label_entries(doc, doc_path):
        path = member_path(root, e["file"], doc_path, f"files[{name!r}].file")
        if not path.is_file():
            raise DataFormatError(path, "listed in landmarks.json but missing")
        if verify and sha256_file(path) != e["sha256"]:
            raise DataFormatError(path, "checksum does not match landmarks.json (corrupted or modified)")
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except NPY_ERRORS as err:
            raise DataFormatError(path, f"unreadable .npy ({err})") from None
        if list(arr.shape) != e["shape"] or str(arr.dtype) != e["dtype"]:
            raise DataFormatError(path, f"{arr.dtype} {arr.shape}, landmarks.json says {e['dtype']} {e['shape']}")
        out[name] = arr
    return out


def _label_entries(doc: Any, doc_path: Path) -> list[tuple[str, dict[str, Any]]]:
    """landmarks.json's ``files``, each entry checked for the keys and types read above."""
    if not isinstance(doc, dict) or not isinstance(doc.get("files", {}), dict):
        raise DataFormatError(doc_path, "must be a JSON object whose 'files' is an object")
    entries = []
    for name, e in doc.get("files", {}).items():
        where = f"files[{name!r}]"
        if not isinstance(e, dict):
            raise DataFormatError(doc_path, f"{where} must be an object")
        for key, kind in (("file", str), ("sha256", str), ("dtype", str), ("shape", list)):
            if not isinstance(e.get(key), kind):
                raise DataFormatError(doc_path, f"{where}.{key} is missing or not {kind.__name__}")
        entries.append((name, e))
    return entries
