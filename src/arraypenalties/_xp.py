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
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import array_api_compat

from arraypenalties._errors import InvalidTypeError

__all__ = [
    "describe_type",
    "device_of",
    "fused_kernel",
    "get_xp",
    "has_autodiff",
    "logsumexp",
    "run_fused",
    "stop_gradient",
]

_NAMESPACE_BY_TYPE: dict[type, Any] = {}


# top-level module of an array type -> module that is its Array API namespace
_DIRECT_NAMESPACES = {
    "torch": "array_api_compat.torch",
    "jax": "jax.numpy",
    "jaxlib": "jax.numpy",
}


def describe_type(value: object) -> str:
    """``"numpy.ndarray"``-style name of ``value``'s type, for error messages."""
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _argument_name(names: Sequence[str], index: int) -> str:
    return names[index] if index < len(names) else f"argument {index}"


def _direct_namespace(top_module: str) -> Any:
    """The namespace of torch / jax arrays (None for others), by ``import`` statements.

    Not ``importlib``: torch.compile refuses to trace it (a graph break, an
    error under ``fullgraph=True``), but traces ``import`` statements, so even a
    first call that is compiled resolves the namespace inside the graph.
    """
    direct = _DIRECT_NAMESPACES.get(top_module)
    if direct == "array_api_compat.torch":
        import array_api_compat.torch as torch_namespace

        return torch_namespace
    if direct == "jax.numpy":
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


def device_of(x: Any) -> Any:
    """The device of ``x``: its ``.device``, else ``array_api_compat.device`` (dask, jax tracers).

    The attribute first: ``array_api_compat.device`` goes through ``lru_cache``d
    checks that torch.compile warns about.
    """
    device = getattr(x, "device", None)
    return array_api_compat.device(x) if device is None else device


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
    all ``-inf`` row gives ``-inf`` without evaluating ``log(0)``. These
    namespaces have no autodiff, so the shift needs no ``stop_gradient``; a
    backend with autodiff but no fused kernel passes its own as ``stop`` (the
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


# ---------------------------------------------------------------- autodiff primitives
#
# DESIGN: penalties never import ``backends`` except for the primitives the Array
# API standard lacks (``stop_gradient``, fused kernels). They reach them here,
# looked up once per array type (the hot path is one dict lookup and one call).


class _Primitives(NamedTuple):
    stop_gradient: Callable[[Any], Any] | None  # None: no autodiff, identity
    logsumexp: Callable[..., Any] | None  # None: the pure Array API version
    kl_rows: Callable[..., Any] | None  # None: the Array API form in _logspace
    neg_entropy_rows: Callable[..., Any] | None  # likewise
    log_softmax: Callable[..., Any] | None  # None: x − logsumexp(x) in Array API calls
    chunked_rows: Callable[..., Any] | None  # None: a loop of Array API calls, values only


_PRIMITIVES_BY_TYPE: dict[type, _Primitives] = {}


def _builtin_backend(x: Any) -> Any:
    """The backend already serving ``type(x)``, else the built-in torch / jax one, else None.

    ``import`` statements, not the registry's ``importlib`` loader, for torch and
    jax: torch.compile traces them, so a compiled first call needs no graph break.
    """
    from arraypenalties import backends  # deferred: backends sit above _xp

    resolved = backends._BY_TYPE.get(type(x))
    if resolved is not None:
        return resolved
    top_module = type(x).__module__.partition(".")[0]
    if top_module == "torch":
        from arraypenalties.backends._torch import TorchBackend

        return TorchBackend()
    if top_module in ("jax", "jaxlib"):
        from arraypenalties.backends._jax import JaxBackend

        return JaxBackend()
    return None


def _load_primitives(x: Any) -> _Primitives:
    from arraypenalties.backends import get_backend  # deferred: backends sit above _xp
    from arraypenalties.backends._base import Backend

    backend = _builtin_backend(x)
    if backend is None:
        backend = get_backend(x)
    if not backend.exact:  # finite differences or values only: nothing to stop
        return _Primitives(None, None, None, None, None, None)

    def fused(name: str) -> Callable[..., Any] | None:  # None where the default is kept
        overridden = getattr(type(backend), name) is not getattr(Backend, name)
        return getattr(backend, name) if overridden else None

    return _Primitives(
        backend.stop_gradient,
        fused("logsumexp"),
        fused("kl_rows"),
        fused("neg_entropy_rows"),
        fused("log_softmax"),
        fused("chunked_rows"),
    )


def _torch_is_compiling(kind: type) -> bool:
    if kind.__module__.partition(".")[0] != "torch":
        return False
    return bool(sys.modules["torch"].compiler.is_compiling())


def _primitives(x: Any) -> _Primitives:
    kind = type(x)
    found = _PRIMITIVES_BY_TYPE.get(kind)
    if found is None:
        found = _load_primitives(x)
        # torch.compile cannot replay a cache entry created while it traces (objects
        # without a source): that trace uses it uncached, eager calls fill the cache
        if not _torch_is_compiling(kind):
            _PRIMITIVES_BY_TYPE[kind] = found
    return found


def stop_gradient(x: Any, /) -> Any:
    """``x`` as a constant for autodiff: the backend's ``stop_gradient``, else ``x`` itself."""
    stop = _primitives(x).stop_gradient
    return x if stop is None else stop(x)


def run_fused(name: str, x: Any, /, *args: Any, **kwargs: Any) -> Any:
    """``kernel(x, *args, **kwargs)`` with the backend's fused kernel ``name``
    (``"kl_rows"``, ``"neg_entropy_rows"``, ``"log_softmax"``, ``"chunked_rows"``) for
    arrays like ``x``.

    None when the backend has no such kernel, when the kernel declines these
    inputs, and under ``torch.compile``: the compiler fuses the caller's Array API
    form into one loop, which beats an eager kernel traced into the graph.
    """
    kernel: Callable[..., Any] | None = getattr(_primitives(x), name)
    if kernel is None or _torch_is_compiling(type(x)):
        return None
    return kernel(x, *args, **kwargs)


def has_autodiff(x: Any, /) -> bool:
    """True when arrays like ``x`` have an exact autodiff backend (torch, jax)."""
    return _primitives(x).stop_gradient is not None


def fused_kernel(name: str, x: Any, /) -> Callable[..., Any] | None:
    """The backend's optional kernel ``name`` for arrays like ``x``, or None (no such
    kernel, or under ``torch.compile``, as :func:`run_fused`)."""
    kernel: Callable[..., Any] | None = getattr(_primitives(x), name)
    if kernel is None or _torch_is_compiling(type(x)):
        return None
    return kernel


def logsumexp(x: Any, /, *, axis: int, keepdims: bool = False, xp: Any) -> Any:
    """Stable ``log Σ exp(x)`` over ``axis``: the backend's fused kernel where one exists.

    torch and jax use ``torch.logsumexp`` / ``jax.nn.logsumexp`` (max-shift inside,
    exact gradients, ``-inf`` entries get weight 0); other namespaces use
    :func:`logsumexp_array_api`, with the shift under ``stop_gradient`` when the
    backend has autodiff.
    """
    found = _primitives(x)
    if found.logsumexp is not None:
        return found.logsumexp(x, axis=axis, keepdims=keepdims)
    return logsumexp_array_api(x, axis=axis, keepdims=keepdims, xp=xp, stop=found.stop_gradient)
