"""The one seam to array-api-compat: resolve the namespace of the arrays of a call.

``get_xp`` is called once at each public boundary; everything after it uses only
``xp.*``. The namespace of an array depends only on its type, so it is looked up
once per type and cached. torch and jax arrays take a direct path that never
enters ``array_api_compat.array_namespace`` (whose ``lru_cache`` makes
``torch.compile`` warn), and nothing here imports a framework: an array of a
framework means that framework is already imported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import array_api_compat

from arraypenalties._errors import InvalidTypeError

__all__ = ["describe_type", "get_xp"]

_NAMESPACE_BY_TYPE: dict[type, Any] = {}


# Import statements, not importlib: torch.compile traces an `import` statement but
# graph-breaks on importlib.import_module, and the first get_xp of a process may
# run inside torch.compile(fullgraph=True).
def _torch_namespace() -> Any:
    import array_api_compat.torch as xp

    return xp


def _jax_namespace() -> Any:
    import jax.numpy as xp

    return xp


# top-level module of an array type -> its Array API namespace
_DIRECT_NAMESPACES = {"torch": _torch_namespace, "jax": _jax_namespace, "jaxlib": _jax_namespace}


def describe_type(value: object) -> str:
    """``"numpy.ndarray"``-style name of ``value``'s type, for error messages."""
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _argument_name(names: Sequence[str], index: int) -> str:
    return names[index] if index < len(names) else f"argument {index}"


def _namespace_for_type(array: object, name: str) -> Any:
    kind = type(array)
    direct = _DIRECT_NAMESPACES.get(kind.__module__.partition(".")[0])
    if direct is not None:
        xp = direct()
    else:
        try:
            xp = array_api_compat.array_namespace(array)
        except TypeError:
            msg = (
                f"`{name}` must be an array of an Array API namespace (numpy, torch, jax, "
                f"cupy, dask, array-api-strict, ...); got {describe_type(array)}"
            )
            raise InvalidTypeError(msg) from None
    _NAMESPACE_BY_TYPE[kind] = xp
    return xp


def get_xp(*arrays: object, names: Sequence[str] = ()) -> Any:
    """Return the Array API namespace shared by ``arrays``.

    Parameters
    ----------
    *arrays
        The arrays of one call.
    names
        Their parameter names, used in error messages.

    Raises
    ------
    InvalidTypeError
        If an argument is not an array, or the arrays come from different
        namespaces (numpy and torch in one call, say).
    """
    xp: Any = None
    first = 0
    for index, array in enumerate(arrays):
        current = _NAMESPACE_BY_TYPE.get(type(array))
        if current is None:
            current = _namespace_for_type(array, _argument_name(names, index))
        if xp is None:
            xp, first = current, index
        elif current is not xp:
            msg = (
                f"`{_argument_name(names, first)}` is a {describe_type(arrays[first])} but "
                f"`{_argument_name(names, index)}` is a {describe_type(array)}; the arrays of "
                "one call must come from one namespace (convert one of them first)"
            )
            raise InvalidTypeError(msg)
    return xp


def logsumexp_array_api(
    x: Any, *, axis: int | tuple[int, ...] | None, keepdims: bool, xp: Any
) -> Any:
    """``log Σ exp(x)`` over ``axis`` in pure Array API calls, shifted by the max.

    The fallback for namespaces without a fused kernel (numpy, array-api-strict,
    cupy, dask). Rows whose max is not finite are shifted by 0 instead, and an
    all ``-inf`` row gives ``-inf`` without evaluating ``log(0)``. These
    namespaces have no autodiff, so the shift needs no ``stop_gradient``.
    """
    shift = xp.max(x, axis=axis, keepdims=True)
    shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
    total = xp.sum(xp.exp(x - shift), axis=axis, keepdims=True)
    positive = total > 0  # log(0) would warn on numpy: take it as -inf by hand
    safe_log = xp.log(xp.where(positive, total, xp.ones_like(total)))
    out = xp.where(positive, safe_log, xp.full_like(total, -math.inf)) + shift
    if keepdims:
        return out
    if axis is None:
        return xp.reshape(out, ())
    return xp.squeeze(out, axis=axis)
