"""Gradient reversal layer (Ganin & Lempitsky, ICML 2015).

.. math::
    R_\\lambda(x) = x, \\qquad \\frac{\\partial R_\\lambda}{\\partial x} = -\\lambda I

The coefficient is an argument of every call, computed by the training loop from a pure
schedule (:func:`models.schedules.grl_coeff`). Unlike TLlib's
``WarmStartGradientReverseLayer(auto_step=True)`` nothing advances on forward, so extra
or evaluation passes cannot shift the schedule. (TLlib's and DALN's versions also call
``np.float``, removed in NumPy 1.24.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["GradientReversal", "GradientReversalFunction", "grl"]


class GradientReversalFunction(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``-coeff``."""

    @staticmethod
    def forward(ctx, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        # a view, not the input itself: autograd needs a new tensor to hang grad_fn on
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output * -ctx.coeff, None


def grl(x: Tensor, coeff: float | Tensor = 1.0) -> Tensor:
    """Reverse (and scale by ``coeff``) the gradient flowing back into ``x``.

    Args:
        x: any tensor.
        coeff: the reversal weight lambda >= 0; a 0-d tensor is read as a number, so the
            schedule never becomes part of the graph.
    """
    return GradientReversalFunction.apply(x, float(coeff))


class GradientReversal(nn.Module):
    """Module form of :func:`grl`: ``GradientReversal()(x, coeff)``. No state, no parameters."""

    def forward(self, x: Tensor, coeff: float | Tensor = 1.0) -> Tensor:
        return grl(x, coeff)
