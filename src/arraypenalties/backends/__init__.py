"""The backend registry: which framework's autodiff serves an array.

Every framework fact of the library lives in this package: a :class:`Backend`
answers autodiff, ``stop_gradient``, the fused kernels, ``is_compiling``, random
numbers, the host transfer and the traits the penalties ask about
(:mod:`arraypenalties.backends.primitives` routes those questions here).

Detection never imports a framework. The array's type names its top-level
module (``torch``, ``jaxlib``, ``numpy``, ...); failing that, the array is
checked with ``isinstance`` against the array types of frameworks that are
already in ``sys.modules`` (subclasses defined elsewhere). The answer is cached
per type in ONE cache, and a backend's module (``_torch.py``, ``_jax.py``, ...)
is imported, by an ``import`` statement in its loader, the first time one of its
arrays is seen. A new backend is one file and one ``register_backend`` line.

Examples
--------
>>> import numpy as np
>>> from arraypenalties.backends import get_backend
>>> get_backend(np.ones(3))
<FiniteDifferenceBackend 'numpy' exact=False>
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from arraypenalties._lib.checks import check_int
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type
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
_BY_TYPE: dict[type, Backend] = {}  # the one per-type cache of the library


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
    InvalidTypeError
        ``name`` is not a string, ``load`` or ``array_types`` is not callable.
    InvalidValueError
        ``name`` is already registered and ``replace`` is False, or ``modules``
        is empty.

    Examples
    --------
    Finite differences for the arrays of a (hypothetical) numpy-like ``mylib``;
    the registration holds no reference to the caller's globals:

    >>> from functools import partial
    >>> from arraypenalties.backends import register_backend
    >>> from arraypenalties.backends._finite_diff import FiniteDifferenceBackend
    >>> register_backend("mylib", partial(FiniteDifferenceBackend, "mylib"), modules=("mylib",))
    """
    if not isinstance(cast(object, name), str):
        msg = f"`name` must be a str; got {describe_type(name)}"
        raise InvalidTypeError(msg)
    checked: tuple[tuple[str, object], ...] = (("load", load), ("array_types", array_types))
    for param, value in checked:
        if not callable(value) and not (param == "array_types" and value is None):
            allowed = "a callable" if param == "load" else "None or a callable"
            msg = f"`{param}` must be {allowed}; got {value!r} of type {type(value).__name__}"
            raise InvalidTypeError(msg)
    if name in _REGISTRY and not replace:
        msg = f"`name` {name!r} is already registered; pass replace=True to override it"
        raise InvalidValueError(msg)
    if isinstance(modules, str) or not modules or not all(isinstance(m, str) for m in modules):
        msg = f"`modules` must be a non-empty sequence of module names; got {modules!r}"
        raise InvalidValueError(msg)
    _REGISTRY[name] = _Registration(name, tuple(modules), load, array_types)
    _LOADED.pop(name, None)
    _BY_TYPE.clear()


def _load(registration: _Registration) -> Backend:
    backend = _LOADED.get(registration.name)
    if backend is None:
        backend = registration.load()
        if not isinstance(cast(object, backend), Backend):
            msg = (
                f"`load` of backend {registration.name!r} must return a Backend; got "
                f"{describe_type(backend)}"
            )
            raise InvalidTypeError(msg)
        # torch.compile cannot replay a cache entry created while it traces (an
        # object without a source): that trace uses it uncached, eager calls fill it
        if not backend.is_compiling():
            _LOADED[registration.name] = backend
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
        f"`x`: no backend for arrays of type {describe_type(value)}; known backends: "
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
        backend = _find(kind, x)
        if not backend.is_compiling():  # see _load
            _BY_TYPE[kind] = backend
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
    count = check_int(max_elements, "max_elements", low=0)
    from arraypenalties.backends._finite_diff import set_max_elements

    return set_max_elements(count)


def _types(module: str, *attributes: str) -> Callable[[], tuple[type, ...]]:
    def array_types() -> tuple[type, ...]:
        found = sys.modules.get(module)  # not imported: no array of it can exist
        return () if found is None else tuple(getattr(found, name) for name in attributes)

    return array_types


# Loaders are ``import`` statements, not ``importlib``: torch.compile traces them,
# so even a first call that is compiled finds its backend without a graph break.


def _numpy() -> Backend:
    from arraypenalties.backends._finite_diff import FiniteDifferenceBackend

    return FiniteDifferenceBackend("numpy", numpy_backed=True)


def _array_api_strict() -> Backend:
    from arraypenalties.backends._finite_diff import FiniteDifferenceBackend

    return FiniteDifferenceBackend("array_api_strict", numpy_backed=True)


def _cupy() -> Backend:
    from arraypenalties.backends._finite_diff import FiniteDifferenceBackend

    return FiniteDifferenceBackend("cupy", gpu=True)


def _torch() -> Backend:
    from arraypenalties.backends._torch import TorchBackend

    return TorchBackend()


def _jax() -> Backend:
    from arraypenalties.backends._jax import JaxBackend

    return JaxBackend()


def _dask() -> Backend:
    from arraypenalties.backends._dask import DaskBackend

    return DaskBackend()


register_backend(
    "numpy",
    _numpy,
    modules=("numpy",),
    array_types=_types("numpy", "ndarray", "generic"),
)
register_backend(
    "array_api_strict",
    _array_api_strict,
    modules=("array_api_strict",),
    array_types=_types("array_api_strict._array_object", "Array"),
)
register_backend("cupy", _cupy, modules=("cupy",), array_types=_types("cupy", "ndarray"))
register_backend("torch", _torch, modules=("torch",), array_types=_types("torch", "Tensor"))
register_backend("jax", _jax, modules=("jax", "jaxlib"), array_types=_types("jax", "Array"))
register_backend("dask", _dask, modules=("dask",), array_types=_types("dask.array", "Array"))
