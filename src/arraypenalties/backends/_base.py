"""The contract every backend fulfils, and the checks they share."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

from arraypenalties._lib.checks import check_int, check_real_floating, is_real_floating
from arraypenalties._lib.errors import BackendError, InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type, get_xp
from arraypenalties._lib.ops import logsumexp_array_api

# the default bytes of one input in a chunk of rows on the CPU (Backend.cpu_chunk_bytes)
CPU_CHUNK_BYTES = 2 << 20

Array = Any
ScalarFn = Callable[[Array], Array]


class Backend:
    """What arraypenalties needs from an array framework beyond the Array API.

    Subclasses implement :meth:`value_and_grad` and :meth:`uniform`;
    :meth:`grad` and :meth:`per_term_grads` have generic versions that
    frameworks override when they can do better. :meth:`stop_gradient` is the
    identity, :meth:`is_compiling` False, :meth:`to_host` goes through
    ``tolist``, :meth:`logsumexp` is the Array API form; the optional fused
    kernels (:meth:`kl_rows`, :meth:`neg_entropy_rows`, :meth:`log_softmax`,
    :meth:`chunked_rows`) return None by default, and the library then uses its
    Array API form.

    Attributes
    ----------
    name : str
        Registry name (``"torch"``, ``"jax"``, ``"numpy"``, ...).
    exact : bool
        True when gradients come from autodiff, False for approximations.
    has_gradients : bool
        False for value-only backends (dask): every gradient request raises.
    numpy_backed : bool
        True when the namespace computes with numpy underneath (numpy,
        array-api-strict, dask): ``inf - inf`` warns there even in a branch that
        ``where`` discards, and ``maximum`` with a scalar beats ``clip``.
    returns_scalars : bool
        True when reductions return scalars instead of 0-d arrays (numpy);
        :meth:`as_array` turns them back into arrays.
    fuses_elementwise : bool
        True when a compiler fuses whole elementwise chains (XLA), so forms
        without compares and selects are faster.
    norm_zero_derivative : bool
        True when the namespace's fused ``linalg.vector_norm`` has a zero
        derivative at 0 (torch; jax's is NaN).
    array_counters : bool
        True when transform states keep their step counters as 0-d int32 arrays,
        so a state has one type through a compiled loop (jax's ``jit`` / ``scan``,
        as optax does).
    lazy : bool
        True when values are task graphs computed later (dask): row-chunked
        loops are left to the framework's own chunking.
    """

    name: str = "base"
    exact: bool = False
    has_gradients: bool = True
    numpy_backed: bool = False
    returns_scalars: bool = False
    fuses_elementwise: bool = False
    norm_zero_derivative: bool = False
    array_counters: bool = False
    lazy: bool = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} exact={self.exact}>"

    def value_and_grad(
        self, fn: ScalarFn, x: Array, /, *, create_graph: bool = False
    ) -> tuple[Array, Array]:
        """Return ``(fn(x), ∇ₓ fn(x))``; ``fn`` must return a real 0-d array.

        With ``create_graph=True`` both stay differentiable (second order), with
        respect to ``x`` and to whatever ``fn`` closes over.
        """
        raise NotImplementedError

    def grad(self, fn: ScalarFn, x: Array, /, *, create_graph: bool = False) -> Array:
        """Return ``∇ₓ fn(x)``, an array of ``x``'s shape, dtype and device."""
        return self.value_and_grad(fn, x, create_graph=create_graph)[1]

    def per_term_grads(
        self, fns: Sequence[ScalarFn], x: Array, /, *, keep_graph: bool = False
    ) -> tuple[list[Array], list[Array]]:
        """Return ``([fᵢ(x)], [∇ₓ fᵢ(x)])`` for every function in ``fns``.

        ``keep_graph=True`` asks for values that stay differentiable with respect
        to ``x`` (torch: computed on ``x`` with ``retain_graph``); backends whose
        results are plain values or functionally differentiable ignore it.
        """
        pairs = [self.value_and_grad(fn, x) for fn in fns]
        return [value for value, _ in pairs], [grad for _, grad in pairs]

    def stop_gradient(self, x: Array, /) -> Array:
        """``x`` as a constant for autodiff (identity on backends without it)."""
        return x

    def is_compiling(self) -> bool:
        """True while a compiler traces the current call (``torch.compile``)."""
        return False

    def jit(self, fn: Callable[..., Any], /) -> Callable[..., Any]:
        """``fn`` compiled for repeated calls where tracing is cheap and cached (jax.jit).

        The identity elsewhere: torch.compile costs seconds per graph and is the
        caller's choice, not the library's.
        """
        return fn

    def logsumexp(
        self, x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Array:
        """Numerically stable ``log Σ exp(x)`` over ``axis``.

        Frameworks with a native fused kernel override this; the default is the
        Array API form, with the max-shift under :meth:`stop_gradient`.
        """
        xp = check_differentiable_input(x)  # real floating input, as on every backend
        return logsumexp_array_api(x, axis=axis, keepdims=keepdims, xp=xp, stop=self.stop_gradient)

    def kl_rows(self, lp: Array, lq: Array, /, *, axis: int) -> Array | None:
        """Optional fused kernel: per-row ``Σ p·(log p − log q)`` along ``axis``, ``p = e^log p``.

        Terms with ``p = 0`` are exactly 0 with a zero gradient (also where
        ``log q = -inf``), ``p > 0 = q`` gives ``+inf``. Backends without one keep
        this default (None), and the divergences use their Array API form.
        """
        return None

    def neg_entropy_rows(self, lp: Array, /, *, axis: int) -> Array | None:
        """Optional fused kernel: per-row ``Σ p·log p`` along ``axis``, terms 0 where ``p = 0``.

        Gradients finite everywhere (0 where ``p = 0``). Optional and may return
        None, as :meth:`kl_rows`.
        """
        return None

    def neg_entropy_of_logits_rows(
        self, x: Array, /, *, axis: int, temperature: float
    ) -> Array | None:
        """Optional fused kernel: per-row ``Σ p·log p`` of ``p = softmax(x / temperature)``.

        A row that is all ``-inf`` gives 0; NaN propagates. Optional and may return
        None (torch declines whenever a gradient is recorded), as :meth:`kl_rows`.
        """
        return None

    def log_softmax(self, x: Array, /, *, axis: int) -> Array | None:
        """Optional fused kernel: ``x − log Σ exp(x)`` along ``axis`` (one pass, exact gradients).

        Backends without one keep this default (None), and the divergences use a
        max-shifted Array API form.
        """
        return None

    def on_accelerator(self, x: Array, /) -> bool:
        """True when ``x`` lives on an accelerator (a GPU). Rows there are chunked by
        count, not bytes: every kernel launch costs microseconds, so the CPU's
        cache-sized chunks would spend their time launching."""
        return False

    def cpu_chunk_bytes(self) -> int:
        """About how many bytes of one input a chunk of rows holds on the CPU when
        ``divergences.chunking`` does not set ``chunk_bytes``: :data:`CPU_CHUNK_BYTES`,
        so that a chunk's temporaries stay in the cache."""
        return CPU_CHUNK_BYTES

    def chunked_rows(
        self, row_fn: Callable[..., Array], arrays: tuple[Array, ...], /, *, rows_per_chunk: int
    ) -> Array | None:
        """Optional kernel: ``row_fn(*arrays)`` for 2-D ``arrays`` (rows on axis 0, one
        value per row), ``rows_per_chunk`` rows at a time, with a backward that recomputes
        each chunk instead of keeping full-size intermediates.

        ``row_fn`` is hashable by value. Backends without one keep this default (None),
        and the divergences loop over the chunks in Array API calls (values only).
        """
        return None

    def uniform(self, rng: object, shape: tuple[int, ...], dtype: Any, *, like: Array) -> Array:
        """Samples of U[0, 1) of ``shape`` and ``dtype`` on ``like``'s device.

        ``rng`` is an int seed or the framework's generator / key; ``None`` uses
        the framework's global generator where one exists.
        """
        raise BackendError(f"the {self.name} backend has no random number generator")

    def normals(self, leaves: Sequence[Array], seed: Any, step: Any, /) -> list[Array]:
        """N(0, 1) samples with each leaf's shape, dtype and device, a pure function of
        ``(seed, step)`` (non-negative ints; traced integers where the framework traces).
        """
        raise BackendError(f"the {self.name} backend has no random number generator")

    def as_array(self, result: Any, /) -> Array:
        """``result`` of a reduction as an array (numpy turns 0-d results into scalars)."""
        return result

    def to_host(self, values: Array, /) -> list[float]:
        """A 1-d float array as Python floats, in one device-to-host transfer.

        The one documented host-transfer point of the library (``Pipeline.compute``).
        """
        return [float(value) for value in values.tolist()]


def check_differentiable_input(x: Array) -> Any:
    """Raise unless ``x`` is a real floating array; return its namespace."""
    xp = get_xp(x, names=("x",))
    check_real_floating(x, "x", xp)
    return xp


def check_scalar_output(value: Array) -> None:
    """Raise unless ``fn`` returned a real floating 0-d array (something with a gradient)."""
    shape = getattr(value, "shape", None)
    if shape is None or tuple(shape) != ():
        got = f"shape {tuple(shape)}" if shape is not None else describe_type(value)
        msg = f"`fn` must return a 0-d array to be differentiated; got {got}"
        raise InvalidValueError(msg)
    if not is_real_floating(value.dtype, get_xp(value, names=("fn(x)",))):
        msg = (
            f"`fn` must return a real floating 0-d array to be differentiated; got dtype "
            f"{value.dtype} (integer outputs such as argmax have no gradient)"
        )
        raise InvalidTypeError(msg)


MAX_SEED = 2**63 - 1  # the largest seed every built-in generator takes (jax: int64)


def int_seed(rng: object) -> int | None:
    """``rng`` as an int seed (ints and numpy integers, not bools), None if it is no integer.

    Raises
    ------
    InvalidValueError
        ``rng`` is an integer outside ``[0, 2**63 - 1]``.
    """
    if isinstance(rng, bool) or not isinstance(rng, numbers.Integral):
        return None
    return check_int(rng, "rng", low=0, high=MAX_SEED)


def rng_type_error(rng: object, allowed: str) -> InvalidTypeError:
    """The error for an ``rng`` argument of a kind the backend cannot use."""
    return InvalidTypeError(f"`rng` must be {allowed}; got {describe_type(rng)}")
