"""Versioned scene distributions: the explicit, re-weightable source of every synthetic batch.

A distribution is a tuple of independent factors. Each factor has bounded support and a
piecewise-constant density over its bins (continuous factors) or a probability per value
(categorical factors). The feedback loop changes a distribution only by re-weighting bins,
so every version stays inside the support it started with.

Distributions are immutable and identified by a content hash of their canonical JSON,
so the same content always has the same id, and a derived version names its parent and
the reason it was derived (the slices and numbers that caused it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

FactorKind = Literal["continuous", "categorical"]


def _normalise(weights: Iterable[float]) -> tuple[float, ...]:
    w = np.asarray(list(weights), dtype=np.float64)
    if w.ndim != 1 or len(w) == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"bin weights must be finite, non-negative and not all zero: {w}")
    # Rounded so that JSON round-trips give the same hash. Weights that already sum to 1
    # (a distribution read back from JSON) are not divided again: the rounded values sum to
    # 1 only within ~1e-11, and dividing by that sum could move a large weight across a
    # rounding boundary, so the same content would get another id on every reload.
    total = w.sum()
    if abs(total - 1.0) > 1e-9:
        w = w / total
    return tuple(float(round(x, 12)) for x in w)


@dataclass(frozen=True)
class Factor:
    """One scene factor: bounded support plus a density that can be re-weighted per bin.

    continuous: ``edges`` are the K+1 increasing bin edges (support = [edges[0], edges[-1]]),
    and a value is drawn by picking a bin by its weight, then uniformly inside the bin.
    categorical: ``values`` are the K allowed values, drawn with probability ``weights``.
    """

    name: str
    kind: FactorKind
    weights: tuple[float, ...]
    edges: tuple[float, ...] = ()
    values: tuple[float, ...] = ()
    unit: str = ""
    doc: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", _normalise(self.weights))
        if self.kind == "continuous":
            e = np.asarray(self.edges, dtype=np.float64)
            if len(e) != len(self.weights) + 1 or not np.all(np.diff(e) > 0):
                raise ValueError(f"factor {self.name!r}: need len(weights)+1 increasing edges")
            object.__setattr__(self, "edges", tuple(float(x) for x in e))
        elif self.kind == "categorical":
            if len(self.values) != len(self.weights):
                raise ValueError(f"factor {self.name!r}: need one weight per value")
            object.__setattr__(self, "values", tuple(float(x) for x in self.values))
        else:
            raise ValueError(f"factor {self.name!r}: unknown kind {self.kind!r}")

    @classmethod
    def uniform(cls, name: str, lo: float, hi: float, bins: int = 8, **kw: Any) -> Factor:
        return cls(name, "continuous", (1.0,) * bins, tuple(np.linspace(lo, hi, bins + 1)), **kw)

    @classmethod
    def shaped(
        cls, name: str, lo: float, hi: float, bins: int, centre: float, spread: float, **kw: Any
    ) -> Factor:
        """Bins weighted by a Gaussian bump (truncated to the support): a soft prior that
        still gives every bin mass, so re-weighting can raise any of them later."""
        edges = np.linspace(lo, hi, bins + 1)
        mids = 0.5 * (edges[:-1] + edges[1:])
        w = np.exp(-0.5 * ((mids - centre) / spread) ** 2) + 0.02
        return cls(name, "continuous", tuple(w), tuple(edges), **kw)

    @classmethod
    def categorical(cls, name: str, values: Mapping[float, float], **kw: Any) -> Factor:
        return cls(name, "categorical", tuple(values.values()), values=tuple(values.keys()), **kw)

    @property
    def n_bins(self) -> int:
        return len(self.weights)

    @property
    def support(self) -> tuple[float, float]:
        if self.kind == "continuous":
            return self.edges[0], self.edges[-1]
        return min(self.values), max(self.values)

    def bin_index(self, x: np.ndarray) -> np.ndarray:
        """Bin of each value; -1 for values outside the support (or not an allowed value)."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "continuous":
            e = np.asarray(self.edges)
            idx = np.searchsorted(e, x, side="right") - 1
            idx = np.where(x == e[-1], len(self.weights) - 1, idx)  # closed upper edge
            ok = np.isfinite(x) & (x >= e[0]) & (x <= e[-1])
            return np.where(ok, idx, -1)
        v = np.asarray(self.values)
        match = np.isclose(x[..., None], v, rtol=0, atol=1e-9)
        return np.where(match.any(-1), match.argmax(-1), -1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        k = rng.choice(self.n_bins, size=n, p=np.asarray(self.weights))
        if self.kind == "categorical":
            return np.asarray(self.values)[k]
        e = np.asarray(self.edges)
        return e[k] + rng.random(n) * (e[k + 1] - e[k])

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "weights": list(self.weights)}
        if self.kind == "continuous":
            d["edges"] = list(self.edges)
        else:
            d["values"] = list(self.values)
        d["unit"], d["doc"] = self.unit, self.doc
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Factor:
        return cls(
            name=d["name"],
            kind=d["kind"],
            weights=tuple(d["weights"]),
            edges=tuple(d.get("edges", ())),
            values=tuple(d.get("values", ())),
            unit=d.get("unit", ""),
            doc=d.get("doc", ""),
        )


@dataclass(frozen=True)
class ImageSpec:
    height: int = 36
    width: int = 60
    channels: int = 1  # 1 = grayscale (MPIIGaze), 3 = RGB
    # what an eye patch is centred on: "eyeball" (its centre) or "corners" (the midpoint of
    # the eye corners, as landmark-based crops and MPIIGaze normalisation centre real eyes)
    centre: str = "eyeball"

    def __post_init__(self) -> None:
        if self.centre not in ("eyeball", "corners"):
            raise ValueError(f"image centre must be 'eyeball' or 'corners', got {self.centre!r}")

    def to_json(self) -> dict[str, Any]:
        """The centre only where it is not the eyeball: distributions written before it
        existed keep their ids."""
        d: dict[str, Any] = {"height": self.height, "width": self.width, "channels": self.channels}
        if self.centre != "eyeball":
            d["centre"] = self.centre
        return d


@dataclass(frozen=True)
class SceneDistribution:
    """An immutable, hashable description of what a generator draws from."""

    name: str
    task: str
    factors: tuple[Factor, ...]
    image: ImageSpec = field(default_factory=ImageSpec)
    parent: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        names = [f.name for f in self.factors]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate factor names in {names}")

    # --- identity -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "image": self.image.to_json(),
            "factors": [f.to_json() for f in self.factors],
            "parent": self.parent,
            "reason": self.reason,
        }

    def canonical_json(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @property
    def id(self) -> str:
        """Content hash: the same content (parent and reason included) gives the same id."""
        return "dist-" + hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]

    def dumps(self) -> str:
        d = self.to_json()
        d["id"] = self.id
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SceneDistribution:
        dist = cls(
            name=d["name"],
            task=d["task"],
            factors=tuple(Factor.from_json(f) for f in d["factors"]),
            image=ImageSpec(**d.get("image", {})),
            parent=d.get("parent"),
            reason=d.get("reason"),
        )
        if "id" in d and d["id"] != dist.id:
            raise ValueError(f"distribution id {d['id']} does not match its content ({dist.id})")
        return dist

    @classmethod
    def loads(cls, text: str) -> SceneDistribution:
        return cls.from_json(json.loads(text))

    # --- access ---------------------------------------------------------------------
    @property
    def factor_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.factors)

    def factor(self, name: str) -> Factor:
        for f in self.factors:
            if f.name == name:
                return f
        raise KeyError(f"no factor {name!r} in distribution {self.name} ({self.id})")

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Draw n scenes; factors are independent and drawn in their declared order."""
        return {f.name: f.sample(rng, n) for f in self.factors}

    # --- derivation -----------------------------------------------------------------
    def derive(self, reason: str, **changes: Any) -> SceneDistribution:
        """A child version: ``changes`` replace fields; parent and reason are recorded."""
        return replace(self, parent=self.id, reason=reason, **changes)

    def reweight(
        self, factor: str, multipliers: Iterable[float], reason: str, floor: float = 0.01
    ) -> SceneDistribution:
        """Multiply one factor's bin weights, renormalise, and keep every bin above ``floor``
        (as a probability), so that no region of the support ever dies."""
        f = self.factor(factor)
        m = np.asarray(list(multipliers), dtype=np.float64)
        if m.shape != (f.n_bins,) or np.any(m < 0) or not np.all(np.isfinite(m)):
            raise ValueError(f"need {f.n_bins} finite non-negative multipliers for {factor!r}")
        w = np.asarray(f.weights) * m
        w = w / w.sum() if w.sum() > 0 else np.full(f.n_bins, 1.0 / f.n_bins)
        if floor * f.n_bins >= 1:
            raise ValueError(f"floor {floor} too high for {f.n_bins} bins")
        # Mixing with the uniform keeps the ranking and lifts the smallest bin to the floor.
        lam = 0.0 if w.min() >= floor else (floor - w.min()) / (1.0 / f.n_bins - w.min())
        w = (1 - lam) * w + lam / f.n_bins
        new = replace(f, weights=tuple(w))
        factors = tuple(new if g.name == factor else g for g in self.factors)
        return self.derive(reason, factors=factors)


def coverage_pvalues(dist: SceneDistribution, samples: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Chi-square goodness-of-fit p-value of each factor's empirical bin histogram against
    the distribution's bin probabilities. Values outside the support give p = 0."""
    from scipy.stats import chi2

    out: dict[str, float] = {}
    for f in dist.factors:
        idx = f.bin_index(np.asarray(samples[f.name]))
        n = len(idx)
        if n == 0 or np.any(idx < 0):
            out[f.name] = 0.0
            continue
        counts = np.bincount(idx, minlength=f.n_bins).astype(np.float64)
        expected = n * np.asarray(f.weights)
        stat = float(np.sum((counts - expected) ** 2 / np.maximum(expected, 1e-12)))
        out[f.name] = float(chi2.sf(stat, df=max(f.n_bins - 1, 1)))
    return out



def read_distribution(path: str | Path) -> SceneDistribution:
    """A distribution JSON file; a missing or invalid file raises DataFormatError naming it."""
    from realdata.errors import DataFormatError

    p = Path(path)
    try:
        return SceneDistribution.loads(p.read_text())
    except FileNotFoundError:
        raise DataFormatError(p, "file not found") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DataFormatError(p, f"not a valid scene distribution ({e})") from None
