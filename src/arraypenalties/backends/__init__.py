"""The backend registry: which framework's autodiff serves an array.

Detection never imports a framework. The array's type names its top-level
module (``torch``, ``jaxlib``, ``numpy``, ...); failing that, the array is
checked with ``isinstance`` against the array types of frameworks that are
already in ``sys.modules`` (subclasses defined elsewhere). The answer is cached
per type, and a backend's module (``_torch.py``, ``_jax.py``, ...) is imported
the first time one of its arrays is seen.

Examples
--------
>>> import numpy as np
>>> from arraypenalties.backends import get_backend
>>> get_backend(np.ones(3))
<FiniteDifferenceBackend 'numpy' exact=False>
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from arraypenalties._checks import check_real
from arraypenalties._errors import InvalidTypeError, InvalidValueError
from arraypenalties._xp import describe_type
from arraypenalties.backends._base import Backend

__all__ = [
    "Backend",
    "available_backends",
    "get_backend",
    "register_backend",
    "set_finite_difference_limit",
]


@dataclass(frozen=True)
class _Registration:
    name: str
    modules: tuple[str, ...]
    load: Callable[[], Backend]
    array_types: Callable[[], tuple[type, ...]] | None


_REGISTRY: dict[str, _Registration] = {}
_LOADED: dict[str, Backend] = {}
_BY_TYPE: dict[type, Backend] = {}


def register_backend(
    name: str,
    load: Callable[[], Backend],
    *,
    modules: Sequence[str],
    array_types: Callable[[], tuple[type, ...]] | None = None,
    replace: bool = False,
) -> None:
    """Register the backend that serves arrays of a framework.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"mlx"``.
    load : callable
        Called once, the first time such an array is seen, to build the
        :class:`Backend`; import the framework inside it, not before.
    modules : sequence of str
        Top-level module names of the framework's array types (``type(x).__module__``
        up to the first dot), e.g. ``("jax", "jaxlib")``.
    array_types : callable, optional
        Returns the framework's array types for the ``isinstance`` fallback; only
        called once ``modules[0]`` is in ``sys.modules``.
    replace : bool, default False
        Allow replacing an existing registration of ``name``.

    Raises
    ------
    InvalidValueError
        ``name`` is already registered and ``replace`` is False, or ``modules``
        is empty.

    Examples
    --------
    >>> from arraypenalties.backends import register_backend, get_backend
    >>> from functools import partial
    >>> from arraypenalties.backends._finite_diff import FiniteDifferenceBackend
    >>> register_backend(  # a partial, not a lambda: it must outlive this example's globals
    ...     "numpy", partial(FiniteDifferenceBackend, "numpy"), modules=("numpy",), replace=True
    ... )
    """
    if name in _REGISTRY and not replace:
        msg = f"`name` {name!r} is already registered; pass replace=True to override it"
        raise InvalidValueError(msg)
    if isinstance(modules, str) or not modules:
        msg = f"`modules` must be a non-empty sequence of module names; got {modules!r}"
        raise InvalidValueError(msg)
    _REGISTRY[name] = _Registration(name, tuple(modules), load, array_types)
    _LOADED.pop(name, None)
    _BY_TYPE.clear()


def _load(registration: _Registration) -> Backend:
    backend = _LOADED.get(registration.name)
    if backend is None:
        backend = _LOADED[registration.name] = registration.load()
    return backend


def _find(kind: type, value: object) -> Backend:
    top_module = kind.__module__.partition(".")[0]
    registrations = list(reversed(_REGISTRY.values()))  # later registrations win
    for registration in registrations:
        if top_module in registration.modules:
            return _load(registration)
    for registration in registrations:
        types_of = registration.array_types
        imported = registration.modules[0] in sys.modules  # else no array of it exists
        if types_of is not None and imported and isinstance(value, types_of()):
            return _load(registration)
    msg = (
        f"no backend for arrays of type {describe_type(value)}; known backends: "
        f"{', '.join(sorted(_REGISTRY))} (add one with register_backend)"
    )
    raise InvalidTypeError(msg)


def get_backend(x: object) -> Backend:
    """Return the :class:`Backend` serving arrays like ``x`` (cached per type).

    Raises
    ------
    InvalidTypeError
        No registered backend handles ``type(x)``; the message lists the known ones.
    """
    kind = type(x)
    backend = _BY_TYPE.get(kind)
    if backend is None:
        backend = _BY_TYPE[kind] = _find(kind, x)
    return backend


def available_backends() -> tuple[str, ...]:
    """Names of registered backends whose framework is installed (nothing is imported).

    Examples
    --------
    >>> from arraypenalties.backends import available_backends
    >>> "numpy" in available_backends()
    True
    """
    return tuple(
        name
        for name, registration in _REGISTRY.items()
        if registration.modules[0] in sys.modules
        or importlib.util.find_spec(registration.modules[0]) is not None
    )


def set_finite_difference_limit(max_elements: int) -> int:
    """Set how many elements finite-difference gradients accept; return the old limit.

    Finite differences cost ``2·n`` evaluations of the function, so large inputs
    are refused (default 10 000 elements) rather than silently taking minutes.

    Examples
    --------
    >>> from arraypenalties.backends import set_finite_difference_limit
    >>> old = set_finite_difference_limit(50_000)
    >>> _ = set_finite_difference_limit(old)
    """
    if isinstance(max_elements, bool) or not isinstance(max_elements, int):
        msg = f"`max_elements` must be an int; got {describe_type(max_elements)}"
        raise InvalidTypeError(msg)
    check_real(max_elements, "max_elements", low=0.0)
    from arraypenalties.backends._finite_diff import set_max_elements

    return set_max_elements(max_elements)


def _module_attribute(module: str, *attributes: str) -> Callable[[], tuple[type, ...]]:
    def array_types() -> tuple[type, ...]:
        found = sys.modules.get(module)  # not imported: no array of it can exist
        return () if found is None else tuple(getattr(found, name) for name in attributes)

    return array_types


def _finite_difference(name: str) -> Callable[[], Backend]:
    def load() -> Backend:
        from arraypenalties.backends._finite_diff import FiniteDifferenceBackend

        return FiniteDifferenceBackend(name)

    return load


def _class_in(module: str, cls: str) -> Callable[[], Backend]:
    def load() -> Backend:
        backend: Backend = getattr(importlib.import_module(module), cls)()
        return backend

    return load


register_backend(
    "numpy",
    _finite_difference("numpy"),
    modules=("numpy",),
    array_types=_module_attribute("numpy", "ndarray", "generic"),
)
register_backend(
    "array_api_strict",
    _finite_difference("array_api_strict"),
    modules=("array_api_strict",),
    array_types=_module_attribute("array_api_strict._array_object", "Array"),
)
register_backend(
    "cupy",
    _finite_difference("cupy"),
    modules=("cupy",),
    array_types=_module_attribute("cupy", "ndarray"),
)
register_backend(
    "torch",
    _class_in("arraypenalties.backends._torch", "TorchBackend"),
    modules=("torch",),
    array_types=_module_attribute("torch", "Tensor"),
)
register_backend(
    "jax",
    _class_in("arraypenalties.backends._jax", "JaxBackend"),
    modules=("jax", "jaxlib"),
    array_types=_module_attribute("jax", "Array"),
)
register_backend(
    "dask",
    _class_in("arraypenalties.backends._dask", "DaskBackend"),
    modules=("dask",),
    array_types=_module_attribute("dask.array", "Array"),
)
