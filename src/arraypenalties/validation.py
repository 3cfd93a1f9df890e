"""Eager finiteness checks: ``validate`` (raise) and ``is_finite`` (branch).

Unlike the penalties these read array values on the host (one synchronisation
per call, more only to describe an error), so they are for eager code: under
``jax.jit`` or ``torch.compile`` use ``xp.isfinite`` on the traced value instead.
"""

from __future__ import annotations

from typing import Any

from arraypenalties._lib.checks import is_real_floating
from arraypenalties._lib.errors import InvalidTypeError, NonFiniteError
from arraypenalties._lib.namespace import resolve_xp

__all__ = ["is_finite", "validate"]


def _can_hold_non_finite(x: Any, xp: Any) -> bool:
    """Only floating (real or complex) arrays can hold NaN or inf; integers and bools cannot."""
    return is_real_floating(x.dtype, xp) or bool(xp.isdtype(x.dtype, "complex floating"))


def is_finite(x: Any, /, *, xp: Any = None) -> bool:
    """Whether every element of ``x`` is finite (no NaN, no ±inf).

    Parameters
    ----------
    x : array
        Any array; integer and bool arrays are always finite.
    xp : namespace, optional
        The Array API namespace of ``x``; detected when omitted.

    Returns
    -------
    bool
        A Python bool (one host synchronisation; dask computes).

    Raises
    ------
    InvalidTypeError
        ``x`` is not an array.

    Notes
    -----
    .. math:: \\text{is\\_finite}(x) = \\bigwedge_i \\big(|x_i| < \\infty\\big)

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties import is_finite
    >>> is_finite(np.asarray([1.0, 2.0])), is_finite(np.asarray([1.0, np.inf]))
    (True, False)
    """
    xp = resolve_xp(xp, x, names=("x",))
    if not _can_hold_non_finite(x, xp):
        return True
    return bool(xp.all(xp.isfinite(x)))


def _count(mask: Any, xp: Any) -> int:
    return int(xp.sum(xp.astype(mask, xp.int64)))


def validate(x: Any, /, *, name: str = "x", xp: Any = None) -> Any:
    """Return ``x`` unchanged if every element is finite, else raise :class:`NonFiniteError`.

    Parameters
    ----------
    x : array
        Any array; integer and bool arrays are always valid.
    name : str, default "x"
        How the error message calls ``x``.
    xp : namespace, optional
        The Array API namespace of ``x``; detected when omitted.

    Returns
    -------
    array
        ``x`` itself.

    Raises
    ------
    NonFiniteError
        ``x`` holds NaN (``.kind == "nan"``, checked first) or ±inf
        (``.kind == "inf"``); the message gives how many of how many elements.
    InvalidTypeError
        ``x`` is not an array.

    Notes
    -----
    .. math:: \\text{validate}(x) = x \\quad \\text{if } \\forall i: |x_i| < \\infty

    One host synchronisation when ``x`` is finite; a dask ``x`` is computed.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties import NonFiniteError, validate
    >>> validate(np.asarray([1.0, 2.0]))
    array([1., 2.])
    >>> try:
    ...     validate(np.asarray([np.nan, np.inf, 1.0]), name="loss")
    ... except NonFiniteError as error:
    ...     print(error.kind, "|", error)
    nan | `loss` contains 1 NaN value(s) among 3 elements
    """
    if not isinstance(name, str) or not name:
        msg = f"`name` must be a non-empty str (the name errors use for `x`); got {name!r}"
        raise InvalidTypeError(msg)
    xp = resolve_xp(xp, x, names=(name,))
    if not _can_hold_non_finite(x, xp) or bool(xp.all(xp.isfinite(x))):
        return x
    total = x.size if isinstance(x.size, int) else _count(xp.ones_like(x, dtype=xp.bool), xp)
    nan = xp.isnan(x)
    nan_count = _count(nan, xp)
    if nan_count:
        msg = f"`{name}` contains {nan_count} NaN value(s) among {total} elements"
        raise NonFiniteError("nan", msg)
    inf_count = _count(xp.isinf(x), xp)
    msg = f"`{name}` contains {inf_count} infinite value(s) among {total} elements"
    raise NonFiniteError("inf", msg)
