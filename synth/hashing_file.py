"""A write-only file that hashes what passes through it, so a file's checksum comes with
writing it rather than from reading it back (image shards, the metadata table)."""

from __future__ import annotations

import hashlib
from typing import BinaryIO


class HashingFile:
    """Wraps an open binary file; ``sha`` is the sha256 of every byte written so far.
    Offers ``tell``, ``flush`` and ``closed`` too, since pyarrow's writers ask for them."""

    def __init__(self, fh: BinaryIO):
        self._fh, self.sha, self._written = fh, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self._written += memoryview(data).nbytes
        return self._fh.write(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        self._fh.flush()

    @property
    def closed(self) -> bool:
        return self._fh.closed
