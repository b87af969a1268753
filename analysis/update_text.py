"""The distribution update told for people: one line per factor that moved, in the
factor's display unit (degrees for angles, which the distribution stores in radians),
shares as percentages and errors in the task's unit.

:func:`analysis.update_policy.update_distribution`'s ``reason`` stays the short, exact
string that is part of the distribution's record; this is what dashboards show beside
tables in degrees."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from synth.distribution import Factor, SceneDistribution

__all__ = ["describe_update", "display_value"]

#: factor unit -> (display unit, scale from the stored value)
_DISPLAY = {"rad": ("deg", math.degrees(1.0))}


def display_value(f: Factor, value: float) -> str:
    """``value`` of factor ``f`` in its display unit, e.g. ``-22.5 deg``, ``3 mm``, ``0.4``."""
    unit, scale = _DISPLAY.get(f.unit or "", (f.unit or "", 1.0))
    text = f"{value * scale:.3g}"
    return f"{text} {unit}" if unit else text


def _bin(f: Factor, b: int) -> str:
    if f.kind == "continuous":
        lo, hi = f.edges[b], f.edges[b + 1]
        unit, scale = _DISPLAY.get(f.unit or "", (f.unit or "", 1.0))
        span = f"{lo * scale:.3g} to {hi * scale:.3g}"
        return f"{span} {unit}" if unit else span
    return f"= {display_value(f, f.values[b])}"


def describe_update(dist: SceneDistribution, report: Mapping[str, Any], error_unit: str,
                    max_lines: int = 6) -> list[str]:
    """Markdown bullet lines for the factors of ``report`` (from ``dist``) that moved,
    largest change first; one closing line counts those left unchanged."""
    changes = list(report.get("factors", {}).values())
    moved = sorted((c for c in changes if c["skipped"] is None and c["tv"] > 1e-9),
                   key=lambda c: (-c["tv"], c["factor"]))
    if not moved:
        return ["- no factor moved (open loop, or nothing to learn from this round)"]
    lines = []
    for c in moved[:max_lines]:
        f = dist.factor(c["factor"])
        ev = c["evidence"]
        how = ("re-weighted by the errors" if c["kind"] == "label"
               else f"fitted to real {ev.get('stat', 'image statistics')}")
        text = f"- **{f.name}** ({how})"
        if c["kind"] == "label" and ev.get("worst_bin") is not None:
            b = ev["worst_bin"]
            text += (f": worst {_bin(f, b)}, mean error {ev['mean_error'][b]:.1f} {error_unit} "
                     f"(n = {ev['counts'][b]})")
        if c["raised"]:
            r = c["raised"][0]
            text += (f"; most raised {_bin(f, r['bin'])}, {100 * r['old']:.0f}% to "
                     f"{100 * r['new']:.0f}% of samples")
        text += f"; {100 * c['tv']:.0f}% of the probability mass moved"
        lines.append(text)
    rest = len(moved) - max_lines
    still = len(changes) - len(moved)
    tail = [f"{rest} more moved less" if rest > 0 else "",
            f"{still} unchanged" if still else ""]
    if any(tail):
        lines.append("- " + "; ".join(t for t in tail if t) + " (update_report.json has all)")
    return lines
