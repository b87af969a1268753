"""Write eye patches as a real-data folder that :func:`realdata.eyes.read_eye_folder` reads
back: ``images/000000.png`` ..., ``labels.csv`` (or ``manifest.csv`` without labels) and
``meta.csv`` with the people, the eye sides and the numeric columns.

The folder appears whole or not at all: everything is written into a hidden sibling that
is renamed into place at the end (:func:`staged_folder`)."""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from realdata.eyes import (
    GROUP_COLUMN,
    HEAD_COLUMNS,
    LABELS_NAME,
    MANIFEST_NAME,
    META_NAME,
    SIDE_COLUMN,
    EyeImages,
)

__all__ = ["SOURCE_COLUMN", "check_new_folder", "staged_folder", "write_eye_folder"]

#: meta.csv column naming where each patch came from (text: a reader keeps it out of the
#: numeric slicing columns).
SOURCE_COLUMN = "source_image"


def check_new_folder(out: str | Path) -> Path:
    """``out`` as a Path, when it can become a new folder: it does not exist or is an empty
    folder; :class:`FileExistsError` otherwise. Callers with work to do before writing
    check first, so that nothing is computed for a folder that would be refused."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder")
    return out


@contextlib.contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write into; renamed to ``out`` when the block
    ends without an error, removed when it raises. ``out`` must be able to become a new
    folder (:func:`check_new_folder`)."""
    out = check_new_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_csv(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(header)
        wr.writerows(rows)


def write_eye_folder(out: str | Path, eyes: EyeImages, *,
                     extra_files: dict[str, str] | None = None) -> Path:
    """Write ``eyes`` to the new folder ``out`` (atomically, :func:`staged_folder`): the
    patches as PNG, their gaze (and head pose) in ``labels.csv`` when labeled, else
    ``manifest.csv``; ``meta.csv`` with each patch's source path (``source_image``), person,
    side and numeric columns. ``extra_files``: further text files, name -> content."""
    from PIL import Image

    n = len(eyes)
    width = max(6, len(str(n - 1)))
    names = [f"images/{i:0{width}d}.png" for i in range(n)]
    with staged_folder(out) as tmp:
        (tmp / "images").mkdir()
        for name, im in zip(names, eyes.images, strict=True):
            Image.fromarray(im).save(tmp / name, format="PNG")
        if eyes.pitchyaw is None:
            _write_csv(tmp / MANIFEST_NAME, ["image"], ([name] for name in names))
        else:
            angles = eyes.pitchyaw if eyes.headpose is None else np.hstack([eyes.pitchyaw,
                                                                           eyes.headpose])
            header = ["image", "pitch", "yaw"] + ([] if eyes.headpose is None else list(HEAD_COLUMNS))
            _write_csv(tmp / LABELS_NAME, header,
                       ([name, *(repr(float(v)) for v in row)]
                        for name, row in zip(names, angles, strict=True)))
        columns = {SOURCE_COLUMN: eyes.paths}
        if eyes.groups is not None:
            columns[GROUP_COLUMN] = eyes.groups
        if eyes.sides is not None:
            columns[SIDE_COLUMN] = eyes.sides
        columns.update({k: [repr(float(v)) for v in col] for k, col in eyes.meta.items()})
        _write_csv(tmp / META_NAME, ["image", *columns],
                   ([name, *(col[i] for col in columns.values())] for i, name in enumerate(names)))
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return Path(out)
