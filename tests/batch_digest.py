"""sha256 of every file of a batch folder, for byte-for-byte comparisons between batches."""

import hashlib
from pathlib import Path


def batch_digest(folder: Path, with_validation: bool = True) -> dict[str, str]:
    """``{relative path: sha256}``; ``with_validation=False`` leaves out ``validation/``
    (its reports name paths and times)."""
    return {f.relative_to(folder).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(Path(folder).rglob("*"))
            if f.is_file() and (with_validation or "validation" not in f.relative_to(folder).parts)}
