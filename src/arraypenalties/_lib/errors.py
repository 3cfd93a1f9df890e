"""The one exception hierarchy of arraypenalties.

Every exception the library raises derives from :class:`ArrayPenaltiesError`.
Bad option values and shapes are also :class:`ValueError`, wrong dtypes, types and
namespaces also :class:`TypeError`, so callers can catch either the library's base
class or the builtin they already expect.
"""

from __future__ import annotations

import sys
import warnings

__all__ = [
    "ArrayPenaltiesError",
    "BackendError",
    "FiniteDifferenceWarning",
    "GradientTrackingWarning",
    "InvalidTypeError",
    "InvalidValueError",
    "NonFiniteError",
    "UnknownNameError",
    "warn",
]


class ArrayPenaltiesError(Exception):
    """Base class of every exception raised by arraypenalties."""


class InvalidValueError(ArrayPenaltiesError, ValueError):
    """An option or an array has a value or shape outside what is allowed."""


class InvalidTypeError(ArrayPenaltiesError, TypeError):
    """An argument has the wrong type, dtype or array namespace."""


class NonFiniteError(ArrayPenaltiesError, ValueError):
    """An array holds NaN or infinite values where only finite ones are allowed.

    Attributes
    ----------
    kind : {"nan", "inf"}
        What was found; ``"nan"`` wins when both are present (it is checked first).

    Examples
    --------
    >>> from arraypenalties import NonFiniteError
    >>> error = NonFiniteError("inf")
    >>> error.kind, str(error)
    ('inf', 'array contains infinite values')
    """

    KINDS = ("nan", "inf")

    def __init__(self, kind: str, message: str | None = None) -> None:
        if kind not in self.KINDS:
            msg = f"`kind` must be one of 'nan', 'inf'; got {kind!r}"
            raise InvalidValueError(msg)
        if message is None:
            message = (
                "array contains NaN values" if kind == "nan" else "array contains infinite values"
            )
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __reduce__(self) -> tuple[type[NonFiniteError], tuple[str, str]]:
        # the default would call NonFiniteError(message): keep `kind` through pickling
        return (type(self), (self.kind, self.message))


class BackendError(ArrayPenaltiesError, RuntimeError):
    """The array's backend cannot do what was asked (e.g. gradients of dask arrays)."""


class UnknownNameError(InvalidValueError, KeyError):
    """A name (pipeline entry, built-in penalty, input) that is not known; also a KeyError."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class GradientTrackingWarning(UserWarning):
    """A gradient norm could not be computed; the norm is reported as ``None``."""


class FiniteDifferenceWarning(UserWarning):
    """A gradient was approximated by finite differences, not computed by autodiff."""


def warn(message: str, category: type[Warning]) -> None:
    """Warn, attributing the warning to the first caller outside arraypenalties.

    Python's default filters then show it once per line of user code, however
    deep inside the library the warning was raised.
    """
    frame = sys._getframe(1)
    level = 2  # 1 would be this function, 2 its caller
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        "arraypenalties."
    ):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
