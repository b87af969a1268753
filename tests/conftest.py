"""Shared fixtures. Tests never depend on ../shared being present: the few that use real
data skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SYNTHLOOP_SHARED", REPO.parent / "shared"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own SYNTHLOOP_HOME, so nothing touches the user's stores."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SYNTHLOOP_HOME", str(home))
    yield home


@pytest.fixture()
def one_thread():
    """Torch on one thread for the test (tiny models: threads only add overhead)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


#: where the 128-px face sits in the 200x170 "photos" of ``face_data``
FACE_OFFSET = (20.0, 30.0)


@pytest.fixture(scope="module")
def face_data(tmp_path_factory):
    """A 12-face batch of the built-in head (marked accepted: validation has its own
    tests) and a "real" folder of 6 rendered faces pasted into larger JPEGs with .pts
    files, plus one project home for the module (an MLflow database costs seconds)."""
    import numpy as np
    from PIL import Image

    from realdata.landmarks import write_pts
    from synth.face_distribution import default_face_distribution
    from synth.face_fallback import fallback_face_model
    from synth.face_generator import FaceGenerator
    from synth.generate_faces import generate_face_batch
    from synth.shards import write_status
    from synthloop.settings import Settings

    root = tmp_path_factory.mktemp("faces")
    head = fallback_face_model()
    generate_face_batch(root / "batch", n=12, seed=0, model=head, chunk=12)
    write_status(root / "batch", "accepted")
    images, _, labels = FaceGenerator(default_face_distribution(), model=head).render_all(6, seed=5)
    real = root / "real"
    real.mkdir()
    for i in range(6):
        photo = np.full((170, 200, 3), 90, np.uint8)
        photo[30:158, 20:148] = images[i]
        Image.fromarray(photo).save(real / f"image_{i:04d}.jpg", quality=95)
        write_pts(real / f"image_{i:04d}.pts", labels["points68"][i] + np.array(FACE_OFFSET))
    settings = Settings(home=root / "home")
    settings.ensure_home()
    return {"batch": str(root / "batch"), "real": str(real), "root": root, "settings": settings}
