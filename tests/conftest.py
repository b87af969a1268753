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


#: a PostgreSQL database we may CREATE DATABASE from (default: the local trust-auth server)
PG_ADMIN_URL = os.environ.get("SYNTHLOOP_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def _pg_admin():
    """An AUTOCOMMIT engine on the admin database, or a skip saying so where no server
    answers (the suite still passes on a laptop or CI machine without PostgreSQL)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                           connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        where = make_url(PG_ADMIN_URL).render_as_string(hide_password=True)
        pytest.skip(f"PostgreSQL at {where} is unreachable ({str(exc.orig).splitlines()[0]}); "
                    "set SYNTHLOOP_TEST_POSTGRES_URL to run the PostgreSQL tests")
    yield engine
    engine.dispose()


@pytest.fixture
def fresh_pg_database(_pg_admin):
    """``make(prefix)`` -> URL of a new, uniquely named database; all dropped (with any
    connection still open) after the test."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    made = []

    def make(prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex}"
        with _pg_admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    with _pg_admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
