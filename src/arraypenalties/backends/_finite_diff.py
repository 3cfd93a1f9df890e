"""Finite-difference fallback for namespaces without autodiff (numpy, array-api-strict, cupy).

Central differences in float64 with the step ``h = eps^(1/3) · max(1, |x|)``
(``eps`` of float64), the choice that balances truncation error ``O(h²)``
against rounding error ``O(eps / h)``; the steps are made exactly representable
(``(x + h) − (x − h)`` is the divisor). Every gradient request warns with
:class:`~arraypenalties.FiniteDifferenceWarning` and costs ``2·n`` evaluations
of ``fn``, so inputs above a size limit are refused.

Accuracy: about 1e-10 relative for smooth functions of moderate curvature; the
absolute error of every component is about ``|fn(x)| · eps / h``, so a component
whose true gradient is tiny next to ``fn``'s total loses relative accuracy, and
functions that oscillate on scales shorter than ``h`` (``sin`` at ``|x| = 1e4``)
are not resolved. Use torch or jax when that matters.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from arraypenalties._lib.checks import element_count
from arraypenalties._lib.errors import BackendError, FiniteDifferenceWarning, warn
from arraypenalties._lib.namespace import device_of, get_xp
from arraypenalties.backends._base import (
    Array,
    Backend,
    ScalarFn,
    check_differentiable_input,
    check_scalar_output,
    int_seed,
    rng_type_error,
)

_STEP_SCALE = float(np.finfo(np.float64).eps) ** (1.0 / 3.0)
DEFAULT_MAX_ELEMENTS = 10_000
_limit = {"max_elements": DEFAULT_MAX_ELEMENTS}
# True while a finite-difference gradient evaluates its function: a gradient request
# made then is a request for a second-order derivative (differentiating a gradient
# penalty, say), which finite differences refuse instead of nesting O(n²) evaluations.
_EVALUATING: ContextVar[bool] = ContextVar("arraypenalties_finite_difference", default=False)


def set_max_elements(max_elements: int) -> int:
    """Set the size limit of finite-difference gradients; return the previous one."""
    previous = _limit["max_elements"]
    _limit["max_elements"] = max_elements
    return previous


def _central_differences(fn: ScalarFn, x: Array, xp: Any) -> Array:
    """``∇ fn(x)`` by central differences, evaluated in float64, in ``x``'s dtype."""
    work = xp.reshape(xp.astype(x, xp.float64, copy=True), (-1,))
    count = work.shape[0]
    if count == 0:
        return xp.zeros_like(x)
    steps = _STEP_SCALE * xp.maximum(xp.abs(work), xp.ones_like(work))
    uppers, lowers = work + steps, work - steps
    slopes = []
    for i in range(count):
        original = work[i]
        work[i] = uppers[i]  # mutated in place and restored: one O(n) copy in all
        f_upper = fn(xp.reshape(work, x.shape))
        work[i] = lowers[i]
        f_lower = fn(xp.reshape(work, x.shape))
        work[i] = original
        slopes.append((f_upper - f_lower) / (uppers[i] - lowers[i]))
    return xp.astype(xp.reshape(xp.stack(slopes), x.shape), x.dtype)


@contextmanager
def _evaluating() -> Iterator[None]:
    token = _EVALUATING.set(True)
    try:
        yield
    finally:
        _EVALUATING.reset(token)


class FiniteDifferenceBackend(Backend):
    """Approximate gradients for a namespace without autodiff (``exact = False``)."""

    exact = False

    def __init__(self, name: str, *, numpy_backed: bool = False, gpu: bool = False) -> None:
        self.name = name
        self.numpy_backed = numpy_backed
        self._gpu = gpu
        self.returns_scalars = name == "numpy"  # numpy reductions give numpy scalars

    def on_accelerator(self, x: Array, /) -> bool:
        return self._gpu  # cupy arrays live on a GPU

    def _check_request(self, x: Array, create_graph: bool) -> Any:
        xp = check_differentiable_input(x)
        if create_graph:
            msg = (
                f"second-order gradients (`create_graph=True`) need exact autodiff; {self.name} "
                "arrays only have finite-difference gradients: use torch or jax arrays"
            )
            raise BackendError(msg)
        if _EVALUATING.get():
            msg = (
                f"second-order gradients need exact autodiff; {self.name} arrays only have "
                "finite-difference gradients, and this gradient was requested while another "
                "finite-difference gradient was being evaluated (differentiating a gradient "
                "penalty, say): use torch or jax arrays"
            )
            raise BackendError(msg)
        limit = _limit["max_elements"]
        count = element_count(x)
        if count > limit:
            msg = (
                f"finite-difference gradients of {self.name} arrays are limited to {limit} "
                f"elements (2·n evaluations of `fn`); `x` has {count}. Use torch or jax "
                "arrays, or raise the limit with "
                "arraypenalties.backends.set_finite_difference_limit(n)"
            )
            raise BackendError(msg)
        warn(
            f"approximate gradient, O(n) evaluations: {self.name} has no autodiff, so the "
            "gradient is computed by central finite differences in float64; use torch or "
            "jax arrays for exact gradients",
            FiniteDifferenceWarning,
        )
        return xp

    def value_and_grad(
        self, fn: ScalarFn, x: Array, /, *, create_graph: bool = False
    ) -> tuple[Array, Array]:
        xp = self._check_request(x, create_graph)
        with _evaluating():
            value = fn(x)
            check_scalar_output(value)
            return value, _central_differences(fn, x, xp)

    def per_term_grads(
        self, fns: Sequence[ScalarFn], x: Array, /, *, keep_graph: bool = False
    ) -> tuple[list[Array], list[Array]]:
        xp = self._check_request(x, create_graph=False)
        with _evaluating():
            values = [fn(x) for fn in fns]
            for value in values:
                check_scalar_output(value)
            return values, [_central_differences(fn, x, xp) for fn in fns]

    def as_array(self, result: Any, /) -> Array:
        # numpy itself, not the compat wrapper: 0.14 µs instead of 1.3 µs per call
        return np.asarray(result) if self.returns_scalars else result

    def to_host(self, values: Array, /) -> list[float]:
        """``tolist``; arrays without it (array-api-strict) go through DLPack into numpy."""
        if not hasattr(values, "tolist"):
            values = np.from_dlpack(values)
        return [float(value) for value in values.tolist()]

    def normals(self, leaves: Sequence[Array], seed: Any, step: Any, /) -> list[Array]:
        """``numpy.random.default_rng([seed, step])`` (PCG64 through ``SeedSequence``),
        drawn on the host in float32 or float64, then moved to each leaf's namespace,
        dtype and device."""
        return host_normals(leaves, seed, step)

    def uniform(self, rng: object, shape: tuple[int, ...], dtype: Any, *, like: Array) -> Array:
        """Samples from a numpy ``Generator`` (``rng``: None, int seed or Generator).

        Drawn on the host (float32 and float64 directly; narrower dtypes from
        float64, with values that round up to 1.0 wrapped to 0), then moved to
        ``like``'s namespace and device.
        """
        seed = int_seed(rng)
        if rng is None or seed is not None:
            generator = np.random.default_rng(seed)
        elif isinstance(rng, np.random.Generator):
            generator = rng
        else:
            raise rng_type_error(rng, "None, an int seed or a numpy.random.Generator")
        xp = check_differentiable_input(like)
        native = dtype == xp.float32 or dtype == xp.float64  # numpy draws these directly
        samples = generator.random(shape, dtype=np.float32 if dtype == xp.float32 else np.float64)
        samples = xp.asarray(samples, dtype=dtype, device=like.device)
        if native:
            return samples
        # narrower dtypes (float16) round values near 1 up to 1.0: wrap them to 0 (mod 1)
        return xp.where(samples >= 1.0, xp.zeros_like(samples), samples)


def host_normals(leaves: Sequence[Array], seed: Any, step: Any) -> list[Array]:
    """N(0, 1) samples drawn with numpy on the host, in each leaf's namespace, dtype, device."""
    seed, step = operator.index(seed), operator.index(step)
    generator = np.random.default_rng([seed, step])
    out = []
    for leaf in leaves:
        xp = get_xp(leaf)
        single = leaf.dtype == xp.float32
        samples = generator.standard_normal(
            tuple(leaf.shape), dtype=np.float32 if single else np.float64
        )
        out.append(xp.asarray(samples, dtype=leaf.dtype, device=device_of(leaf)))
    return out
