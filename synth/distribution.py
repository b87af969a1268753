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
import numbers
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from realdata.errors import one_line, shown

FactorKind = Literal["continuous", "categorical"]
FACTOR_KINDS = ("continuous", "categorical")

#: Largest image side the renderers are asked for: their camera operators are dense
#: (side x side) matrices per sample, so 100,000 would need ~80 GB before the first pixel.
MAX_IMAGE_SIDE = 1024
IMAGE_CHANNELS = (1, 3)  # grayscale (MPIIGaze) or RGB
IMAGE_CENTRES = ("eyeball", "corners", "outline")
#: More bins than any factor needs (the defaults have at most 16); a bound keeps a
#: hand-edited file from asking for millions of bins that no batch could fill.
MAX_BINS = 1000

#: The keys a distribution file has, at each level (anything else is a typo or junk).
DISTRIBUTION_KEYS = ("name", "task", "image", "factors", "parent", "reason", "id")
FACTOR_KEYS = ("name", "kind", "weights", "edges", "values", "unit", "doc")
IMAGE_KEYS = ("height", "width", "channels", "centre")


def _is_number(x: Any) -> bool:
    """A real number as JSON or numpy gives it; bool is an int in Python but not a number here."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool | np.bool_)


def _numbers(xs: Any, what: str, most: int = MAX_BINS) -> np.ndarray:
    """A 1-d float64 array from a list of real numbers; a ValueError says which entry is not one."""
    if isinstance(xs, str | bytes | Mapping) or not isinstance(xs, Iterable):
        raise ValueError(f"{what} must be a list of numbers, got {type(xs).__name__}")
    xs = list(xs)
    if len(xs) > most:
        raise ValueError(f"{what}: {len(xs)} entries, at most {most} are allowed")
    for i, x in enumerate(xs):
        if not _is_number(x):
            raise ValueError(f"{what}[{i}] is {shown(x, 40)}, not a number")
    try:
        return np.asarray([float(x) for x in xs], dtype=np.float64)
    except OverflowError:  # an integer too large for a float
        raise ValueError(f"{what}: a number too large for a float") from None


def _normalise(weights: Iterable[float]) -> tuple[float, ...]:
    """Weights as probabilities. A ValueError names the first bad entry (never prints the
    whole array: messages stay one line); the caller adds the factor's name."""
    w = _numbers(weights, "weights")
    if len(w) == 0:
        raise ValueError("weights: need at least one")
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"weights[{i}] is {w[i]:g}: weights must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        raise ValueError("weights are all zero: at least one must be positive")
    if not np.isfinite(total):
        raise ValueError("weights too large: their sum is not a finite number")
    # Rounded so that JSON round-trips give the same hash. Weights that already sum to 1
    # (a distribution read back from JSON) are not divided again: the rounded values sum to
    # 1 only within ~1e-11, and dividing by that sum could move a large weight across a
    # rounding boundary, so the same content would get another id on every reload.
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
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"factor name must be a non-empty string, got {shown(self.name, 40)}")
        try:
            self._check_and_normalise()
        except ValueError as e:
            raise ValueError(f"factor {shown(self.name, 40)}: {e}") from None

    def _check_and_normalise(self) -> None:
        if self.kind not in FACTOR_KINDS:
            raise ValueError(f"unknown kind {shown(self.kind, 40)} (known: {', '.join(FACTOR_KINDS)})")
        for text in ("unit", "doc"):
            if not isinstance(getattr(self, text), str):
                raise ValueError(f"{text} must be a string, got {shown(getattr(self, text), 40)}")
        object.__setattr__(self, "weights", _normalise(self.weights))
        k = len(self.weights)
        if self.kind == "continuous":
            e = _numbers(self.edges, "edges", MAX_BINS + 1)
            if len(e) != k + 1:
                raise ValueError(f"need len(weights)+1 = {k + 1} increasing edges, got {len(e)}")
            if not np.all(np.isfinite(e)):
                raise ValueError("edges must be finite numbers")
            if not np.all(np.diff(e) > 0):
                i = int(np.flatnonzero(np.diff(e) <= 0)[0])
                raise ValueError(f"need len(weights)+1 increasing edges: edges[{i + 1}] = "
                                 f"{e[i + 1]:g} is not above edges[{i}] = {e[i]:g}")
            object.__setattr__(self, "edges", tuple(float(x) for x in e))
        else:
            v = _numbers(self.values, "values")
            if len(v) != k:
                raise ValueError(f"need one weight per value: {k} weights, {len(v)} values")
            if not np.all(np.isfinite(v)):
                raise ValueError("values must be finite numbers")
            if len(np.unique(v)) != len(v):
                raise ValueError("values must be distinct")
            object.__setattr__(self, "values", tuple(float(x) for x in v))

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
        """A factor as ``to_json`` writes it; a ValueError names the factor and what is wrong."""
        if not isinstance(d, Mapping):
            raise ValueError(f"each factor must be a JSON object, got {shown(d, 40)}")
        name = d.get("name")
        where = f"factor {shown(name, 40)}" if isinstance(name, str) else "a factor"
        _no_unknown_keys(d, FACTOR_KEYS, where)
        for key in ("name", "kind", "weights"):
            if key not in d:
                raise ValueError(f"{where}: missing key {key!r}")
        kind = d["kind"]
        support = "edges" if kind == "continuous" else "values"
        other = "values" if kind == "continuous" else "edges"
        if kind in FACTOR_KINDS and support not in d:
            raise ValueError(f"{where}: missing key {support!r} ({kind} factors need {support})")
        if kind in FACTOR_KINDS and other in d:
            raise ValueError(f"{where}: {kind} factors have {support!r}, not {other!r}")
        return cls(
            name=name,
            kind=kind,
            weights=d["weights"],
            edges=d.get("edges", ()),
            values=d.get("values", ()),
            unit=d.get("unit", ""),
            doc=d.get("doc", ""),
        )


def _no_unknown_keys(d: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(k) for k in d if k not in known)
    if unknown:
        raise ValueError(f"{where}: unknown key {shown(unknown[0], 40)} (known: {', '.join(known)})")


@dataclass(frozen=True)
class ImageSpec:
    height: int = 36
    width: int = 60
    channels: int = 1  # 1 = grayscale (MPIIGaze), 3 = RGB
    # what an eye patch is centred on: "eyeball" (its centre), "corners" (the midpoint of
    # the eye corners, as MPIIGaze normalisation centres real eyes) or "outline" (the
    # mean of six points on the eye outline, as crops made from 68-point landmarks are)
    centre: str = "eyeball"

    def __post_init__(self) -> None:
        """Checked here, not by the renderer: a height of 0 or 7 channels would otherwise
        surface as a torch error deep inside rendering, naming neither file nor field."""
        for side in ("height", "width"):
            v = getattr(self, side)
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or not 1 <= v <= MAX_IMAGE_SIDE:
                raise ValueError(f"image.{side} must be a whole number of pixels from 1 to "
                                 f"{MAX_IMAGE_SIDE}, got {shown(v, 40)}")
        if not isinstance(self.channels, numbers.Integral) or self.channels not in IMAGE_CHANNELS:
            raise ValueError(f"image.channels must be 1 (grayscale) or 3 (RGB), got {shown(self.channels, 40)}")
        if not isinstance(self.centre, str) or self.centre not in IMAGE_CENTRES:
            raise ValueError(f"image centre must be one of {', '.join(IMAGE_CENTRES)}, got "
                             f"{shown(self.centre, 40)}")

    @classmethod
    def from_json(cls, d: Any) -> ImageSpec:
        if not isinstance(d, Mapping):
            raise ValueError(f"image must be a JSON object with height, width and channels, got {shown(d, 40)}")
        _no_unknown_keys(d, IMAGE_KEYS, "image")
        return cls(**d)

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
    #: The file it was read from (:func:`read_distribution`), so that a task's generator
    #: can name the file when it refuses the distribution. Not content: not in the id,
    #: not compared, and a derived version has none.
    source: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for key in ("name", "task"):
            if not isinstance(getattr(self, key), str):
                raise ValueError(f"{key} must be a string, got {shown(getattr(self, key), 40)}")
        for key in ("parent", "reason"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                raise ValueError(f"{key} must be a string or null, got {shown(getattr(self, key), 40)}")
        twice = sorted(n for n, k in Counter(f.name for f in self.factors).items() if k > 1)
        if twice:
            raise ValueError(f"factor {shown(twice[0], 40)} appears more than once")

    def error(self, problem: str) -> Exception:
        """The error to raise when a task refuses this distribution: it names the file the
        distribution was read from where there is one, else the distribution's id."""
        from realdata.errors import DataFormatError, UsageError

        if self.source is not None:
            return DataFormatError(self.source, problem)
        return UsageError(f"distribution {self.id} ({self.name}): {problem}")

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
        """A distribution as ``dumps`` writes it. Any problem is a ValueError that says
        what is wrong and where (a factor's name, an image field), in one line."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a distribution is a JSON object, got {shown(d, 40)}")
        _no_unknown_keys(d, DISTRIBUTION_KEYS, "distribution")
        for key in ("name", "task", "factors"):
            if key not in d:
                raise ValueError(f"missing key {key!r}")
        if not isinstance(d["factors"], list):
            raise ValueError(f"factors must be a list of factors, got {shown(d['factors'], 40)}")
        dist = cls(
            name=d["name"],
            task=d["task"],
            factors=tuple(Factor.from_json(f) for f in d["factors"]),
            image=ImageSpec.from_json(d.get("image", {})),
            parent=d.get("parent"),
            reason=d.get("reason"),
        )
        if "id" in d and d["id"] != dist.id:
            raise ValueError(_stale_id_message(d["id"], dist.id))
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
        return replace(self, parent=self.id, reason=reason, source=None, **changes)

    def reweight(
        self, factor: str, multipliers: Iterable[float], reason: str, floor: float = 0.01
    ) -> SceneDistribution:
        """Multiply one factor's bin weights, renormalise, and keep every bin of its support
        (the bins with positive weight) above ``floor`` (as a probability), so that no region
        of the support ever dies. A bin the factor gives no weight stays at zero: whoever
        wrote the distribution left it out, and no update brings it back."""
        f = self.factor(factor)
        m = np.asarray(list(multipliers), dtype=np.float64)
        if m.shape != (f.n_bins,) or np.any(m < 0) or not np.all(np.isfinite(m)):
            raise ValueError(f"need {f.n_bins} finite non-negative multipliers for {factor!r}")
        support = np.asarray(f.weights) > 0
        k = int(support.sum())
        w = np.asarray(f.weights) * m
        w = w / w.sum() if w.sum() > 0 else support / k
        if floor * k >= 1:
            raise ValueError(f"floor {floor} too high for the {k} bins of {factor!r} with weight")
        # Mixing with the uniform over the support keeps the ranking and lifts the smallest
        # bin of the support to the floor.
        low = w[support].min()
        lam = 0.0 if low >= floor else (floor - low) / (1.0 / k - low)
        w = np.where(support, (1 - lam) * w + lam / k, 0.0)
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



def _stale_id_message(stated: Any, actual: str) -> str:
    """Ids name content (lineage, batch ids), so an edited file cannot keep its old one;
    the message says how to fix the file (an export edited by hand is the usual case)."""
    stated = json.dumps(stated) if isinstance(stated, str) and len(stated) < 40 else shown(stated, 40)
    return (f"\"id\": {stated} does not match the content, which was edited (the id "
            f"of this content is {actual}): an edited distribution is a new one, so delete the "
            f"\"id\" line or set it to \"{actual}\"")


def read_distribution(path: str | Path) -> SceneDistribution:
    """A distribution JSON file; a missing or invalid file raises DataFormatError naming it,
    with the problem in one line. The distribution remembers the file (``source``), so a
    task that refuses it later (an unknown factor, a support no scene can have) names it too."""
    from realdata.errors import DataFormatError

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(p, "file not found") from None
    except UnicodeDecodeError:
        raise DataFormatError(p, "not a scene distribution (not UTF-8 text)") from None
    except OSError as e:
        raise DataFormatError(p, f"cannot be read ({e.strerror or e})") from None
    try:
        d = json.loads(text)
    except RecursionError:
        raise DataFormatError(p, "not a valid scene distribution (JSON nested too deeply)") from None
    except ValueError as e:
        raise DataFormatError(p, f"not valid JSON ({one_line(e)})") from None
    try:
        return replace(SceneDistribution.from_json(d), source=p)
    except (ValueError, TypeError) as e:
        raise DataFormatError(p, f"not a valid scene distribution ({one_line(e)})") from None
