"""dask backend: values only. dask arrays stay lazy; there is no autodiff."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import dask.array as da
import numpy as np

from arraypenalties._errors import BackendError
from arraypenalties._xp import logsumexp_array_api
from arraypenalties.backends._base import (
    Array,
    Backend,
    ScalarFn,
    check_differentiable_input,
    rng_type_error,
)


def _no_autodiff() -> NoReturn:
    msg = (
        "dask arrays have no autodiff: arraypenalties computes penalty values on dask "
        "lazily, but gradients need torch or jax arrays (or call .compute() and use the "
        "numpy finite-difference fallback)"
    )
    raise BackendError(msg)


class DaskBackend(Backend):
    """Lazy values for dask arrays; every gradient request raises :class:`BackendError`."""

    name = "dask"
    exact = False
    has_gradients = False

    def value_and_grad(
        self, fn: ScalarFn, x: Array, /, *, create_graph: bool = False
    ) -> tuple[Array, Array]:
        _no_autodiff()

    def per_term_grads(
        self, fns: Sequence[ScalarFn], x: Array, /, *, keep_graph: bool = False
    ) -> tuple[list[Array], list[Array]]:
        _no_autodiff()

    def stop_gradient(self, x: Array, /) -> Array:
        return x

    def logsumexp(
        self, x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Array:
        xp = check_differentiable_input(x)  # real floating input, as on every backend
        return logsumexp_array_api(x, axis=axis, keepdims=keepdims, xp=xp)

    def uniform(self, rng: object, shape: tuple[int, ...], dtype: Any, *, like: Array) -> Array:
        """Lazy samples from ``dask.array.random.default_rng`` (None, int or Generator)."""
        seed = rng is None or (isinstance(rng, int) and not isinstance(rng, bool))
        if seed or isinstance(rng, (np.random.Generator, da.random.Generator)):
            generator = da.random.default_rng(rng)
        else:
            raise rng_type_error(rng, "None, an int seed or a numpy / dask Generator")
        return generator.random(shape, dtype=dtype)
