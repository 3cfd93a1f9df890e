"""The contract every backend fulfils, and the checks they share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from arraypenalties._checks import check_real_floating, is_real_floating
from arraypenalties._errors import InvalidTypeError, InvalidValueError
from arraypenalties._xp import describe_type, get_xp

Array = Any
ScalarFn = Callable[[Array], Array]


class Backend:
    """What arraypenalties needs from an array framework beyond the Array API.

    Subclasses implement :meth:`value_and_grad`, :meth:`stop_gradient`,
    :meth:`logsumexp` and :meth:`uniform`; :meth:`grad` and :meth:`per_term_grads`
    have generic versions that frameworks override when they can do better, and
    :meth:`kl_rows`, :meth:`neg_entropy_rows`, :meth:`log_softmax` and
    :meth:`chunked_rows` are optional fused kernels.

    Attributes
    ----------
    name : str
        Registry name (``"torch"``, ``"jax"``, ``"numpy"``, ...).
    exact : bool
        True when gradients come from autodiff, False for approximations.
    has_gradients : bool
        False for value-only backends (dask): every gradient request raises.
    """

    name: str = "base"
    exact: bool = False
    has_gradients: bool = True

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
        raise NotImplementedError

    def jit(self, fn: Callable[..., Any], /) -> Callable[..., Any]:
        """``fn`` compiled for repeated calls where tracing is cheap and cached (jax.jit).

        The identity elsewhere: torch.compile costs seconds per graph and is the
        caller's choice, not the library's.
        """
        return fn

    def logsumexp(
        self, x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Array:
        """Numerically stable ``log Σ exp(x)`` over ``axis``."""
        raise NotImplementedError

    def kl_rows(self, lp: Array, lq: Array, /, *, axis: int) -> Array | None:
        """Optional fused kernel: per-row ``Σ p·(log p − log q)`` along ``axis``, ``p = e^log p``.

        Terms with ``p = 0`` are exactly 0 with a zero gradient (also where
        ``log q = -inf``), ``p > 0 = q`` gives ``+inf``. Backends without one keep
        this default, and the divergences use their Array API form.
        """
        raise NotImplementedError

    def neg_entropy_rows(self, lp: Array, /, *, axis: int) -> Array | None:
        """Optional fused kernel: per-row ``Σ p·log p`` along ``axis``, terms 0 where ``p = 0``.

        Gradients finite everywhere (0 where ``p = 0``). Optional and may return
        None, as :meth:`kl_rows`.
        """
        raise NotImplementedError

    def log_softmax(self, x: Array, /, *, axis: int) -> Array | None:
        """Optional fused kernel: ``x − log Σ exp(x)`` along ``axis`` (one pass, exact gradients).

        Backends without one keep this default (None), and the divergences use a
        max-shifted Array API form.
        """
        return None

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
        raise NotImplementedError


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


def rng_type_error(rng: object, allowed: str) -> InvalidTypeError:
    """The error for an ``rng`` argument of a kind the backend cannot use."""
    return InvalidTypeError(f"`rng` must be {allowed}; got {describe_type(rng)}")
