"""Option and array checks, all with one message style.

Messages name the parameter in backticks, say what was given and what is allowed.
Checks look only at Python options, dtypes and (static) shapes, never at array
values, so they cost nothing under ``jax.jit`` or ``torch.compile``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from numbers import Real
from typing import Any, cast

from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError

__all__ = [
    "REDUCTIONS",
    "check_bool",
    "check_choice",
    "check_int",
    "check_real",
    "check_real_floating",
    "check_reduction",
    "element_count",
    "is_real_floating",
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
