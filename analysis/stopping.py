"""When the feedback loop stops: a budget of rounds, or no real improvement.

The loop's only honest signal is the error on the *held-out* part of the real data (the
part the analysis never sees). A round "improves" when it lowers the best held-out error
so far by more than ``min_improvement`` (relative). After ``patience`` rounds in a row
without improvement the loop stops: the distribution has stopped getting better for the
data we care about, and more rounds would only spend compute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["StoppingRule", "should_stop"]


@dataclass(frozen=True)
class StoppingRule:
    """``max_rounds``: the budget. ``min_improvement``: relative gain on the best held-out
    error that counts as progress (0.02 = 2 %). ``patience``: rounds without progress
    before stopping; ``None`` never stops early (a fixed budget, as benchmarks need)."""

    max_rounds: int
    min_improvement: float = 0.02
    patience: int | None = 1

    def __post_init__(self) -> None:
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {self.max_rounds}")
        if not (0.0 <= self.min_improvement < 1.0):
            raise ValueError(f"min_improvement must be in [0, 1), got {self.min_improvement}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")


def should_stop(errors: Sequence[float], rule: StoppingRule) -> tuple[bool, str]:
    """Decide after the rounds whose held-out errors are ``errors`` (in order).

    Returns ``(stop, reason)``; the reason is one sentence for the logs and the dashboard.
    """
    k = len(errors)
    if any(not math.isfinite(e) for e in errors):
        raise ValueError(f"held-out errors must be finite, got {list(errors)}")
    if k >= rule.max_rounds:
        return True, f"budget reached: {k} of {rule.max_rounds} rounds done"
    if rule.patience is None or k <= rule.patience:
        return False, f"{k} of {rule.max_rounds} rounds done"
    # best error before the last `patience` rounds, and the best within them
    before = min(errors[:-rule.patience])
    recent = min(errors[-rule.patience:])
    if recent < before * (1.0 - rule.min_improvement):
        return False, (f"improving: best held-out error {recent:.4g} vs {before:.4g} "
                       f"before the last {rule.patience} round(s)")
    return True, (f"no improvement beyond {100 * rule.min_improvement:.1f}% in the last "
                  f"{rule.patience} round(s): best {recent:.4g} vs {before:.4g} before")
