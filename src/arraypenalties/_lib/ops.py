"""Pure Array API helpers the penalties share: a stable logsumexp and Euclidean norms.

Nothing here knows a framework; helpers whose best form depends on one (the
reductions that must not return numpy scalars, the norm with a zero derivative
at 0) live in :mod:`arraypenalties.backends.primitives`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["logsumexp_array_api", "safe_sqrt", "vector_norm"]


def logsumexp_array_api(
    x: Any,
    *,
    axis: int | tuple[int, ...] | None,
    keepdims: bool,
    xp: Any,
    stop: Callable[[Any], Any] | None = None,
) -> Any:
    """``log Σ exp(x)`` over ``axis`` in pure Array API calls, shifted by the max.

    The fallback for namespaces without a fused kernel (numpy, array-api-strict,
    cupy, dask). Rows whose max is not finite are shifted by 0 instead, and an
    all ``-inf`` row gives ``-inf`` without evaluating ``log(0)``. A backend with
    autodiff but no fused kernel passes its ``stop_gradient`` as ``stop`` (the
    shift cancels in the value, and stopping it keeps its gradient out).
    """
    shift = xp.max(x, axis=axis, keepdims=True)
    shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
    if stop is not None:
        shift = stop(shift)
    total = xp.sum(xp.exp(x - shift), axis=axis, keepdims=True)
    positive = total > 0  # log(0) would warn on numpy: take it as -inf by hand
    safe_log = xp.log(xp.where(positive, total, xp.ones_like(total)))
    out = xp.where(positive, safe_log, xp.full_like(total, -math.inf)) + shift
    if keepdims:
        return out
    if axis is None:
        return xp.reshape(out, ())
    return xp.squeeze(out, axis=axis)


def vector_norm(
    x: Any, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, xp: Any
) -> Any:
    """``‖x‖₂`` over ``axis`` (all axes for None), fused where the namespace can.

    For values (clipping, gradient-norm metrics): its derivative at 0 is the
    framework's (NaN on jax); penalties use ``primitives.safe_vector_norm``.
    """
    linalg = getattr(xp, "linalg", None)
    if linalg is not None and hasattr(linalg, "vector_norm"):
        return linalg.vector_norm(x, axis=axis, keepdims=keepdims)
    return xp.sqrt(xp.sum(x * x, axis=axis, keepdims=keepdims))


def safe_sqrt(squares: Any, xp: Any) -> Any:
    """``sqrt`` with a zero (not infinite) derivative at 0: the "double where" trick."""
    positive = squares > 0
    root = xp.sqrt(xp.where(positive, squares, xp.ones_like(squares)))
    return xp.where(positive, root, xp.zeros_like(squares))
