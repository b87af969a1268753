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
