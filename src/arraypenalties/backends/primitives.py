"""What the penalties may ask a backend for, routed through :func:`get_backend`.

The Array API standard lacks ``stop_gradient``, fused kernels, random numbers
and a host transfer, and a few helpers have a best form that depends on the
framework. Penalties reach all of them here; each call is one lookup in the
registry's per-type cache and one method call or attribute read on the backend.

Examples
--------
>>> import numpy as np
>>> from arraypenalties.backends import primitives
>>> x = np.asarray([[0.0, -np.inf]])
>>> print(primitives.logsumexp(x, axis=-1, xp=np))
[0.]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arraypenalties._lib.ops import safe_sqrt
from arraypenalties.backends import get_backend
from arraypenalties.backends._base import MAX_SEED, Backend

__all__ = [
    "MAX_SEED",
    "as_array",
    "fused_kernel",
    "fuses_elementwise",
    "has_autodiff",
    "is_compiling",
    "logsumexp",
    "numpy_backed",
    "reduce",
    "run_fused",
    "safe_vector_norm",
    "standard_normals",
    "stop_gradient",
    "to_floats",
]


def stop_gradient(x: Any, /) -> Any:
    """``x`` as a constant for autodiff: the backend's ``stop_gradient`` (identity without one)."""
    return get_backend(x).stop_gradient(x)


def is_compiling(x: Any, /) -> bool:
    """True while a compiler traces the call that handles ``x`` (``torch.compile``)."""
    return get_backend(x).is_compiling()


def numpy_backed(x: Any, /) -> bool:
    """True when arrays like ``x`` compute with numpy underneath (numpy, array-api-strict, dask)."""
    return get_backend(x).numpy_backed


def fuses_elementwise(x: Any, /) -> bool:
    """True when a compiler fuses elementwise chains of arrays like ``x`` (jax / XLA)."""
    return get_backend(x).fuses_elementwise


def has_autodiff(x: Any, /) -> bool:
    """True when arrays like ``x`` have an exact autodiff backend (torch, jax)."""
    return get_backend(x).exact


def fused_kernel(name: str, x: Any, /) -> Any:
    """The backend's optional kernel ``name`` for arrays like ``x`` (a bound method), or
    None: when the backend keeps the default, and under ``torch.compile``, as
    :func:`run_fused`."""
    backend = get_backend(x)
    if getattr(type(backend), name) is getattr(Backend, name) or backend.is_compiling():
        return None
    return getattr(backend, name)


def run_fused(name: str, x: Any, /, *args: Any, **kwargs: Any) -> Any:
    """``kernel(x, *args, **kwargs)`` with the backend's fused kernel ``name``
    (``"kl_rows"``, ``"neg_entropy_rows"``, ``"log_softmax"``, ``"chunked_rows"``) for
    arrays like ``x``.

    None when the backend has no such kernel, when the kernel declines these
    inputs, and under ``torch.compile``: the compiler fuses the caller's Array API
    form into one loop, which beats an eager kernel traced into the graph.
    """
    backend = get_backend(x)
    if backend.is_compiling():
        return None
    return getattr(backend, name)(x, *args, **kwargs)


def logsumexp(
    x: Any, /, *, axis: int | tuple[int, ...] | None, keepdims: bool = False, xp: Any
) -> Any:
    """Stable ``log Σ exp(x)`` over ``axis``: the backend's fused kernel where one exists.

    torch and jax use ``torch.logsumexp`` / ``jax.nn.logsumexp`` (max-shift inside,
    exact gradients, ``-inf`` entries get weight 0); other backends keep
    ``Backend.logsumexp``, the Array API form with the shift under their
    ``stop_gradient``. ``xp`` is accepted for symmetry with the other helpers.
    """
    return get_backend(x).logsumexp(x, axis=axis, keepdims=keepdims)


def as_array(result: Any, xp: Any) -> Any:
    """``result`` unchanged, except that a numpy scalar becomes a 0-d numpy array."""
    return get_backend(result).as_array(result)


def reduce(values: Any, reduction: str, *, xp: Any, scale: float = 1.0) -> Any:
    """Return ``scale · R(values)`` as an array of ``values``' namespace.

    ``"sum"`` and ``"mean"`` run over all elements and give a 0-d array;
    ``"none"`` returns the elementwise array. The scale is applied after the
    reduction (one scalar multiply instead of one per element). Reductions that
    return scalars (numpy) are wrapped back into 0-d arrays: penalties never
    return numpy scalars. ``reduction`` must already be validated
    (``_lib.checks.check_reduction``).
    """
    if reduction == "sum":
        result = xp.sum(values)
    elif reduction == "mean":
        result = xp.mean(values)
    else:
        result = values
    if scale != 1.0:
        result = result * scale
    backend = get_backend(result)
    return backend.as_array(result) if backend.returns_scalars else result  # numpy scalars


def safe_vector_norm(
    x: Any, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, xp: Any
) -> Any:
    """``‖x‖₂`` over ``axis`` with a zero derivative at ``x = 0`` on every backend.

    ``axis=()`` reduces nothing: the elementwise ``|x|``. Backends whose fused
    norm has a zero derivative at 0 (torch) use it; elsewhere the square root
    sits behind a double where.
    """
    if axis == ():
        return safe_sqrt(x * x, xp)
    if get_backend(x).norm_zero_derivative:
        return xp.linalg.vector_norm(x, axis=axis, keepdims=keepdims)
    return safe_sqrt(xp.sum(x * x, axis=axis, keepdims=keepdims), xp)


def standard_normals(leaves: Sequence[Any], seed: Any, step: Any) -> list[Any]:
    """N(0, 1) samples with each leaf's shape, dtype and device, determined by ``(seed, step)``.

    The same ``(seed, step)`` always gives the same samples on one backend and
    one tree; different backends give different (equally distributed) samples.
    """
    if not leaves:
        return []
    return get_backend(leaves[0]).normals(leaves, seed, step)


def to_floats(values: Any) -> list[float]:
    """Copy a 1-d float array to the host as Python floats, in one transfer.

    The one host transfer of ``Pipeline.compute``: every metric is stacked into
    one array on the device and converted here, once. Tests patch this function
    to count the transfers.
    """
    return get_backend(values).to_host(values)
