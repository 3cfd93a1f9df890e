"""Two small autograd functions that shape the total handed to Tinker.

- :func:`touch`: an exact 0 whose gradient is an exact 0 for every datum, so the
  total reaches every log-prob tensor (Tinker raises "No gradient computed" for a
  datum whose tensor gets no ``.grad``) without ``0 · logprobs`` (NaN at -inf).
- :func:`linear_total`: the total's value with a gradient already known (the
  weighted sum of the per-term gradients computed for tracking), so the backward
  Tinker runs costs one multiply per datum instead of a second pass through
  every term.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["linear_total", "reaches_all", "touch"]

_MAX_NODES = 4096  # beyond this, anchoring costs less than looking


class _Touch(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, *tensors: torch.Tensor) -> torch.Tensor:
        ctx.like = [(t.shape, t.dtype, t.device) for t in tensors]
        return torch.zeros((), dtype=tensors[0].dtype, device=tensors[0].device)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(
            torch.zeros(shape, dtype=dtype, device=device) for shape, dtype, device in ctx.like
        )


class _LinearTotal(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, value: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        count = len(tensors) // 2
        ctx.save_for_backward(*tensors[count:])
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grads = ctx.saved_tensors
        return (None, *(grad * g for g in grads), *(None for _ in grads))


def touch(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """A 0-d zero connected to every tensor in ``tensors`` with a zero gradient."""
    out: torch.Tensor = _Touch.apply(*tensors)  # type: ignore[no-untyped-call]
    return out


def linear_total(
    value: torch.Tensor, variables: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
) -> torch.Tensor:
    """``value`` (detached) whose gradient with respect to ``variables[i]`` is ``grads[i]``."""
    out: torch.Tensor = _LinearTotal.apply(  # type: ignore[no-untyped-call]
        value.detach(), *variables, *grads
    )
    return out


def reaches_all(total: torch.Tensor, variables: Sequence[torch.Tensor]) -> bool:
    """Whether backpropagating ``total`` gives every variable requiring grad a gradient.

    Walks ``total``'s autograd graph (at most a few thousand nodes; False beyond).
    """
    leaves = {id(v) for v in variables if v.requires_grad and v.grad_fn is None}
    inner = {v.grad_fn for v in variables if v.grad_fn is not None}
    if total.grad_fn is None:
        return not leaves and not inner
    stack, seen = [total.grad_fn], {total.grad_fn}
    while stack and (leaves or inner) and len(seen) < _MAX_NODES:
        node = stack.pop()
        inner.discard(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad: the leaf it feeds
        if variable is not None:
            leaves.discard(id(variable))
        for child, _ in node.next_functions:
            if child is not None and child not in seen:
                seen.add(child)
                stack.append(child)
    return not leaves and not inner
