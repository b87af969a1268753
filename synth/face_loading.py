"""Which face model the renderer draws from: the file ``$SYNTHLOOP_FACE_MODEL`` names,
else the converted ICT-FaceKit asset beside the project, else the built-in procedural
head (a fresh clone, tests). ``SYNTHLOOP_FACE_MODEL=builtin`` asks for the built-in head
whatever is on disk."""

from __future__ import annotations

import os
from pathlib import Path

from synth.face_fallback import fallback_face_model
from synth.face_model import ENV_VAR, FaceModel, load_npz_face_model

__all__ = ["BUILTIN", "DEFAULT_PATH", "ENV_VAR", "default_model_path", "load_face_model"]

#: ``SYNTHLOOP_FACE_MODEL=builtin``: use the built-in procedural head, whatever is on disk.
BUILTIN = "builtin"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = REPO_ROOT.parent / "shared" / "assets" / "ict-facekit" / "ict_facekit.npz"


def default_model_path() -> Path | None:
    """``$SYNTHLOOP_FACE_MODEL`` if set, else the shared ICT asset if it exists, else None
    (None = the built-in head; ``SYNTHLOOP_FACE_MODEL=builtin`` asks for it explicitly)."""
    env = os.environ.get(ENV_VAR)
    if env == BUILTIN:
        return None
    if env:
        return Path(env)
    return DEFAULT_PATH if DEFAULT_PATH.is_file() else None


def load_face_model(path: str | Path | None = None) -> FaceModel:
    """Load a converted face model (npz). ``path=None`` uses ``default_model_path()`` and,
    when nothing is there, the built-in procedural head. A named file that is missing or
    malformed raises DataFormatError saying how to obtain it."""
    if path is None:
        path = default_model_path()
        if path is None:
            return fallback_face_model()
    return load_npz_face_model(Path(path))
