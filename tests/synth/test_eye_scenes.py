"""The torch-free half of the eye generator: the settings a batch records (and its id
hashes) are the renderer's own, and a device the renderer cannot use is refused by name."""

import subprocess
import sys

import pytest

from realdata.errors import UsageError
from synth.eye_distribution import default_eye_distribution
from synth.eye_scenes import device_type, generator_settings


@pytest.mark.parametrize("device,compiled", [("cpu", False), ("cpu", True), ("cuda", False), ("cuda:1", True)])
def test_settings_are_the_renderers_own(device, compiled):
    from synth.eye_generator import EyeGenerator

    gen = EyeGenerator(default_eye_distribution(), device=device, compiled=compiled)
    assert generator_settings(device, compiled) == gen.settings
    assert gen.settings["device_type"] == device.split(":")[0]


def test_a_device_the_renderer_cannot_use_is_refused_by_name():
    from synth.eye_generator import EyeGenerator

    for bad in ("tpu", "cpux", ""):
        with pytest.raises(UsageError, match=f"device '{bad}'"):
            device_type(bad)
    with pytest.raises(UsageError, match="device 'mps'"):
        EyeGenerator(default_eye_distribution(), device="mps")


def test_planning_a_batch_does_not_import_torch():
    code = ("import sys\n"
            "from synth.generate import planned_batch_id\n"
            "print(planned_batch_id(n=50_000, seed=3))\n"
            "print('torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    planned, torch_loaded = r.stdout.split()
    assert torch_loaded == "False"
    from synth.eye_generator import EyeGenerator
    from synth.shards import batch_id_for

    dist = default_eye_distribution()  # 50,000 >= AUTO_COMPILE_MIN: the renderer compiles
    assert planned == batch_id_for(dist.id, 3, 50_000, EyeGenerator(dist, compiled=True).settings)
