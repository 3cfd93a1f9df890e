"""PyTorch backend: ``torch.autograd.grad``; loaded only once a tensor is seen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arraypenalties.backends._base import (
    Array,
    Backend,
    ScalarFn,
    check_differentiable_input,
    check_scalar_output,
    rng_type_error,
)


def _grad_input(x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    # With create_graph, an x that is already part of a graph (a generator's output,
    # say) is used as is, so the result is differentiable all the way back.
    if create_graph and x.requires_grad:
        return x
    return x.detach().requires_grad_(True)


def _backward(
    value: torch.Tensor, x: torch.Tensor, *, create_graph: bool = False, retain_graph: bool = False
) -> torch.Tensor:
    if not value.requires_grad:  # fn does not depend on x: the gradient is zero
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(
        value,
        x,
        retain_graph=retain_graph or create_graph,
        create_graph=create_graph,
        allow_unused=True,
        materialize_grads=True,
    )
    return grad


class TorchBackend(Backend):
    """Exact gradients through ``torch.autograd.grad``.

    ``create_graph=True`` keeps the gradient differentiable (gradient penalties);
    otherwise ``x`` is detached first, so the call never writes ``.grad`` and
    never keeps the caller's graph alive.
    """

    name = "torch"
    exact = True

    def value_and_grad(
        self, fn: ScalarFn, x: Array, /, *, create_graph: bool = False
    ) -> tuple[Array, Array]:
        check_differentiable_input(x)
        x_in = _grad_input(x, create_graph)
        with torch.enable_grad():
            value = fn(x_in)
            check_scalar_output(value)
            grad = _backward(value, x_in, create_graph=create_graph)
        return (value if create_graph else value.detach()), grad

    def per_term_grads(
        self, fns: Sequence[ScalarFn], x: Array, /, *, keep_graph: bool = False
    ) -> tuple[list[Array], list[Array]]:
        """One forward pass of every function, then one backward pass each.

        Without ``keep_graph`` the functions run on one detached leaf; their graphs
        share no nodes, so each backward frees its own graph. With ``keep_graph``
        every backward keeps its graph (``retain_graph``) and the values stay
        differentiable (through ``x`` itself when it requires grad, and through
        whatever the functions close over), so a caller can sum them into a loss
        without a second forward pass. The gradients never accumulate into ``.grad``.
        """
        check_differentiable_input(x)
        x_in = x if keep_graph and x.requires_grad else x.detach().requires_grad_(True)
        with torch.enable_grad():
            values = [fn(x_in) for fn in fns]
            for value in values:
                check_scalar_output(value)
            grads = [_backward(value, x_in, retain_graph=keep_graph) for value in values]
        return (values if keep_graph else [value.detach() for value in values]), grads

    def stop_gradient(self, x: Array, /) -> Array:
        return x.detach()

    def logsumexp(
        self, x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Array:
        dim = tuple(range(x.ndim)) if axis is None else axis
        return torch.logsumexp(x, dim=dim, keepdim=keepdims)

    def uniform(self, rng: object, shape: tuple[int, ...], dtype: Any, *, like: Array) -> Array:
        generator: torch.Generator | None
        if rng is None or isinstance(rng, torch.Generator):
            generator = rng
        elif isinstance(rng, int) and not isinstance(rng, bool):
            generator = torch.Generator(device=like.device).manual_seed(rng)
        else:
            raise rng_type_error(rng, "None, an int seed or a torch.Generator")
        return torch.rand(shape, generator=generator, dtype=dtype, device=like.device)
