"""Euclidean norms: fused where the namespace has a kernel, safe where a gradient is taken.

:func:`vector_norm` is for values (clipping, gradient-norm metrics): one fused
``linalg.vector_norm`` pass where the namespace has it. Its derivative at 0 is the
framework's (NaN on jax). :func:`safe_vector_norm` is for norms that are
differentiated (penalties): its derivative at ``x = 0`` is 0 on every backend.
"""

from __future__ import annotations

from typing import Any

__all__ = ["safe_sqrt", "safe_vector_norm", "vector_norm"]

# namespaces whose fused vector_norm has a zero derivative at 0 (jax's is NaN):
# torch's saves ~80 µs per WGAN-GP step against the double where's extra small kernels
_ZERO_DERIVATIVE_AT_ZERO = frozenset({"array_api_compat.torch"})


def vector_norm(
    x: Any, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, xp: Any
) -> Any:
    """``‖x‖₂`` over ``axis`` (all axes for None), fused where the namespace can."""
    linalg = getattr(xp, "linalg", None)
    if linalg is not None and hasattr(linalg, "vector_norm"):
        return linalg.vector_norm(x, axis=axis, keepdims=keepdims)
    return xp.sqrt(xp.sum(x * x, axis=axis, keepdims=keepdims))


def safe_sqrt(squares: Any, xp: Any) -> Any:
    """``sqrt`` with a zero (not infinite) derivative at 0: the "double where" trick."""
    positive = squares > 0
    root = xp.sqrt(xp.where(positive, squares, xp.ones_like(squares)))
    return xp.where(positive, root, xp.zeros_like(squares))


def safe_vector_norm(
    x: Any, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, xp: Any
) -> Any:
    """``‖x‖₂`` over ``axis`` with a zero derivative at ``x = 0`` on every backend.

    ``axis=()`` reduces nothing: the elementwise ``|x|``. torch uses its fused
    kernel; elsewhere the square root sits behind a double where.
    """
    if axis == ():
        return safe_sqrt(x * x, xp)
    if xp.__name__ in _ZERO_DERIVATIVE_AT_ZERO:
        return xp.linalg.vector_norm(x, axis=axis, keepdims=keepdims)
    return safe_sqrt(xp.sum(x * x, axis=axis, keepdims=keepdims), xp)
