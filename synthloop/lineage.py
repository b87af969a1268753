"""Lineage records: what the catalog holds about distributions and batches, written from
the objects themselves (a batch folder's manifest and status, a distribution's JSON), so
every flow records them the same way."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from synth.distribution import SceneDistribution


def open_catalog():
    """The catalog at the configured URL (``SYNTHLOOP_CATALOG_URL``, default SQLite in the
    project home)."""
    from catalog import Catalog
    from synthloop.settings import get_settings

    return Catalog(get_settings().catalog)


def record_distribution(cat, dist: SceneDistribution) -> None:
    """A distribution row. Its parent is linked when the catalog knows it; a distribution
    derived outside the catalog (by hand, in a notebook) keeps its parent id in its content
    JSON but gets no foreign key, since the parent's content is not known here."""
    parent = dist.parent if dist.parent and cat.get_distribution(dist.parent) else None
    cat.add_distribution(dist.id, dist.name, dist.task, json.loads(dist.dumps()),
                         parent_id=parent, reason=dist.reason)


def distribution_from_catalog(cat, dist_id: str) -> SceneDistribution:
    from catalog.errors import CatalogNotFound

    row = cat.get_distribution(dist_id)
    if row is None:
        raise CatalogNotFound("distribution", dist_id)
    content = row["content"]
    return SceneDistribution.from_json(json.loads(content) if isinstance(content, str) else content)


def record_batch(cat, batch_dir: str | Path) -> dict[str, Any]:
    """The batch, its distribution and its validation verdict, as the catalog row."""
    from synth.shards import BatchReader

    r = BatchReader(batch_dir, verify=False)
    m = r.manifest
    parent = m.get("parent")
    if parent is not None and cat.get_batch(parent["batch_id"]) is None:
        record_batch(cat, parent["path"])  # the parent goes in first: the child points at it
    record_distribution(cat, r.distribution)
    manifest_sha = hashlib.sha256((Path(batch_dir) / "manifest.json").read_bytes()).hexdigest()
    shards = [{"path": s.get("file", s.get("path")), "sha256": s.get("sha256")}
              for s in m.get("shards", [])]
    cat.add_batch(r.batch_id, r.distribution.id, int(m.get("seed", -1)), r.n,
                  str(Path(batch_dir).resolve()), manifest_sha, shards, status="pending",
                  parent_id=parent["batch_id"] if parent else None,
                  refiner=(m.get("refiner") or {}).get("mlflow_run_id") if parent else None)
    st = r.status
    if st.status in ("accepted", "quarantined"):
        detail = json.dumps({"failing": list(st.failing), **(st.detail or {})}, default=str)
        cat.set_batch_status(r.batch_id, st.status, detail)
    return {"batch_id": r.batch_id, "status": st.status, "failing": list(st.failing)}


def check_batch_is_recorded_one(cat, batch_id: str, batch_dir: str | Path) -> None:
    """Refuse a batch folder that no longer holds the batch the catalog recorded there.

    Lineage says "round k trained on batch X": that must stay true even when someone
    regenerated the folder (``generate --overwrite``) or copied another batch over it
    after it was recorded. The manifest names the batch and checksums every file, and
    training re-verifies those checksums, so comparing the manifest's id and sha256 with
    the catalog's row is enough to know the data is the recorded data."""
    from catalog.errors import CatalogNotFound
    from realdata.errors import DataFormatError

    row = cat.get_batch(batch_id)
    if row is None:
        raise CatalogNotFound("batch", batch_id)
    from synth.shards import MANIFEST

    manifest = Path(batch_dir) / MANIFEST
    try:
        raw = manifest.read_bytes()
        found = json.loads(raw).get("batch_id")
    except (OSError, ValueError, AttributeError) as e:
        raise DataFormatError(manifest, f"cannot read the batch the catalog records as {batch_id} "
                                        f"({e.__class__.__name__})") from None
    sha = hashlib.sha256(raw).hexdigest()
    if found != batch_id or sha != row["manifest_sha256"]:
        what = f"batch {found}" if found != batch_id else f"a different manifest of {batch_id}"
        raise DataFormatError(manifest, f"holds {what}, not the batch {batch_id} the catalog "
                                        "recorded here (the folder was replaced after it was "
                                        "recorded); move it away and run again to regenerate it")
