"""The compiled eye renderer, compiled once per machine rather than once per process.

``torch.compile`` re-traces the renderer in every new process: about 10 s on 2 cores even
with a warm Inductor cache, paid again by every Dask worker and every flow run. Here the
renderer is exported (``torch.export``) and compiled ahead of time with AOTInductor into a
package on disk; loading it takes milliseconds. Its bytes are the same for any thread
count; against the ``torch.compile``'d renderer a few pixels in 100,000 differ by one
gray level (measured: 615 of 43 million), so a machine should not mix the two within
one batch (the fallback below warns).

A package is specific to the renderer's source (with the factor list that orders its
inputs), the torch version, the CPU's instruction set, the thread count (Inductor bakes
it into the kernels), the batch size and the image spec, all of which name its file. It
lives in ``$SYNTHLOOP_KERNEL_CACHE`` (default ``~/.cache/synthloop/kernels``); the first
process that needs one compiles it (a minute or two on 2 cores) under a file lock, so
concurrent workers compile it once. Where the
ahead-of-time compile fails, the caller falls back to ``torch.compile``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
import torch.utils._pytree as pytree

from synth.derived_cache import cache_root

_LOADED: dict[str, Callable] = {}
_FAILED: set[str] = set()


def cache_dir() -> Path:
    env = os.environ.get("SYNTHLOOP_KERNEL_CACHE")
    return Path(env).expanduser() if env else cache_root() / "kernels"


def package_key(source: str, batch: int, height: int, width: int, channels: int, centre: str) -> str:
    return _key(source, batch, height, width, channels, centre, torch.get_num_threads())


@functools.cache
def _key(source: str, batch: int, height: int, width: int, channels: int, centre: str,
         threads: int) -> str:
    h = hashlib.sha256()
    for part in (torch.__version__, torch.backends.cpu.get_cpu_capability(), str(threads), source,
                 f"{batch}x{height}x{width}x{channels}:{centre}"):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def packaged_renderer(render: Callable, example: tuple, *, source: str, batch: int, height: int,
                      width: int, channels: int, centre: str) -> Callable | None:
    """``render(f, noise, pal)`` compiled ahead of time for these shapes (CPU), loaded from
    the cache or compiled into it first; None where that is impossible here. ``source``
    fingerprints the renderer's code (:func:`synth.derived_cache.source_fingerprint`)."""
    key = package_key(source, batch, height, width, channels, centre)
    if key in _LOADED:
        return _LOADED[key]
    if key in _FAILED:
        return None
    path = cache_dir() / f"eye-render-{key}.pt2"
    try:
        if not path.is_file():
            _compile_into(path, render, example)
        loaded = PackagedKernel(path)
    except Exception as e:  # no compiler, an unwritable cache, an export torch cannot do
        _FAILED.add(key)
        print(f"synthloop: the ahead-of-time compiled eye renderer is unavailable "
              f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
              "compiling in this process instead", file=sys.stderr)
        return None
    _LOADED[key] = loaded
    return loaded


class PackagedKernel:
    """A package's kernel, called like the function it was exported from.

    ``torch._inductor.aoti_load_package`` does the same through torch's archive reader,
    which imports Inductor and Dynamo (~1.3 s) and asks Inductor which vector ISA the CPU
    has, which Inductor answers by compiling a test program per ISA and loading it in a
    child interpreter (~1.2 s): together most of a Dask worker's start-up (measured). The
    C++ loader under it needs neither; the package's key already names this CPU's
    capability, the question the probe answers.
    """

    def __init__(self, path: Path):
        self._loader = _load_unpacked_elsewhere(path)
        in_spec, out_spec = self._loader.get_call_spec()
        self._in_spec = pytree.treespec_loads(in_spec)
        self._out_spec = pytree.treespec_loads(out_spec)

    def __call__(self, *args):
        flat, spec = pytree.tree_flatten((args, {}))
        if spec != self._in_spec:  # else tensors would bind to the wrong inputs silently
            raise ValueError(f"inputs do not match the package's signature: {spec} vs {self._in_spec}")
        out = self._loader.boxed_run([x for x in flat if isinstance(x, torch.Tensor)])
        return pytree.tree_unflatten(out, self._out_spec)


def _load_unpacked_elsewhere(path: Path):
    """The C++ loader for ``path``, its unpacked files already deleted.

    The loader unpacks the package (2.7 MB) into a fresh ``$TMPDIR/aotinductor_*`` folder
    that only its destructor removes, and a synthloop process skips the destructors at
    exit (``synthloop.cli.run`` and the Dask workers freeze their objects out of the final
    collection), so every command and worker left one behind (measured: 21 folders after
    ten batches). Unpacked into a scratch ``TMPDIR`` of ours instead, which goes as soon
    as the loader holds what it needs (the shared library is mapped, the constants read),
    nothing is left even by a killed process."""
    tempfile.gettempdir()  # Python's own temporary folder is settled before TMPDIR moves
    scratch = tempfile.mkdtemp(prefix="synthloop-kernel-")
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = scratch
    try:
        return torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
    finally:
        if before is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = before
        shutil.rmtree(scratch, ignore_errors=True)


class _Renderer(torch.nn.Module):
    def __init__(self, render: Callable):
        super().__init__()
        self.render = render

    def forward(self, f, noise, pal):
        return self.render(f, noise, pal)


def _compile_into(path: Path, render: Callable, example: tuple) -> None:
    from synth.output_folder import name_lock

    path.parent.mkdir(parents=True, exist_ok=True)
    with name_lock(path):
        if path.is_file():  # another process compiled it while this one waited
            return
        print(f"synthloop: compiling the eye renderer for this machine, once "
              f"(a minute or two; cached in {path.parent})", file=sys.stderr)
        for attempt in range(COMPILE_ATTEMPTS):
            try:
                _export_and_package(path, render, example)
                return
            except Exception as e:
                if attempt + 1 == COMPILE_ATTEMPTS:
                    raise
                print(f"synthloop: compiling the eye renderer failed ({type(e).__name__}: "
                      f"{str(e).splitlines()[0][:160] if str(e) else ''}); trying again",
                      file=sys.stderr)


#: The export failed now and then inside a Dask worker ("found a fake tensor in the
#: exported program constant's list": 2 of 5 fresh-cache compiles there on 2026-12-04; not
#: seen in a plain process) and succeeded when run again. Its one constant was the JPEG
#: table, then built inside the traced function; it is an input now (synth.camera) and
#: the export has no constants left (tests/synth/test_eye_kernel_export.py). The second
#: try stays: the failure comes within seconds, a compile takes a minute, and the fallback
#: renderer is slower and not byte-identical.
COMPILE_ATTEMPTS = 2


def _export_and_package(path: Path, render: Callable, example: tuple) -> None:
    exported = torch.export.export(_Renderer(render), example, strict=False)
    tmp = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}.pt2")
    try:
        torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
