"""dask backend: values only. dask arrays stay lazy; there is no autodiff."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import dask.array as da
import numpy as np

from arraypenalties._lib.errors import BackendError
from arraypenalties.backends._base import Array, Backend, ScalarFn, int_seed, rng_type_error
from arraypenalties.backends._finite_diff import host_normals


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
    numpy_backed = True  # numpy chunks: inf - inf warns at compute time
    lazy = True

    def value_and_grad(
        self, fn: ScalarFn, x: Array, /, *, create_graph: bool = False
    ) -> tuple[Array, Array]:
        _no_autodiff()

    def per_term_grads(
        self, fns: Sequence[ScalarFn], x: Array, /, *, keep_graph: bool = False
    ) -> tuple[list[Array], list[Array]]:
        _no_autodiff()

    def normals(self, leaves: Sequence[Array], seed: Any, step: Any, /) -> list[Array]:
        """Drawn with numpy on the host (as for numpy arrays), then wrapped as dask arrays."""
        return host_normals(leaves, seed, step)

    def to_host(self, values: Array, /) -> list[float]:
        """Computed once, then copied with ``tolist``."""
        return [float(value) for value in values.compute().tolist()]

    def uniform(self, rng: object, shape: tuple[int, ...], dtype: Any, *, like: Array) -> Array:
        """Lazy samples from ``dask.array.random.default_rng`` (None, int or Generator)."""
        seed = int_seed(rng)
        if rng is None or seed is not None:
            generator = da.random.default_rng(seed)
        elif isinstance(rng, (np.random.Generator, da.random.Generator)):
            generator = da.random.default_rng(rng)
        else:
            raise rng_type_error(rng, "None, an int seed or a numpy / dask Generator")
        return generator.random(shape, dtype=dtype)
