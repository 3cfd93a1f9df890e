"""Option and array checks, all with one message style.

Messages name the parameter in backticks, say what was given and what is allowed.
Checks look only at Python options, dtypes and (static) shapes, never at array
values, so they cost nothing under ``jax.jit`` or ``torch.compile``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any, Literal, cast, overload

from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type, get_xp

__all__ = [
    "REDUCTIONS",
    "check_axis",
    "check_bool",
    "check_callable",
    "check_choice",
    "check_int",
    "check_optional_positive",
    "check_positive",
    "check_real",
    "check_real_floating",
    "check_reduction",
    "check_reduction_over",
    "element_count",
    "is_real_floating",
    "prepare_pair",
]

REDUCTIONS = ("sum", "mean", "none")


def _allowed(choices: Sequence[object]) -> str:
    return ", ".join(repr(c) for c in choices)


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; raise naming ``name`` otherwise."""
    if isinstance(value, str) and value in choices:
        return value
    msg = f"`{name}` must be one of {_allowed(choices)}; got {value!r}"
    if not isinstance(value, str):
        raise InvalidTypeError(msg)
    raise InvalidValueError(msg)


def check_real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a Python float after checking type and range.

    Accepts Python and numpy real scalars (not ``bool``, not arrays); NaN is always
    rejected, infinities unless ``allow_inf``; ``low`` / ``high`` are inclusive bounds.
    """
    plain = type(value) is float or type(value) is int  # skips the slow numbers.Real check
    if isinstance(value, bool) or not (plain or isinstance(value, Real)):
        msg = f"`{name}` must be a real number; got {value!r} of type {type(value).__name__}"
        raise InvalidTypeError(msg)
    try:
        number = float(cast(float, value))
    except OverflowError:  # an int beyond the float range (10**400)
        number = math.inf if cast(int, value) > 0 else -math.inf
    bad_range = (low is not None and not number >= low) or (high is not None and not number <= high)
    if math.isnan(number) or (math.isinf(number) and not allow_inf) or bad_range:
        low_text = "-inf" if low is None else repr(low)
        high_text = "inf" if high is None else repr(high)
        kind = "" if allow_inf else "finite, "
        msg = f"`{name}` must be {kind}in [{low_text}, {high_text}]; got {_shown(value)}"
        raise InvalidValueError(msg)
    return number


def _shown(value: object) -> str:
    """``repr(value)``, except for huge ints (whose ``str`` may even be refused)."""
    if isinstance(value, int) and abs(value) >= 2**64:
        sign = "a negative" if value < 0 else "an"
        return f"{sign} int of {value.bit_length()} bits"
    return repr(value)


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a Python ``bool``; raise naming ``name`` otherwise."""
    if not isinstance(value, bool):
        msg = f"`{name}` must be True or False; got {value!r} of type {type(value).__name__}"
        raise InvalidTypeError(msg)
    return value


@overload
def check_callable(
    value: object, name: str, *, what: str = ..., optional: Literal[False] = ...
) -> Callable[..., Any]: ...


@overload
def check_callable(
    value: object, name: str, *, what: str = ..., optional: bool
) -> Callable[..., Any] | None: ...


def check_callable(
    value: object, name: str, *, what: str = "callable", optional: bool = False
) -> Callable[..., Any] | None:
    """Return ``value`` if it is callable (or None, when ``optional``); raise naming
    ``name`` otherwise.

    ``what`` says what is expected (``"a callable fn(updates, params)"``); the message
    shows the type of what was given, never its ``repr`` (an array's may be huge).
    """
    if callable(value) or (optional and value is None):
        return cast("Callable[..., Any] | None", value)
    allowed = f"{what} or None" if optional else what
    msg = f"`{name}` must be {allowed}; got {describe_type(value)}"
    raise InvalidTypeError(msg)


def check_int(value: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as a Python int: ints and numpy integers (not bools, not floats).

    The one rule for integer-like options: anything with ``__index__`` except
    ``bool``; ``low`` / ``high`` are inclusive bounds.
    """
    try:
        number = None if isinstance(value, bool) else operator.index(cast(Any, value))
    except TypeError:
        number = None
    if number is None:
        msg = f"`{name}` must be an int; got {value!r} of type {type(value).__name__}"
        raise InvalidTypeError(msg)
    if (low is not None and number < low) or (high is not None and number > high):
        low_text = "-inf" if low is None else str(low)
        high_text = "inf" if high is None else str(high)
        msg = f"`{name}` must be an int in [{low_text}, {high_text}]; got {_shown(number)}"
        raise InvalidValueError(msg)
    return number


# (dtype type, dtype) -> is it real floating (isdtype is slow). The type keeps the
# namespaces apart: array-api-strict warns when its dtypes are compared to numpy's.
_REAL_FLOATING: dict[tuple[type, Any], bool] = {}


def is_real_floating(dtype: Any, xp: Any) -> bool:
    """``xp.isdtype(dtype, "real floating")``, cached per dtype."""
    key = (type(dtype), dtype)
    floating = _REAL_FLOATING.get(key)
    if floating is None:
        floating = _REAL_FLOATING[key] = bool(xp.isdtype(dtype, "real floating"))
    return floating


def check_real_floating(x: Any, name: str, xp: Any) -> None:
    """Raise unless ``x`` has a real floating dtype (no silent casting of ints / bools)."""
    if not is_real_floating(x.dtype, xp):
        msg = f"`{name}` must have a real floating dtype; got {x.dtype}"
        raise InvalidTypeError(msg)


def element_count(x: Any) -> float:
    """Number of elements of ``x`` (``x.size`` is a method on torch; NaN for unknown dask sizes)."""
    return cast(float, math.prod(x.shape))


def check_reduction(reduction: object, x: Any) -> str:
    """Validate ``reduction``; a ``"mean"`` over zero elements is an error, not NaN."""
    check_choice(reduction, "reduction", REDUCTIONS)
    if reduction == "mean" and element_count(x) == 0:
        msg = (
            f"`reduction` 'mean' needs at least one element; got an array of shape {tuple(x.shape)}"
        )
        raise InvalidValueError(msg)
    return str(reduction)


def check_positive(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number ``> 0``."""
    number = check_real(value, name)
    if not number > 0:
        msg = f"`{name}` must be finite and > 0; got {value!r}"
        raise InvalidValueError(msg)
    return number


def check_optional_positive(value: object, name: str) -> float | None:
    """``None`` or a finite real number ``> 0``."""
    if value is None:
        return None
    try:
        return check_positive(value, name)
    except InvalidTypeError:
        msg = f"`{name}` must be None or a real number > 0; got {value!r}"
        raise InvalidTypeError(msg) from None


def check_axis(axis: object, ndim: int, array_name: str) -> int:
    """Return ``axis`` normalised to ``[0, ndim)``; the array must have ``ndim >= 1``."""
    axis = check_int(axis, "axis")  # numpy integers too (the one rule for int-like options)
    if ndim == 0:
        msg = (
            f"`{array_name}` must have at least 1 dimension (the distribution axis); "
            "got a 0-d array"
        )
        raise InvalidValueError(msg)
    if not -ndim <= axis < ndim:
        msg = f"`axis` must be in [{-ndim}, {ndim - 1}] for {ndim}-dimensional inputs; got {axis}"
        raise InvalidValueError(msg)
    return axis % ndim


def check_reduction_over(reduction: object, shape: Sequence[Any]) -> str:
    """Validate ``reduction`` for per-sample values of ``shape`` (a mean needs one)."""
    check_choice(reduction, "reduction", REDUCTIONS)
    if reduction == "mean" and math.prod(shape) == 0:
        msg = (
            "`reduction` 'mean' needs at least one per-sample value; got per-sample "
            f"shape {tuple(shape)}"
        )
        raise InvalidValueError(msg)
    return str(reduction)


def prepare_pair(
    a: Any, b: Any, names: tuple[str, str], broadcast: object, xp: Any
) -> tuple[Any, Any, Any, Any]:
    """Check a pair of inputs; return ``(xp, a, b, out_dtype)`` with equal shapes.

    Different floating dtypes are promoted (``xp.result_type``); the result is
    returned in the promoted dtype. Shapes must match unless ``broadcast``.
    """
    check_bool(broadcast, "broadcast")
    if xp is None:
        xp = get_xp(a, b, names=names)
    check_real_floating(a, names[0], xp)
    check_real_floating(b, names[1], xp)
    shape_a, shape_b = tuple(a.shape), tuple(b.shape)
    if shape_a != shape_b:
        if not broadcast:
            msg = (
                f"`{names[0]}` has shape {shape_a} but `{names[1]}` has shape {shape_b}; "
                "paired inputs must have equal shapes (pass broadcast=True to broadcast them)"
            )
            raise InvalidValueError(msg)
        try:
            a, b = xp.broadcast_arrays(a, b)
        except (ValueError, RuntimeError):
            msg = (
                f"`{names[0]}` with shape {shape_a} and `{names[1]}` with shape {shape_b} "
                "cannot be broadcast together"
            )
            raise InvalidValueError(msg) from None
    out_dtype = a.dtype
    if a.dtype != b.dtype:
        out_dtype = xp.result_type(a.dtype, b.dtype)
    return xp, a, b, out_dtype
