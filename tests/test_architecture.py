"""House rules from DESIGN.md that code review alone would let slip."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the subprocesses import this checkout's packages (the ones _modules lists), not whatever
# an editable install of the interpreter points at (another checkout or worktree)
IMPORT_PATH = {"PYTHONPATH": str(REPO)}
PURE = ("synth", "realdata", "models", "analysis")
FORBIDDEN = ("prefect", "mlflow", "optuna", "great_expectations")


def _modules(pkg: str) -> list[str]:
    return sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / pkg).rglob("*.py")
    )


def test_pure_packages_import_no_orchestration_or_tracking(tmp_path):
    mods = [m for pkg in PURE for m in _modules(pkg)]
    assert len(mods) > 5
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = sorted({{k.split('.')[0] for k in sys.modules}} & set({FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         check=True, env={**os.environ, **IMPORT_PATH})
    assert out.stdout.strip() == "", f"pure packages pulled in: {out.stdout}"


def test_importing_has_no_side_effects(tmp_path, tmp_path_factory):
    mods = [m for pkg in (*PURE, "synthloop", "expectations", "tasks", "flows") for m in _modules(pkg)]
    code = f"import importlib\nfor m in {mods!r}: importlib.import_module(m)\n"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **IMPORT_PATH,
           # Prefect creates its own home on import: that one is Prefect's, put elsewhere
           "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect"))}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, env=env)
    created = sorted(p.name for p in tmp_path.iterdir())
    assert created == [], f"importing created {created}"
