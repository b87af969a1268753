"""Identities, seeds and files of a loop and its rounds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from synth.distribution import SceneDistribution
from synthloop.loop.config import LoopConfig
from synthloop.loop.real import RealSplit
from synthloop.settings import Settings
from synthloop.taskspec import get_task

__all__ = ["ERRORS_FILE", "fresh_config", "initial_distribution", "loop_id", "round_dir", "round_seed",
           "save_errors"]

ERRORS_FILE = "real_errors.npz"


def loop_id(cfg: LoopConfig, real: RealSplit, dist0: SceneDistribution) -> str:
    """Same config + same real data (by content, not path) + same start distribution =
    same loop, so running the command again resumes it."""
    d = cfg.to_dict()
    d.pop("real")
    d.pop("distribution")
    d.update(real=real.fingerprint, dist0=dist0.id)
    return "loop-" + hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def fresh_config(cfg: LoopConfig, real: RealSplit, is_finished: Callable[[str], bool]) -> LoopConfig:
    """``cfg`` as a new loop: the first restart number whose loop has not finished
    (``is_finished(loop id)``). An interrupted fresh loop is therefore resumed by asking
    for a fresh one again; a finished one is never run twice."""
    from dataclasses import replace

    dist0 = initial_distribution(cfg)
    n = 1
    while is_finished(loop_id(replace(cfg, restart=n), real, dist0)):
        n += 1
    return replace(cfg, restart=n)


def initial_distribution(cfg: LoopConfig) -> SceneDistribution:
    """The distribution JSON the config names, else the task's built-in one."""
    from synth.distribution import read_distribution

    if not cfg.distribution:
        return get_task(cfg.task).default_distribution()
    return read_distribution(cfg.distribution)


def round_seed(cfg: LoopConfig, k: int, stream: int) -> int:
    """The seed of stream ``stream`` in round ``k`` (1: training, 2: the analysis probe,
    3: the label transfer, 100 + attempt: the round's batch)."""
    from models.data import step_seed

    return step_seed(cfg.seed, k, stream) % (2**31)


def round_dir(settings: Settings, lid: str, k: int) -> Path:
    return settings.root / "loops" / lid / f"round-{k:02d}"


def save_errors(settings: Settings, lid: str, k: int, **arrays: np.ndarray) -> str:
    """The round's per-sample predictions and errors (what the analysis reads), written
    whole or not at all: a temporary file renamed into place."""
    d = round_dir(settings, lid, k)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (ERRORS_FILE + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(d / ERRORS_FILE)
    return str(d / ERRORS_FILE)
