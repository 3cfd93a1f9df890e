"""JAX backend: ``jax.value_and_grad``; loaded only once a jax array is seen."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import jax

from arraypenalties.backends import _jax_kernels
from arraypenalties.backends._base import (
    Array,
    Backend,
    ScalarFn,
    check_differentiable_input,
    check_scalar_output,
    int_seed,
    rng_type_error,
)

_JIT_CACHE_SIZE = 32


def _is_integer(dtype: Any) -> bool:
    return bool(jax.numpy.issubdtype(dtype, jax.numpy.integer))


def _checked(fn: ScalarFn) -> ScalarFn:
    def checked(x: Array) -> Array:
        value = fn(x)
        check_scalar_output(value)  # shapes and dtypes are static under tracing
        return value

    return checked


class JaxBackend(Backend):
    """Exact gradients through ``jax.value_and_grad``.

    Results are always differentiable again by nesting (``create_graph`` is
    accepted for symmetry with torch and changes nothing). ``per_term_grads``
    runs one jitted function returning every value and gradient; the compiled
    function is cached per tuple of functions (a small LRU), so pass the same
    function objects each step to reuse it.
    """

    name = "jax"
    exact = True
    fuses_elementwise = True  # XLA fuses elementwise chains: compares and selects cost
    array_counters = True  # a state keeps one type through jit / scan, as optax's counts

    def __init__(self) -> None:
        self._per_term_cache: OrderedDict[tuple[ScalarFn, ...], Callable[..., Any]] = OrderedDict()

    def value_and_grad(
        self, fn: ScalarFn, x: Array, /, *, create_graph: bool = False
    ) -> tuple[Array, Array]:
        check_differentiable_input(x)
        return jax.value_and_grad(_checked(fn))(x)

    def per_term_grads(
        self, fns: Sequence[ScalarFn], x: Array, /, *, keep_graph: bool = False
    ) -> tuple[list[Array], list[Array]]:
        check_differentiable_input(x)
        key = tuple(fns)
        run = self._per_term_cache.pop(key, None)
        if run is None:
            pairs = [jax.value_and_grad(_checked(fn)) for fn in key]
            run = jax.jit(lambda x: tuple(pair(x) for pair in pairs))
        self._per_term_cache[key] = run
        while len(self._per_term_cache) > _JIT_CACHE_SIZE:
            self._per_term_cache.popitem(last=False)
        results = run(x)
        return [value for value, _ in results], [grad for _, grad in results]

    def stop_gradient(self, x: Array, /) -> Array:
        return jax.lax.stop_gradient(x)

    def jit(self, fn: Callable[..., Any], /) -> Callable[..., Any]:
        return jax.jit(fn)

    def logsumexp(
        self, x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Array:
        return jax.nn.logsumexp(x, axis=axis, keepdims=keepdims)

    def kl_rows(self, lp: Array, lq: Array, /, *, axis: int) -> Array | None:
        return _jax_kernels.kl_rows(lp, lq, axis)

    def neg_entropy_of_logits_rows(
        self, x: Array, /, *, axis: int, temperature: float
    ) -> Array | None:
        return _jax_kernels.neg_entropy_of_logits_rows(x, axis, temperature)

    def log_softmax(self, x: Array, /, *, axis: int) -> Array | None:
        return _jax_kernels.log_softmax(x, axis)

    def on_accelerator(self, x: Array, /) -> bool:
        if isinstance(x, jax.core.Tracer):  # traced: the platform it will be compiled for
            return bool(jax.default_backend() != "cpu")
        return any(device.platform != "cpu" for device in x.devices())

    def chunked_rows(
        self, row_fn: Callable[..., Array], arrays: tuple[Array, ...], /, *, rows_per_chunk: int
    ) -> Array | None:
        return _jax_kernels.chunked_rows(row_fn, arrays, rows_per_chunk)

    def uniform(self, rng: object, shape: tuple[int, ...], dtype: Any, *, like: Array) -> Array:
        seed = None if isinstance(rng, jax.Array) else int_seed(rng)
        if seed is not None:
            key = jax.random.key(seed)
        elif isinstance(rng, jax.Array) and rng.ndim == 0 and _is_integer(rng.dtype):
            key = jax.random.key(rng)  # an int seed that is an array (traced under jax.jit)
        elif isinstance(rng, jax.Array):
            key = rng
        else:
            allowed = "an int seed or a jax.random key (jax has no global generator)"
            raise rng_type_error(rng, allowed)
        samples = jax.random.uniform(key, shape, dtype=dtype)
        if isinstance(like, jax.core.Tracer):
            return samples
        return jax.device_put(samples, like.sharding)

    def normals(self, leaves: Sequence[Array], seed: Any, step: Any, /) -> list[Array]:
        """``jax.random.normal`` with the keys ``split(fold_in(key(seed), step), n)``,
        one per leaf; ``seed`` and ``step`` may be traced integers (``jax.jit``)."""
        keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), step), len(leaves))
        out = []
        for index, leaf in enumerate(leaves):
            samples = jax.random.normal(keys[index], leaf.shape, dtype=leaf.dtype)
            if not isinstance(leaf, jax.core.Tracer):  # same placement as the leaf
                samples = jax.device_put(samples, leaf.sharding)
            out.append(samples)
        return out
