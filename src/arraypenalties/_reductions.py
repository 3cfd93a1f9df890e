"""The reductions every penalty shares: ``"sum"``, ``"mean"`` and ``"none"``."""

from __future__ import annotations

import sys
from typing import Any

# array_api_compat.is_numpy_namespace is lru_cached, which torch.compile warns about
_NUMPY_NAMESPACES = frozenset({"numpy", "array_api_compat.numpy"})


def reduce(values: Any, reduction: str, *, xp: Any, scale: float = 1.0) -> Any:
    """Return ``scale · R(values)`` as an array of ``values``' namespace.

    ``"sum"`` and ``"mean"`` run over all elements and give a 0-d array;
    ``"none"`` returns the elementwise array. The scale is applied after the
    reduction (one scalar multiply instead of one per element). numpy returns
    scalars from reductions and from arithmetic on 0-d arrays, so the result is
    wrapped back into a 0-d array there: penalties never return numpy scalars.
    ``reduction`` must already be validated (see ``_checks.check_reduction``).
    """
    if reduction == "sum":
        result = xp.sum(values)
    elif reduction == "mean":
        result = xp.mean(values)
    else:
        result = values
    if scale != 1.0:
        result = result * scale
    return as_array(result, xp)


def as_array(result: Any, xp: Any) -> Any:
    """``result`` unchanged, except that a numpy scalar becomes a 0-d numpy array."""
    if xp.__name__ in _NUMPY_NAMESPACES:
        # numpy itself, not the compat wrapper: 0.14 µs instead of 1.3 µs per call
        return sys.modules["numpy"].asarray(result)
    return result
