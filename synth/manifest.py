"""Reading a batch manifest without trusting it: every key the reader uses is
type-checked, every path it names must stay inside the batch folder, and every problem is
a one-line DataFormatError naming the file and the entry."""

from __future__ import annotations

import json
import tokenize
from pathlib import Path
from typing import Any

from realdata.errors import DataFormatError, one_line, shown

#: what ``np.load`` raises for a damaged file: the header is parsed as Python literals, so
#: a broken one raises the tokenizer's and the parser's errors or a TypeError (keys that do
#: not sort); a negative shape gives mmap's OverflowError (all found by fuzzing)
NPY_ERRORS = (ValueError, TypeError, OSError, EOFError, OverflowError, SyntaxError,
              tokenize.TokenError)


def _type_name(kind: type) -> str:
    return {str: "a string", list: "a list", dict: "an object"}.get(kind, kind.__name__)


def _get(listed_in: Path, obj: dict[str, Any], key: str, kind: type, where: str = "",
         optional: bool = False) -> Any:
    """``obj[key]``, checked to be of ``kind`` (an ``int`` must be a whole number >= 0, not
    a bool), else a DataFormatError naming ``listed_in`` and the entry: ``where`` is the
    name of ``obj`` in the file ("" for the top level)."""
    if key not in obj:
        if optional:
            return None
        raise DataFormatError(listed_in, f"{where or 'manifest'} lacks {key!r}")
    value, name = obj[key], f"{where}.{key}" if where else key
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DataFormatError(listed_in, f"{name} must be a whole number >= 0, got {shown(value)}")
    elif not isinstance(value, kind):
        raise DataFormatError(listed_in, f"{name} must be {_type_name(kind)}, got {shown(value)}")
    return value


def member_path(root: Path, rel: Any, listed_in: Path, where: str) -> Path:
    """``root / rel`` for a path read from ``listed_in``: it must be a relative path that
    stays inside ``root`` after following symlinks, else DataFormatError (and nothing
    outside is ever opened or hashed)."""
    if not isinstance(rel, str) or not rel or any(c < " " or c == "\x7f" for c in rel):
        raise DataFormatError(listed_in, f"{where} must be a non-empty file name without control "
                                         f"characters, got {shown(rel)}")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise DataFormatError(listed_in, f"{where} {shown(rel)} is not a relative path inside the folder")
    full = root / p
    try:
        inside = full.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise DataFormatError(listed_in, f"{where} {shown(rel)} leads outside the folder (symlink)")
    return full


def _entry(listed_in: Path, e: Any, where: str, sized: bool) -> dict[str, Any]:
    """A file entry: ``file`` and ``sha256`` strings, optional ``bytes``; shards also ``n``."""
    if not isinstance(e, dict):
        raise DataFormatError(listed_in, f"{where} must be an object, got {shown(e)}")
    _get(listed_in, e, "file", str, where)
    _get(listed_in, e, "sha256", str, where)
    _get(listed_in, e, "bytes", int, where, optional=True)
    if sized:
        _get(listed_in, e, "n", int, where)
    return e


def read_manifest(mpath: Path) -> dict[str, Any]:
    """The manifest, with every key the reader uses type-checked."""
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, absurd numbers or nesting
        raise DataFormatError(mpath, f"not valid JSON ({one_line(e)})") from None
    if not isinstance(m, dict):
        raise DataFormatError(mpath, f"must be a JSON object, got {type(m).__name__}")
    for key in ("batch_id", "task", "n", "image_shape", "shards", "metadata", "distribution"):
        if key not in m:
            raise DataFormatError(mpath, f"manifest lacks {key!r}")
    _get(mpath, m, "batch_id", str)
    _get(mpath, m, "task", str)
    _get(mpath, m, "n", int)
    for i, dim in enumerate(_get(mpath, m, "image_shape", list)):
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise DataFormatError(mpath, f"image_shape[{i}] must be a whole number >= 1, got {shown(dim)}")
    for i, e in enumerate(_get(mpath, m, "shards", list)):
        _entry(mpath, e, f"shards[{i}]", sized=True)
    _entry(mpath, m["metadata"], "metadata", sized=False)
    _entry(mpath, m["distribution"], "distribution", sized=False)
    for i, e in enumerate(_get(mpath, m, "extra_files", list, optional=True) or []):
        _entry(mpath, e, f"extra_files[{i}]", sized=False)
    parent = _get(mpath, m, "parent", dict, optional=True)
    if parent is not None:  # a refined batch names the batch it was made from
        _get(mpath, parent, "batch_id", str, "parent")
        _get(mpath, parent, "path", str, "parent")
    return m
