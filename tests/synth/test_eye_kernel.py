"""The ahead-of-time compiled eye renderer: compiled once into the kernel cache by the
first process that needs it, loaded (not compiled) by the next, with the same bytes; within
one gray level of the renderer torch.compile builds in-process."""

import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # one ahead-of-time compile: a minute or two on 2 cores

RENDER = """
import sys, numpy as np, torch
torch.set_num_threads(1)
from synth.eye_distribution import default_eye_distribution
from synth.eye_generator import EyeGenerator
images, _ = EyeGenerator(default_eye_distribution(), compiled=True).render_all(300, seed=3)
np.save(sys.argv[1], images)
"""

# the same render through torch's own package loader, in place of synth.eye_kernel's
RENDER_WITH_TORCH_LOADER = RENDER.replace(
    "from synth.eye_generator import EyeGenerator",
    "from synth.eye_generator import EyeGenerator\n"
    "import synth.eye_kernel as ek\n"
    "ek.PackagedKernel = lambda path: torch._inductor.aoti_load_package(str(path))")


def _render(out, cache, env_extra=None, script=RENDER):
    import os

    env = {**os.environ, "SYNTHLOOP_KERNEL_CACHE": str(cache), **(env_extra or {})}
    r = subprocess.run([sys.executable, "-c", script, str(out)], env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return np.load(out), r.stderr


def test_compiled_once_then_loaded_with_the_same_bytes(tmp_path):
    cache = tmp_path / "kernels"
    first, err1 = _render(tmp_path / "a.npy", cache)
    assert "compiling the eye renderer for this machine, once" in err1
    assert len(list(cache.glob("eye-render-*.pt2"))) == 1
    second, err2 = _render(tmp_path / "b.npy", cache)
    assert "compiling" not in err2  # loaded from the cache
    assert np.array_equal(first, second)
    # the light loader (no Inductor import, no ISA probe) runs the package as torch's does
    official, _ = _render(tmp_path / "o.npy", cache, script=RENDER_WITH_TORCH_LOADER)
    assert np.array_equal(first, official)

    # a process that exits without running destructors (as synthloop's commands and
    # Dask workers do) leaves nothing in the temporary folder
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    _render(tmp_path / "d.npy", cache, {"TMPDIR": str(scratch)},
            script=RENDER + "import os\nos._exit(0)\n")
    assert list(scratch.iterdir()) == []

    # an unusable cache falls back to torch.compile, says so, and lands within a gray level
    jit, err3 = _render(tmp_path / "c.npy", tmp_path / "not-a-folder.txt",
                        {"SYNTHLOOP_KERNEL_CACHE": str(tmp_path / "a.npy")})
    assert "compiling in this process instead" in err3
    diff = np.abs(first.astype(int) - jit.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
