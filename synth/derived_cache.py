"""A per-machine disk cache for arrays derived from an input file by our own code: keyed
by the file's content and the deriving code's source, so a changed file or a changed
derivation misses it. Used where every process would otherwise redo seconds of work
(the face model's landmark sets: ~2 s in the command, in every Dask worker and in every
training process).

Entries are ``.npz`` files read with ``allow_pickle=False`` (nothing in them executes),
written atomically; an unreadable or incomplete entry is recomputed and replaced.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cache_root() -> Path:
    """``$SYNTHLOOP_CACHE``, else ``$XDG_CACHE_HOME/synthloop`` (``~/.cache/synthloop``)."""
    env = os.environ.get("SYNTHLOOP_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "synthloop"


@functools.cache
def source_fingerprint(*modules: str) -> str:
    """sha256 of the named modules' source: what is derived by them is rebuilt when they change."""
    import importlib

    h = hashlib.sha256()
    for name in modules:
        h.update(inspect.getsource(importlib.import_module(name)).encode())
    return h.hexdigest()


def cached_arrays(kind: str, source: Path, code: str,
                  compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``compute()``'s arrays for the file ``source`` as derived by ``code`` (a
    fingerprint), from the cache when there, else computed and stored. A cache that
    cannot be read or written costs the computation, never the result."""
    from synth.shards import sha256_file

    key = hashlib.sha256(f"{sha256_file(source)}\0{code}".encode()).hexdigest()[:24]
    path = cache_root() / kind / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # absent, truncated, not an npz: entries are written whole, so recompute
        pass
    arrays = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp.npz")
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError:
        pass
    return arrays
