"""The one seam to array-api-compat: the namespace and device of the arrays of a call.

``get_xp`` is called once at each public boundary; everything after it uses only
``xp.*``. The namespace of an array depends only on its type, so it is looked up
once per type and cached. This module knows no autodiff and imports nothing of
arraypenalties but the error module.

torch and jax arrays take a direct path that never enters
``array_api_compat.array_namespace`` (whose ``lru_cache`` makes
``torch.compile`` warn); nothing here imports a framework to detect it: an
array of a framework means that framework is already imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import array_api_compat

from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError

__all__ = ["describe_type", "device_of", "get_xp", "resolve_xp"]

_NAMESPACE_BY_TYPE: dict[type, Any] = {}


def describe_type(value: object) -> str:
    """``"numpy.ndarray"``-style name of ``value``'s type, for error messages."""
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _argument_name(names: Sequence[str], index: int) -> str:
    return names[index] if index < len(names) else f"argument {index}"


def _direct_namespace(top_module: str) -> Any:
    """The compat namespace of torch / jax arrays (None for others), by ``import`` statements.

    array-api-compat names these two namespaces by module; ``import`` statements,
    not ``importlib``: torch.compile refuses to trace ``importlib`` (a graph
    break) but traces ``import``, so a first call that is compiled resolves the
    namespace inside the graph.
    """
    if top_module == "torch":
        import array_api_compat.torch as torch_namespace

        return torch_namespace
    if top_module in ("jax", "jaxlib"):
        import jax.numpy as jax_namespace

        return jax_namespace
    return None


def _namespace_for_type(array: object, name: str) -> Any:
    kind = type(array)
    xp = _direct_namespace(kind.__module__.partition(".")[0])
    if xp is None:
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
    InvalidValueError
        If the arrays sit on different devices (torch ``cpu`` and ``meta``, say).
    """
    if len(arrays) == 1:  # the common case, a dict lookup (penalties of one array)
        found = _NAMESPACE_BY_TYPE.get(type(arrays[0]))
        if found is not None:
            return found
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
    if len(arrays) > 1:
        device = getattr(arrays[0], "device", None)
        for other in arrays[1:]:
            found = getattr(other, "device", None)
            if found is not device and found != device:
                _check_one_device(arrays, names)  # raises unless one of them states none
    return xp


def resolve_xp(xp: Any, *arrays: object, names: Sequence[str] = ()) -> Any:
    """``xp`` if given (after checking that it is a namespace), else ``get_xp(*arrays)``.

    Raises
    ------
    InvalidTypeError
        ``xp`` is neither the arrays' namespace nor a module with ``asarray``
        (a string such as ``"numpy"``, say), or as :func:`get_xp`.
    """
    if xp is None:
        return get_xp(*arrays, names=names)
    if len(arrays) == 1 and xp is _NAMESPACE_BY_TYPE.get(type(arrays[0])):
        return xp  # the common case: the namespace get_xp would return
    detected = get_xp(*arrays, names=names)
    if xp is detected or (isinstance(xp, ModuleType) and hasattr(xp, "asarray")):
        return xp
    msg = (
        f"`xp` must be an Array API namespace, that of the arrays ({detected.__name__}); "
        f"got {xp!r} of type {type(xp).__name__}"
    )
    raise InvalidTypeError(msg)


def _check_one_device(arrays: Sequence[object], names: Sequence[str]) -> None:
    """Raise unless every array that states a device states the same one.

    Arrays without a ``.device`` attribute (dask, jax tracers) are not compared:
    their placement is the framework's business.
    """
    first = getattr(arrays[0], "device", None)
    for index in range(1, len(arrays)):
        device = getattr(arrays[index], "device", None)
        if first is None:
            first = device
        elif device is not None and device != first:
            first_index = next(
                i for i, a in enumerate(arrays) if getattr(a, "device", None) is not None
            )
            msg = (
                f"`{_argument_name(names, first_index)}` is on device {first!r} but "
                f"`{_argument_name(names, index)}` is on device {device!r}; the arrays of one "
                "call must be on one device (move one of them first)"
            )
            raise InvalidValueError(msg)


def device_of(x: Any) -> Any:
    """The device of ``x``: its ``.device``, else ``array_api_compat.device`` (dask, jax tracers).

    The attribute first: ``array_api_compat.device`` goes through ``lru_cache``d
    checks that torch.compile warns about.
    """
    device = getattr(x, "device", None)
    return array_api_compat.device(x) if device is None else device
