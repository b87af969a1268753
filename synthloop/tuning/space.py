"""What a tuning study searches and what it optimises: the one place method search
spaces and objective names are written (the command line, the flow's form and the study
read them here; importing this module costs nothing)."""

from __future__ import annotations

import hashlib
import json

from realdata.errors import UsageError

__all__ = ["OBJECTIVES", "OBJECTIVE_NAMES", "SEARCH_SPACES", "default_objective", "study_name",
           "suggest", "target_fingerprint"]

#: Search space per method: parameter -> (kind, low, high); ``log`` = log-uniform.
SEARCH_SPACES: dict[str, dict[str, tuple[str, float, float]]] = {
    "source_only": {"lr": ("log", 3e-4, 1e-2), "weight_decay": ("log", 1e-4, 0.1)},
    "dann": {"lr": ("log", 3e-4, 1e-2), "weight_decay": ("log", 1e-4, 0.1),
             "trade_off": ("log", 0.05, 3.0), "grl_alpha": ("float", 2.0, 20.0)},
    "daln": {"lr": ("log", 3e-4, 1e-2), "weight_decay": ("log", 1e-4, 0.1),
             "trade_off": ("log", 0.05, 3.0)},
    "iwdan": {"lr": ("log", 3e-4, 1e-2), "weight_decay": ("log", 1e-4, 0.1),
              "trade_off": ("log", 0.05, 3.0), "grl_alpha": ("float", 2.0, 20.0)},
    # trade_off scales rsd's own weight (0.01): 0.001-0.1 in all
    "rsd": {"lr": ("log", 3e-4, 1e-2), "weight_decay": ("log", 1e-4, 0.1),
            "trade_off": ("log", 0.1, 10.0)},
}


#: objective -> (metric key in the evaluation record, direction)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "target_error": ("target_angular_error_deg", "minimize"),
    "source_error": ("source_angular_error_deg", "minimize"),
    "entropy": ("target_entropy", "minimize"),
    "im": ("target_im", "maximize"),
    "snd": ("target_snd", "maximize"),
}

OBJECTIVE_NAMES: tuple[str, ...] = tuple(OBJECTIVES)


def default_objective(eyes) -> str:
    """``target_error`` where the target eyes (:class:`realdata.eyes.EyeImages`) carry
    labels, else ``entropy``."""
    return "target_error" if eyes.pitchyaw is not None else "entropy"


def suggest(trial, method: str) -> dict[str, float]:
    """The trial's training overrides, drawn from :data:`SEARCH_SPACES`."""
    if method not in SEARCH_SPACES:
        raise UsageError(f"no search space for method {method!r}; known: {', '.join(SEARCH_SPACES)}")
    out = {}
    for name, (kind, lo, hi) in SEARCH_SPACES[method].items():
        out[name] = trial.suggest_float(name, lo, hi, log=(kind == "log"))
    return out


def study_name(method: str, source_batch: str, target_fingerprint: str, steps: int,
               objective: str, seed: int, batch_size: int = 64, mirror_eye: str | None = None) -> str:
    """Same method, source batch, target *content*, budget, objective, seed, batch size
    and mirrored eye side: the same study (so it resumes, and workers on other machines,
    where the path differs, join it)."""
    key = json.dumps([method, source_batch, target_fingerprint, steps, objective, seed,
                      batch_size, *([mirror_eye] if mirror_eye else [])])
    return f"gaze-{method}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def target_fingerprint(eyes) -> str:
    """Content hash of target eyes (:class:`realdata.eyes.EyeImages`): images and labels."""
    import numpy as np

    h = hashlib.sha256(np.ascontiguousarray(eyes.images).tobytes())
    if eyes.pitchyaw is not None:
        h.update(np.ascontiguousarray(eyes.pitchyaw).tobytes())
    return h.hexdigest()[:16]

