"""Pure schedule functions of the step (nanoGPT's ``get_lr(it)`` habit).

Each returns a float; the training loop calls them and passes the value on, so a
schedule is testable on its own and never hides in a module's state.
"""

from __future__ import annotations

import math

__all__ = ["grl_coeff", "lr_inverse_decay", "warmup_cosine"]


def _progress(step: int, max_steps: int) -> float:
    if max_steps <= 0:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    return min(max(step / max_steps, 0.0), 1.0)


def grl_coeff(step: int, max_steps: int, alpha: float = 10.0, lo: float = 0.0,
              hi: float = 1.0) -> float:
    """DANN's warm start for the reversal weight (Ganin et al. 2016, sec. 5.2.2):

    .. math::
        \\lambda_p = lo + (hi - lo) \\left(\\frac{2}{1 + e^{-\\alpha p}} - 1\\right),
        \\quad p = \\mathrm{clip}(step / max\\_steps, 0, 1)

    Starts at ``lo`` so the discriminator's early noise does not reach the features;
    with ``alpha=10`` it is 0.46 of the way at p=0.1 and 0.9999 at p=1.
    """
    p = _progress(step, max_steps)
    return lo + (hi - lo) * (2.0 / (1.0 + math.exp(-alpha * p)) - 1.0)


def lr_inverse_decay(step: int, base_lr: float, gamma: float = 0.001, power: float = 0.75) -> float:
    """TLlib's DA learning rate: ``base_lr * (1 + gamma * step) ** -power``."""
    return base_lr * (1.0 + gamma * max(step, 0)) ** -power


def warmup_cosine(step: int, max_steps: int, base_lr: float, warmup: int,
                  min_lr: float = 0.0) -> float:
    """Linear warmup for ``warmup`` steps, then cosine decay to ``min_lr`` at ``max_steps``."""
    if step < warmup:
        # (step + 1) so the very first step does not run at lr 0 (nanoGPT does the same)
        return base_lr * (step + 1) / (warmup + 1)
    if step >= max_steps:
        return min_lr
    p = (step - warmup) / max(max_steps - warmup, 1)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * p)) * (base_lr - min_lr)
