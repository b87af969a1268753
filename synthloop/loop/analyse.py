"""The round's analysis: where the model fails on the analysis part of the real data
(error slices by label and by image statistics) and the next scene distribution (the
update policy's, in a closed loop; the start distribution, in an open one). Plots go
next to the round's other files."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from synth.distribution import SceneDistribution
from synthloop.loop.config import LoopConfig
from synthloop.loop.real import RealSplit
from synthloop.loop.rounds import ERRORS_FILE, round_dir, round_seed
from synthloop.settings import Settings
from synthloop.taskspec import AnalysisEvidence, get_task

__all__ = ["SYN_STATS_N", "analyse_round", "changed_factors", "next_distribution"]

SYN_STATS_N = 3000  # synthetic images whose statistics the nuisance fit compares with real
PROBE_SALT = 17


def _synthetic_probe(batch_dir: str, n: int, seed: int):
    """Images and factor values of up to ``n`` samples of the round's batch."""
    from synth.shards import BatchReader

    r = BatchReader(batch_dir, verify=False)
    idx = np.sort(np.random.default_rng([seed, PROBE_SALT]).choice(r.n, size=min(n, r.n),
                                                                   replace=False))
    meta = r.metadata.iloc[idx]
    values = {f: meta[f].to_numpy(np.float64) for f in r.distribution.factor_names if f in meta}
    return r.images(idx), values


def analyse_round(settings: Settings, cfg: LoopConfig, *, lid: str, k: int,
                  dist: SceneDistribution, dist0: SceneDistribution, batch_dir: str,
                  real: RealSplit) -> dict[str, Any]:
    """Slices of the analysis part's errors and the next distribution; returns
    ``next_distribution``, the update ``report``, ``slices``, ``worst_slices``, ``plots``
    and ``n_analysis``."""
    from analysis.image_stats import image_statistics_table
    from analysis.plots import distribution_change, slice_error_bars
    from analysis.slices import slice_errors, worst

    d = round_dir(settings, lid, k)
    errors = np.load(d / ERRORS_FILE)["errors"][real.analysis]
    real_stats = image_statistics_table(real.images[real.analysis])
    evidence = get_task(cfg.task).analysis_evidence(real, real.analysis)
    observed = {**evidence.observed, **{name: np.asarray(v) for name, v in real_stats.items()}}
    slices = slice_errors(errors, observed)
    worst_slices = worst(slices, k=5, min_n=max(10, len(errors) // 50))

    probe = partial(_synthetic_probe, batch_dir, SYN_STATS_N, round_seed(cfg, k, 2))
    new, report = next_distribution(cfg, dist, dist0, errors, evidence, real_stats, probe)
    plots = {"slices": d / "slice_errors.png", "distribution": d / "distribution_change.png"}
    distribution_change(dist, new, changed_factors(dist, new, fallback=evidence.label_factors),
                        path=plots["distribution"], title=f"round {k}: {dist.id} -> {new.id}")
    slice_error_bars(slices, plots["slices"], ylabel=f"error ({cfg.error_unit})",
                     title=f"round {k}: real error by slice (analysis part)")
    return {"next_distribution": new, "report": report, "slices": slices,
            "worst_slices": worst_slices, "plots": {name: str(p) for name, p in plots.items()},
            "n_analysis": int(len(errors))}


def next_distribution(cfg: LoopConfig, dist: SceneDistribution, dist0: SceneDistribution,
                      errors: np.ndarray, evidence: AnalysisEvidence, real_stats: dict[str, np.ndarray],
                      probe: Callable[[], tuple[np.ndarray, dict[str, np.ndarray]]]
                      ) -> tuple[SceneDistribution, dict[str, Any]]:
    """The distribution the next round draws from, and the update's report: the start
    distribution in an open loop; in a closed one the update policy's child of ``dist``,
    from the analysis part's ``errors`` (label factors) and, unless ``cfg.update`` is
    ``"labels"``, the real images' statistics against those of a synthetic ``probe`` of
    the round's batch (images and factor values; drawn only when needed)."""
    from analysis.image_stats import image_statistics_table
    from analysis.update_policy import UpdatePolicy, update_distribution

    if cfg.open_loop:
        return dist0, {"mode": "open", "changes": {}}
    nuisance = None
    if cfg.fits_appearance:
        syn_imgs, syn_values = probe()
        nuisance = {"syn_factor_values": syn_values, "syn_stats": image_statistics_table(syn_imgs),
                    "real_stats": real_stats, "mapping": evidence.nuisance}
    new, report = update_distribution(
        dist, errors=errors, real_values=evidence.real_values,
        label_factors=evidence.label_factors, nuisance=nuisance,
        policy=UpdatePolicy(step=cfg.policy_step))
    return new, {"mode": "closed", "update": cfg.update or "all", **report}


def changed_factors(a: SceneDistribution, b: SceneDistribution, top: int = 8,
                    fallback: tuple[str, ...] = ("gaze_pitch", "gaze_yaw")) -> list[str]:
    """The factors whose weights moved most (total variation), at most ``top``; the label
    factors first when nothing moved (open loop), so the plot is never empty."""
    moved = []
    for f in a.factors:
        g = b.factor(f.name)
        tv = 0.5 * float(np.abs(np.asarray(f.weights) - np.asarray(g.weights)).sum())
        moved.append((tv, f.name))
    moved.sort(key=lambda t: (-t[0], t[1]))
    names = [n for tv, n in moved if tv > 1e-9][:top]
    return names or list(fallback)
