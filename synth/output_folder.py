"""Publishing an output folder atomically, with its writers excluding each other.

A writer builds the folder as a hidden sibling (``.<name>.partial-<hex>``) and renames it
into place only when it is complete. Each writer holds an ``flock`` on its partial folder
for the whole write (the mark of a live writer) and takes a short lock on the folder's
name (``.<name>.lock``) to start and to finish, so a second writer of the same folder is
refused at its start, and a rename without overwrite never replaces an existing folder.
A partial folder whose flock nobody holds was left by a killed writer: the next write
into the same parent removes it (and puts back an old folder that a killed overwrite
swap had moved aside).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

#: what a writer leaves beside ``<name>`` while it works (or after a kill -9)
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-[0-9a-f]{8}$")


def _same_inode(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _lock_file(path: Path, wait: bool) -> int | None:
    """An fd holding flock on ``path`` (created if needed), or None if busy and not
    ``wait``. The holder unlinks the file before unlocking, so a waiter that got the lock
    on an unlinked file retries on the current one."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if _same_inode(fd, path):
            return fd
        os.close(fd)


@contextlib.contextmanager
def name_lock(out: Path, wait: bool = True) -> Iterator[bool]:
    """Hold the lock on ``out``'s name (``.<name>.lock`` beside it); yields False if it is
    busy and not ``wait``. Writers hold it only for file-system steps (start, final rename),
    never while rendering, so waiting for it is short."""
    path = out.with_name(f".{out.name}.lock")
    fd = _lock_file(path, wait)
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # before unlocking: see _lock_file
        os.close(fd)


def hold_folder(path: Path) -> int:
    """flock a writer's own partial folder for the whole write: the mark of a live writer.
    A kill -9 drops it with the process, which is how sweepers tell a stale partial."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)  # only a sweeper's momentary probe can be in the way
    return fd


def _owned_by_live_writer(folder: Path) -> bool:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return True  # gone, or not a folder we made: leave it alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def leftovers_by_name(parent: Path) -> dict[str, list[tuple[str, Path]]]:
    """``{folder name: [(kind, path), ...]}`` for the partial and old folders in ``parent``."""
    found: dict[str, list[tuple[str, Path]]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            m = _LEFTOVER.match(entry.name)
            if m:
                found.setdefault(m["name"], []).append((m["kind"], Path(entry.path)))
    return found


def _sweep_name(out: Path, leftovers: list[tuple[str, Path]]) -> list[Path]:
    """Under ``out``'s name lock: remove partial folders no live writer holds, and settle
    old batches an ``overwrite`` swap left (put back if ``out`` is missing, else drop)."""
    removed = []
    for kind, path in sorted(leftovers, key=lambda kp: -_mtime(kp[1])):
        if kind == "partial" and _owned_by_live_writer(path):
            continue
        if kind == "old" and not os.path.lexists(out):
            os.rename(path, out)  # the swap was killed between its two renames: undo it
            continue
        remove_path(path)
        removed.append(path)
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def sweep_stale_partials(parent: str | Path, held: str | None = None) -> list[Path]:
    """Remove what killed writers left in ``parent`` (see :func:`_sweep_name`); returns the
    removed paths. ``held`` names the folder whose name lock the caller holds already;
    other names are swept only if their lock is free right now (never waited for)."""
    parent = Path(parent)
    removed: list[Path] = []
    for name, leftovers in leftovers_by_name(parent).items():
        out = parent / name
        if name == held:
            removed += _sweep_name(out, leftovers)
            continue
        with name_lock(out, wait=False) as got:
            if got:
                removed += _sweep_name(out, leftovers)
    return removed


# renameat2(2) flags; glibc >= 2.28 exports the function (Linux >= 3.15)
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def renameat2(src: Path, dst: Path, flags: int) -> bool:
    """rename with ``flags``; False where the system or the file system lacks it."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), ctypes.c_uint(flags)) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))
