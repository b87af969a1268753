"""Batch shards on disk: uint8 ``.npy`` image shards, a per-sample metadata table and a
manifest with checksums.

Layout of a batch folder::

    manifest.json        id, task, distribution id, seed, n, image shape, generator settings,
                         every file with its sha256 and size
    distribution.json    the full scene distribution the batch was drawn from
    metadata.parquet     one row per sample: labels, factor values, geometry; one row
                         group per shard (synth.metadata_table)
    shards/images-00000.npy ...   uint8 (n_i, H, W) or (n_i, H, W, 3), memmap-able
    <extra files>        whatever a task adds (face batches: landmarks/*.npy), listed in
                         the manifest's ``extra_files`` with sha256 and size
    validation/          written by validation: result, status, Data Docs

Writes are atomic: everything goes to a hidden sibling folder (``.<name>.partial-<hex>``)
that is renamed into place only when complete, so a crash or a bad input never leaves a
half-written batch behind. Writers of one folder exclude each other: each holds an
``flock`` on its partial folder for the whole write, and takes a short lock on the
folder's name (``.<name>.lock``) to start and to finish; a second writer of the same
folder fails at its start with FileExistsError, and without ``overwrite`` the final rename
never replaces an existing folder. A partial folder whose flock nobody holds was left by a
killed writer: the next write into the same parent removes it.

Reading trusts nothing in the manifest: every entry is type-checked and every path must
stay inside the batch folder; any problem raises DataFormatError naming the file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from realdata.errors import DataFormatError, SynthloopError, one_line, shown
from synth.distribution import SceneDistribution
from synth.hashing_file import HashingFile
from synth.manifest import NPY_ERRORS, member_path, read_manifest
from synth.metadata_table import MetadataTableWriter, as_arrow
from synth.output_folder import (
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    hold_folder,
    leftovers_by_name,
    name_lock,
    remove_path,
    renameat2,
    sweep_stale_partials,
)
from synth.shard_layout import Part, shard_count

if TYPE_CHECKING:
    # pandas (~0.25 s to import) is imported where tables are read: a Dask worker that
    # only writes shards (save_shard) and hands back plain columns never loads it, nor
    # does the writer, which builds the metadata table with pyarrow alone
    import pandas as pd
    import pyarrow as pa


MANIFEST = "manifest.json"
DISTRIBUTION = "distribution.json"
METADATA = "metadata.parquet"
STATUS = "validation/status.json"
FORMAT_VERSION = 1
SHARD_SIZE = 4096  # samples per shard file unless a writer is told otherwise


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def shard_file(index: int) -> str:
    """Where shard ``index`` lives inside a batch folder."""
    return f"shards/images-{index:05d}.npy"


def part_file(index: int, part: Part) -> str:
    """Where one ``part`` of shard ``index`` is written until the writer joins the parts."""
    return shard_file(index).replace(".npy", f".{part.suffix}.npy")


def save_shard(folder: Path, index: int, images: np.ndarray, part: Part | None = None) -> dict[str, Any]:
    """Write :func:`shard_file` ``(index)`` under ``folder``, or :func:`part_file` for one
    ``part`` of it (joined into the shard by the writer); its manifest entry."""
    name = shard_file(index) if part is None else part_file(index, part)
    path = folder / name
    with open(path, "wb") as fh:
        out = HashingFile(fh)
        np.lib.format.write_array(out, np.ascontiguousarray(images), allow_pickle=False)
    return {"file": name, "n": int(len(images)), "sha256": out.sha.hexdigest(),
            "bytes": path.stat().st_size}


def batch_id_for(dist_id: str, seed: int, n: int, generator: dict[str, Any]) -> str:
    key = json.dumps({"dist": dist_id, "seed": seed, "n": n, "gen": generator}, sort_keys=True)
    return "batch-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see either the old or the new content, never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)


class BatchWriter:
    """Streams chunks of images + metadata rows into a batch folder, atomically.

    Use as a context manager; on an exception the partial folder is removed and the
    destination is left as it was.

    ``lineage`` (a refined batch: ``{"parent": {...}, "refiner": {...}}``) is added to the
    manifest as it is; a batch rendered from its distribution has none.

    Tasks with more per-sample arrays than images and a table (face landmarks) subclass
    it: override :meth:`write_extra_files` to write them into the temporary folder and
    :meth:`add_extra_file` each one, so they land inside the same atomic rename and the
    manifest checksums them like the shards. A batch without extra files has no
    ``extra_files`` key at all, so eye manifests stay byte-identical to earlier ones.
    """

    def __init__(self, out: str | Path, *, task: str, dist: SceneDistribution, seed: int, n: int,
                 generator: dict[str, Any], shard_size: int = SHARD_SIZE, overwrite: bool = False,
                 lineage: dict[str, Any] | None = None):
        self.out = Path(out)
        self.lineage = lineage  # a derived batch's parent and how it was made (manifest keys)
        self.task, self.dist, self.seed, self.n = task, dist, seed, n
        self.generator, self.shard_size, self.overwrite = generator, shard_size, overwrite
        self.batch_id = batch_id_for(dist.id, seed, n, generator)
        self.tmp = self.out.with_name(f".{self.out.name}.partial-{uuid.uuid4().hex[:8]}")
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._rows: list[pa.Table] = []  # streamed rows not yet in a shard's row group
        self._row_schema: pa.Schema | None = None
        self._meta = MetadataTableWriter(self.tmp / METADATA)
        self._shards: list[dict[str, Any]] = []
        self._written = 0
        self._image_shape: tuple[int, ...] | None = None
        self._extra: list[str] = []
        self._adopted: dict[int, dict[str, Any]] = {}
        self._adopted_rows: dict[int, pa.Table] = {}  # arrived ahead of an earlier shard's
        self._rows_due = 0  # the shard whose rows the metadata table takes next
        self._held: int | None = None  # fd with the flock on self.tmp while writing

    def __enter__(self) -> BatchWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with name_lock(self.out):
            if os.path.lexists(self.out) and not self.overwrite:
                raise FileExistsError(f"{self.out}: already exists (use --overwrite to replace it)")
            sweep_stale_partials(self.out.parent, held=self.out.name)
            live = [p for kind, p in leftovers_by_name(self.out.parent).get(self.out.name, [])
                    if kind == "partial"]
            if live:  # what the sweep left is held by a live writer
                raise FileExistsError(f"{self.out}: another writer is creating this folder right "
                                      f"now ({live[0].name}); wait for it or choose another folder")
            self._claim_partial()
        return self

    def _claim_partial(self) -> None:
        """Create :attr:`tmp` and flock it, under the name lock (so no sweeper can take it
        for stale between the two)."""
        self.tmp.mkdir()
        try:
            self._held = hold_folder(self.tmp)
            (self.tmp / "shards").mkdir()
        except BaseException:
            self._abandon()
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abandon()
            return
        try:
            self._finish()
        except BaseException:
            self._abandon()  # nothing half-written stays behind
            raise
        self._release()

    def _abandon(self) -> None:
        self._meta.discard()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._held is not None:
            os.close(self._held)
            self._held = None

    def add(self, images: np.ndarray, rows: pd.DataFrame | Mapping[str, np.ndarray]) -> None:
        """Append images and their metadata rows (a table, or its columns)."""
        rows = as_arrow(rows)
        if self._adopted:
            raise ValueError("add after adopt_shard: a batch is streamed or assembled, not both")
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}")
        if len(images) != rows.num_rows:
            raise ValueError(f"{len(images)} images but {rows.num_rows} metadata rows")
        if self._row_schema is None:
            self._row_schema = rows.schema
        elif not rows.schema.equals(self._row_schema):
            raise ValueError(f"metadata columns changed from {self._row_schema.names} to {rows.schema.names}")
        if self._image_shape is None:
            self._image_shape = tuple(images.shape[1:])
        elif tuple(images.shape[1:]) != self._image_shape:
            raise ValueError(f"image shape changed from {self._image_shape} to {images.shape[1:]}")
        self._buf.append(images)
        self._buffered += len(images)
        self._rows.append(rows)
        while self._buffered >= self.shard_size:
            self._flush(self.shard_size)

    def adopt_shard(self, index: int, entry: dict[str, Any], image_shape: Sequence[int],
                    rows: pd.DataFrame | Mapping[str, np.ndarray]) -> None:
        """Take shard ``index``, written into :attr:`tmp` by another process
        (:func:`save_shard`), with its metadata rows (a table, or its columns). Shards may
        arrive in any order (their rows go into the metadata table in shard order); the
        batch is finished once every one of them is in. Not mixed with :meth:`add`."""
        rows = as_arrow(rows)
        if self._buf or self._shards:
            raise ValueError("adopt_shard after add: a batch is streamed or assembled, not both")
        expected = min(self.shard_size, self.n - index * self.shard_size)
        if entry.get("file") != shard_file(index) or entry.get("n") != expected:
            raise ValueError(f"shard {index}: entry {entry} does not fit a batch of {self.n} in "
                             f"shards of {self.shard_size}")
        if rows.num_rows != expected:
            raise ValueError(f"shard {index}: {rows.num_rows} metadata rows for {expected} images")
        path = self.tmp / entry["file"]
        if not path.is_file() or path.stat().st_size != entry["bytes"]:
            raise ValueError(f"shard {index}: {path} is missing or not {entry['bytes']} bytes; was "
                             "it written where this writer can see it (shared storage)?")
        if index in self._adopted:
            raise ValueError(f"shard {index} adopted twice")
        if self._image_shape is None:
            self._image_shape = tuple(image_shape)
        elif tuple(image_shape) != self._image_shape:
            raise ValueError(f"image shape changed from {self._image_shape} to {tuple(image_shape)}")
        self._adopted[index] = entry
        self._adopted_rows[index] = rows
        while self._rows_due in self._adopted_rows:
            self._meta.write(self._adopted_rows.pop(self._rows_due), f"shard {self._rows_due}")
            self._rows_due += 1

    def _take_adopted(self) -> None:
        missing = sorted(set(range(shard_count(self.n, self.shard_size))) - set(self._adopted))
        if missing:
            raise ValueError(f"batch {self.batch_id}: shards {missing[:5]} never arrived")
        for i in sorted(self._adopted):
            self._shards.append(self._adopted[i])
            self._written += self._adopted[i]["n"]

    def add_extra_file(self, relpath: str) -> None:
        """List a file written under :attr:`tmp` in the manifest (sha256 and size are
        taken when the batch is finished). ``relpath`` is relative to the batch folder,
        POSIX-style, and may not escape it or shadow the batch's own files."""
        rel = Path(relpath)
        if rel.is_absolute() or not rel.parts or ".." in rel.parts:
            raise ValueError(f"extra file {relpath!r} must be a relative path inside the batch")
        name = rel.as_posix()
        reserved = name in (MANIFEST, METADATA, DISTRIBUTION)
        if reserved or rel.parts[0] in ("shards", "validation"):
            raise ValueError(f"extra file {relpath!r} would shadow the batch's own files")
        if name not in self._extra:
            self._extra.append(name)

    def write_extra_files(self, folder: Path) -> None:
        """Hook: write task-specific files into ``folder`` (the temporary batch folder)
        and register each with :meth:`add_extra_file`. Runs once, after every sample is
        in and counted, before the manifest is written. The base writer has none."""

    def _extra_entries(self) -> list[dict[str, Any]]:
        out = []
        for name in sorted(self._extra):
            path = self.tmp / name
            if not path.is_file():
                raise FileNotFoundError(f"extra file {name!r} was registered but not written")
            out.append({"file": name, "sha256": sha256_file(path), "bytes": path.stat().st_size})
        return out

    def _flush(self, k: int) -> None:
        data = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
        shard, rest = data[:k], data[k:]
        index = len(self._shards)
        self._shards.append(save_shard(self.tmp, index, shard))
        self._meta.write(self._take_rows(k), f"shard {index}")
        self._written += len(shard)
        self._buf = [rest] if len(rest) else []
        self._buffered = len(rest)

    def _take_rows(self, k: int) -> pa.Table:
        """The first ``k`` streamed rows not yet written (a shard's)."""
        import pyarrow as pa

        table = pa.concat_tables(self._rows) if len(self._rows) > 1 else self._rows[0]
        head, rest = table.slice(0, k), table.slice(k)
        self._rows = [rest] if rest.num_rows else []
        return head

    def _finish(self) -> None:
        if self._adopted:
            self._take_adopted()
        if self._buffered:
            self._flush(self._buffered)
        if self._written != self.n or self._meta.rows != self.n:
            raise ValueError(f"batch {self.batch_id}: wrote {self._written} samples and "
                             f"{self._meta.rows} metadata rows, expected {self.n}")
        metadata_sha = self._meta.close()
        (self.tmp / DISTRIBUTION).write_text(self.dist.dumps() + "\n")
        self.write_extra_files(self.tmp)
        extra = self._extra_entries()
        manifest = {
            "format_version": FORMAT_VERSION,
            "batch_id": self.batch_id,
            "task": self.task,
            "distribution_id": self.dist.id,
            "seed": self.seed,
            "n": self.n,
            "image_shape": list(self._image_shape or ()),
            "dtype": "uint8",
            "shard_size": self.shard_size,
            "generator": self.generator,
            "shards": self._shards,
            "metadata": {"file": METADATA, "sha256": metadata_sha, "columns": self._meta.columns},
            "distribution": {"file": DISTRIBUTION, "sha256": sha256_file(self.tmp / DISTRIBUTION)},
        }
        if extra:
            manifest["extra_files"] = extra
        if self.lineage:
            manifest.update(self.lineage)
        _write_json(self.tmp / MANIFEST, manifest)
        with name_lock(self.out):
            if not os.path.lexists(self.out):
                self._move_into_place()
            elif self.overwrite:
                self._swap_in()
            else:
                raise self._appeared()

    def _appeared(self) -> FileExistsError:
        return FileExistsError(f"{self.out}: already exists (created by someone else while this "
                               "batch was written; not replaced; use --overwrite to replace it)")

    def _move_into_place(self) -> None:
        """Rename that never replaces: a folder that appeared at ``out`` meanwhile stays."""
        try:
            if not renameat2(self.tmp, self.out, RENAME_NOREPLACE):
                os.rename(self.tmp, self.out)  # fails on a non-empty folder
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise self._appeared() from None
            raise

    def _swap_in(self) -> None:
        """overwrite: an atomic exchange where the system has one, so ``out`` is never
        missing; else two renames (a kill between them leaves the old batch in
        ``.<name>.old-*``, which the next write into the parent puts back)."""
        if renameat2(self.tmp, self.out, RENAME_EXCHANGE):
            remove_path(self.tmp)  # now the old batch
            return
        trash = self.out.with_name(f".{self.out.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(self.out, trash)
        os.replace(self.tmp, self.out)
        remove_path(trash)


_STATUSES = ("unvalidated", "accepted", "quarantined")


@dataclass(frozen=True)
class BatchStatus:
    status: str  # "unvalidated" | "accepted" | "quarantined"
    failing: tuple[str, ...] = ()
    detail: dict[str, Any] | None = None


class BatchReader:
    """Reads a batch folder; checks the manifest, shapes, sizes and (optionally) checksums.

    Any problem raises DataFormatError naming the file. Images are memory-mapped, and
    ``images(indices)`` gathers a batch with one fancy-index per shard touched.
    """

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        mpath = self.path / MANIFEST
        if not self.path.is_dir():
            raise DataFormatError(self.path, "not a batch folder (does not exist or is not a folder)")
        if not mpath.is_file():
            raise DataFormatError(mpath, "missing: not a batch folder")
        self.manifest: dict[str, Any] = read_manifest(mpath)
        for where, e in self._entries():  # every path checked before anything is opened
            self._file(e, where)
        self.batch_id: str = self.manifest["batch_id"]
        self.task: str = self.manifest["task"]
        self.n: int = self.manifest["n"]
        self.image_shape = tuple(self.manifest["image_shape"])
        if verify:
            self.verify_checksums()
        self._shards = [self._open_shard(i, s) for i, s in enumerate(self.manifest["shards"])]
        self._offsets = np.cumsum([0] + [len(s) for s in self._shards])
        if self._offsets[-1] != self.n:
            raise DataFormatError(mpath, f"shards hold {self._offsets[-1]} samples, manifest says {self.n}")
        self._meta: pd.DataFrame | None = None
        self._dist: SceneDistribution | None = None

    def _entries(self) -> list[tuple[str, dict[str, Any]]]:
        """``(name in the manifest, entry)`` for every file the manifest lists."""
        m = self.manifest
        named = [(f"shards[{i}]", e) for i, e in enumerate(m["shards"])]
        named += [("metadata", m["metadata"]), ("distribution", m["distribution"])]
        return named + [(f"extra_files[{i}]", e) for i, e in enumerate(m.get("extra_files", []))]

    def _file(self, entry: dict[str, Any], where: str) -> Path:
        """The entry's path, which must stay inside the batch folder (see member_path)."""
        return member_path(self.path, entry["file"], self.path / MANIFEST, f"{where}.file")

    def _open_shard(self, i: int, entry: dict[str, Any]) -> np.ndarray:
        p = self._file(entry, f"shards[{i}]")
        if not p.is_file():
            raise DataFormatError(p, "shard missing")
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
        except NPY_ERRORS as e:
            raise DataFormatError(p, f"unreadable or truncated .npy shard ({one_line(e)})") from None
        if arr.dtype != np.uint8 or tuple(arr.shape[1:]) != self.image_shape or len(arr) != entry["n"]:
            raise DataFormatError(
                p, f"shard has dtype {arr.dtype} shape {arr.shape}, manifest expects uint8 "
                   f"({entry['n']}, {', '.join(map(str, self.image_shape))})")
        return arr

    @property
    def extra_files(self) -> list[str]:
        """Task-specific files the manifest lists (relative paths), e.g. face landmarks."""
        return [e["file"] for e in self.manifest.get("extra_files", [])]

    def verify_checksums(self) -> None:
        """Every file the manifest lists (shards, metadata, distribution, extra files)
        exists with its recorded size and sha256."""
        for where, e in self._entries():
            p = self._file(e, where)
            if not p.is_file():
                raise DataFormatError(p, "listed in the manifest but missing")
            if "bytes" in e and p.stat().st_size != e["bytes"]:
                raise DataFormatError(p, f"size {p.stat().st_size} bytes, manifest says {e['bytes']} (truncated?)")
            if sha256_file(p) != e["sha256"]:
                raise DataFormatError(p, "checksum does not match the manifest (corrupted or modified)")

    def __len__(self) -> int:
        return self.n

    @property
    def metadata(self) -> pd.DataFrame:
        if self._meta is None:
            import pandas as pd

            p = self._file(self.manifest["metadata"], "metadata")
            try:
                self._meta = pd.read_parquet(p)
            except Exception as e:  # pyarrow raises several types for bad files
                raise DataFormatError(p, f"unreadable metadata table ({one_line(e)})") from None
            if len(self._meta) != self.n:
                raise DataFormatError(p, f"{len(self._meta)} rows, manifest says {self.n}")
        return self._meta

    @property
    def distribution(self) -> SceneDistribution:
        if self._dist is None:
            p = self._file(self.manifest["distribution"], "distribution")
            try:
                self._dist = SceneDistribution.loads(p.read_text(encoding="utf-8"))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
                # whatever the JSON holds: bad UTF-8 or JSON, wrong types, missing keys
                raise DataFormatError(p, f"not a valid scene distribution ({one_line(e)})") from None
        return self._dist

    def images(self, indices: Sequence[int] | np.ndarray | slice | None = None) -> np.ndarray:
        """Images at ``indices`` (in the given order) as a new uint8 array."""
        if indices is None:
            indices = slice(None)
        if isinstance(indices, slice):
            indices = np.arange(self.n)[indices]
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"index out of range for batch of {self.n}")
        out = np.empty((len(idx), *self.image_shape), dtype=np.uint8)
        shard_of = np.searchsorted(self._offsets, idx, side="right") - 1
        for s in np.unique(shard_of):
            sel = np.nonzero(shard_of == s)[0]
            local = idx[sel] - self._offsets[s]
            order = np.argsort(local, kind="stable")  # sorted reads are sequential in the mmap
            out[sel[order]] = self._shards[s][local[order]]
        return out

    def iter_images(self, chunk: int = 4096) -> Iterable[np.ndarray]:
        for shard in self._shards:
            for i in range(0, len(shard), chunk):
                yield np.asarray(shard[i:i + chunk])

    @property
    def status(self) -> BatchStatus:
        p = self.path / STATUS
        if not p.is_file():
            return BatchStatus("unvalidated")
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as e:
            raise DataFormatError(p, f"not valid JSON ({one_line(e)})") from None
        if not isinstance(d, dict):
            raise DataFormatError(p, f"must be a JSON object, got {type(d).__name__}")
        if d.get("status") not in _STATUSES:
            raise DataFormatError(p, f"status must be one of {', '.join(_STATUSES)}, got {shown(d.get('status'))}")
        failing = d.get("failing", [])
        if not isinstance(failing, list) or not all(isinstance(f, str) for f in failing):
            raise DataFormatError(p, f"failing must be a list of strings, got {shown(failing)}")
        return BatchStatus(d["status"], tuple(failing), d)


def write_status(batch_dir: str | Path, status: str, failing: Iterable[str] = (), **extra: Any) -> Path:
    """Mark a batch accepted or quarantined (quarantined batches are kept, never trained on)."""
    if status not in ("accepted", "quarantined"):
        raise ValueError(f"unknown status {status!r}")
    p = Path(batch_dir) / STATUS
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p, json.dumps({"status": status, "failing": list(failing), **extra},
                                    indent=2, sort_keys=True, default=str) + "\n")
    return p


class QuarantinedBatchError(SynthloopError, RuntimeError):
    """The batch failed validation (or was never validated) and must not be trained on."""


def open_for_training(path: str | Path, allow_unvalidated: bool = False) -> BatchReader:
    """The only door from a batch into training: quarantined batches never pass."""
    r = BatchReader(path)
    st = r.status
    if st.status == "quarantined":
        raise QuarantinedBatchError(
            f"{r.path}: batch {r.batch_id} is quarantined (failed: {', '.join(st.failing)}); "
            "it is kept for inspection and is never trained on")
    if st.status != "accepted" and not allow_unvalidated:
        raise QuarantinedBatchError(f"{r.path}: batch {r.batch_id} has not been validated yet")
    return r
