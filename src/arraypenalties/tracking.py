"""Gradient-norm tracking: which penalty pulls hardest on the gradient.

Per-entry gradients come from the backend's ``per_term_grads``: one forward pass
and one backward pass per entry on torch, one jitted function returning every
gradient on jax, finite differences (with a warning) on numpy / array-api-strict.
The gradient of the weighted total is ``Σ wᵢ·∇fᵢ`` by linearity, never an extra
backward pass. A function that cannot be differentiated (an integer output such
as ``argmax``, an autodiff error) gives ``None`` and a
:class:`~arraypenalties.GradientTrackingWarning`, never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from arraypenalties import telemetry
from arraypenalties._lib.checks import check_real_floating
from arraypenalties._lib.errors import (
    BackendError,
    GradientTrackingWarning,
    InvalidValueError,
    warn,
)
from arraypenalties._lib.namespace import get_xp
from arraypenalties._lib.ops import vector_norm
from arraypenalties.backends import Backend, get_backend, primitives

__all__ = ["GradPlan", "Tracked", "emit_events", "grad_norm", "tracked_gradients", "warn_failures"]

Array = Any
COMPUTED = ("arraypenalties", "gradient", "computed")
FAILED = ("arraypenalties", "gradient", "failed")
# usage errors propagate; anything else raised while differentiating is a tracking failure
_PROPAGATE = (InvalidValueError, BackendError, Warning)  # Warning: raised when filtered to "error"


class GradPlan(NamedTuple):
    """What to differentiate: one-argument functions of one (flattened) array ``x``."""

    names: tuple[str, ...]
    fns: tuple[Callable[[Array], Array], ...]
    weights: tuple[float, ...]
    x: Array


class Tracked(NamedTuple):
    """Per-entry values and gradient norms as arrays (no host transfer yet)."""

    values: list[Array]
    norms: list[Array | None]
    total_norm: Array | None
    failures: dict[str, str]


def _checked_backend(x: Array) -> tuple[Backend, Any]:
    """The backend and namespace of ``x``, which must be real floating and have gradients."""
    xp = get_xp(x, names=("x",))
    check_real_floating(x, "x", xp)
    backend = get_backend(x)
    if not backend.has_gradients:
        msg = (
            f"gradient norms need a backend with gradients; {backend.name} arrays have "
            "values only (use torch or jax, or numpy for finite differences)"
        )
        raise BackendError(msg)
    return backend, xp


def _failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def warn_failures(failures: Mapping[str, str]) -> None:
    """One :class:`GradientTrackingWarning` per failed entry.

    Called after the computation, never inside it: under ``jax.jit`` a warning
    raised while tracing would be attributed to jax's frames and shown only once.
    """
    for name, reason in failures.items():
        message = (
            f"gradient computation failed for {name!r}: the function has non-differentiable "
            f"operations ({reason}); its gradient norm is None"
        )
        warn(message, GradientTrackingWarning)


def _one_by_one(
    backend: Backend, plan: GradPlan, keep_graph: bool
) -> tuple[list[Array], list[Array | None], dict[str, str]]:
    """Differentiate entry by entry, after the joint call failed, to find the culprits."""
    values: list[Array] = []
    grads: list[Array | None] = []
    failures: dict[str, str] = {}
    for name, fn in zip(plan.names, plan.fns, strict=True):
        try:
            (value,), (grad,) = backend.per_term_grads([fn], plan.x, keep_graph=keep_graph)
        except _PROPAGATE:
            raise
        except Exception as exc:
            failures[name] = _failure(exc)
            value, grad = fn(plan.x), None
        values.append(value)
        grads.append(grad)
    return values, grads, failures


def tracked_gradients(plan: GradPlan, *, keep_graph: bool = False) -> Tracked:
    """Values, unweighted per-entry gradient norms and the total's gradient norm, as arrays.

    The total's norm is ``None`` when an entry failed (the total is not differentiable
    then either). ``keep_graph`` keeps the values differentiable (torch).
    """
    backend, xp = _checked_backend(plan.x)
    failures: dict[str, str] = {}
    try:
        values, grads = backend.per_term_grads(plan.fns, plan.x, keep_graph=keep_graph)
    except _PROPAGATE:
        raise
    except Exception:
        values, grads, failures = _one_by_one(backend, plan, keep_graph)
    norms = [None if g is None else vector_norm(g, xp=xp) for g in grads]
    total_norm = None
    if not failures:
        total = xp.zeros_like(plan.x)
        for weight, grad in zip(plan.weights, grads, strict=True):
            total = total + weight * grad
        total_norm = vector_norm(total, xp=xp)
    return Tracked(values, norms, total_norm, failures)


def emit_events(
    names: Sequence[str],
    norms: Sequence[float | None],
    failures: Mapping[str, str],
    duration: int,
) -> None:
    """Telemetry: one ``computed`` or ``failed`` event per entry (floats already on the host).

    ``duration`` (ns) is that of the whole computation the norms came from.
    """
    if not (telemetry.is_observed(COMPUTED) or telemetry.is_observed(FAILED)):
        return
    for name, norm in zip(names, norms, strict=True):
        if norm is None:
            metadata = {"name": name, "reason": failures.get(name, "")}
            telemetry.emit(FAILED, {"duration": duration}, metadata)
        else:
            telemetry.emit(COMPUTED, {"duration": duration, "grad_norm": norm}, {"name": name})


def grad_norm(fn: Callable[[Array], Array], x: Array, /) -> float | None:
    """``‖∇ₓ fn(x)‖₂`` over all elements of ``x``, as a Python float (one host transfer).

    Parameters
    ----------
    fn : callable
        ``fn(x)`` returns a real 0-d array.
    x : array
        Real floating array of a backend with gradients (torch, jax exact; numpy,
        array-api-strict and cupy by finite differences, with a warning).

    Returns
    -------
    float or None
        None when ``fn`` cannot be differentiated (integer output such as argmax,
        an autodiff error), with a :class:`~arraypenalties.GradientTrackingWarning`.

    Raises
    ------
    BackendError
        ``x`` is a dask array (values only).

    Examples
    --------
    >>> import torch
    >>> from arraypenalties import grad_norm
    >>> grad_norm(lambda x: torch.sum(x * x), torch.tensor([1.0, 2.0, 3.0]))  # √56
    7.483314...
    """
    name = getattr(fn, "__name__", type(fn).__name__)
    start = time.perf_counter_ns()
    tracked = tracked_gradients(GradPlan((name,), (fn,), (1.0,), x))
    (norm,) = tracked.norms
    value = None
    if norm is not None:
        xp = get_xp(x)
        dtype = xp.float64 if norm.dtype == xp.float64 else xp.float32
        (value,) = primitives.to_floats(xp.reshape(xp.astype(norm, dtype), (1,)))  # one transfer
    warn_failures(tracked.failures)
    emit_events((name,), (value,), tracked.failures, time.perf_counter_ns() - start)
    return value
