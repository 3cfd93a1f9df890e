"""The regularizer record, its checks and the adapter's errors (no torch needed here)."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from arraypenalties import ArrayPenaltiesError, InvalidTypeError, InvalidValueError

__all__ = [
    "ON_NONFINITE",
    "RegularizerError",
    "RegularizerSpec",
    "check_on_nonfinite",
    "check_specs",
    "reaches_every_datum",
    "whole_batch_spec",
]

ON_NONFINITE = ("raise", "warn", "zero")


class RegularizerError(ArrayPenaltiesError, RuntimeError):
    """A regularizer failed (raised, or returned something that is not a 0-d tensor).

    The message names the regularizer; the original exception is chained as
    ``__cause__``.

    Examples
    --------
    >>> from arraypenalties.tinker import RegularizerError
    >>> error = RegularizerError("regularizer 'kl' failed: boom")
    >>> isinstance(error, RuntimeError), str(error)
    (True, "regularizer 'kl' failed: boom")
    """


@dataclass(frozen=True)
class RegularizerSpec:
    """One data-aware regularizer: ``fn(data, logprobs_list)`` weighted by ``weight``.

    Parameters
    ----------
    fn : callable
        Called as ``fn(data, logprobs_list)`` with the datums and one log-prob
        tensor per datum; returns a 0-d tensor, or ``(loss, metrics)`` where
        ``metrics`` maps names (without ``:``) to numbers, bools or 0-d tensors.
    weight : float
        Finite and ``>= 0``; the term added to the loss is ``weight · fn(...)``.
    name : str
        Non-empty, without ``:``; unique among the regularizers of one call.
    enabled : bool, default True
        Disabled specs are neither computed nor reported.

    Raises
    ------
    InvalidTypeError
        ``fn`` not callable, ``weight`` not a real number, ``name`` not a str,
        ``enabled`` not a bool.
    InvalidValueError
        ``weight`` negative or not finite, ``name`` empty or containing ``:``.

    Examples
    --------
    >>> from arraypenalties.tinker import RegularizerSpec
    >>> spec = RegularizerSpec(lambda data, logprobs: logprobs[0].sum(), weight=0.5, name="sum")
    >>> spec.name, spec.weight, spec.enabled
    ('sum', 0.5, True)
    >>> try:
    ...     RegularizerSpec(print, weight=-1.0, name="bad")
    ... except ValueError as error:
    ...     print(error)
    `weight` of regularizer 'bad' must be finite and >= 0; got -1.0
    """

    fn: Callable[..., Any]
    weight: float
    name: str
    enabled: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _checked(self.fn, self.weight, self.name, self.enabled))


def _checked(fn: object, weight: object, name: object, enabled: object) -> float:
    """The spec's fields checked; the weight as a float."""
    if not isinstance(name, str):
        msg = f"`name` must be a str; got {type(name).__name__} {name!r}"
        raise InvalidTypeError(msg)
    if not name or ":" in name:
        msg = f"`name` must be a non-empty str without ':'; got {name!r}"
        raise InvalidValueError(msg)
    if not callable(fn):
        msg = f"`fn` of regularizer {name!r} must be callable; got {fn!r}"
        raise InvalidTypeError(msg)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        msg = (
            f"`weight` of regularizer {name!r} must be a real number; "
            f"got {type(weight).__name__} {weight!r}"
        )
        raise InvalidTypeError(msg)
    if not (math.isfinite(weight) and weight >= 0):
        msg = f"`weight` of regularizer {name!r} must be finite and >= 0; got {weight!r}"
        raise InvalidValueError(msg)
    if not isinstance(enabled, bool):
        msg = (
            f"`enabled` of regularizer {name!r} must be True or False; got {enabled!r} "
            f"of type {type(enabled).__name__}"
        )
        raise InvalidTypeError(msg)
    return float(weight)


def check_specs(regularizers: Iterable[object]) -> tuple[RegularizerSpec, ...]:
    """The enabled specs, in order; every item checked and names unique (among all specs)."""
    if isinstance(regularizers, (str, bytes)) or not isinstance(regularizers, Iterable):
        msg = f"`regularizers` must be a sequence of RegularizerSpec; got {regularizers!r}"
        raise InvalidTypeError(msg)
    specs: list[RegularizerSpec] = []
    for spec in regularizers:
        if not isinstance(spec, RegularizerSpec):
            msg = f"each of `regularizers` must be a RegularizerSpec; got {spec!r}"
            raise InvalidTypeError(msg)
        specs.append(spec)
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        msg = f"regularizer names must be unique; duplicated: {duplicates} (names are {names})"
        raise InvalidValueError(msg)
    return tuple(spec for spec in specs if spec.enabled)


def check_on_nonfinite(on_nonfinite: object) -> str:
    if not isinstance(on_nonfinite, str) or on_nonfinite not in ON_NONFINITE:
        msg = f"`on_nonfinite` must be one of {list(ON_NONFINITE)}; got {on_nonfinite!r}"
        raise InvalidValueError(msg)
    return on_nonfinite


# built-in terms whose graph reaches every datum's log-probs (they concatenate them all):
# with one of them in the total, the zero-gradient anchor for unread datums is not needed
_WHOLE_BATCH: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


def whole_batch_spec(fn: Callable[..., Any], weight: float, name: str) -> RegularizerSpec:
    """A spec whose ``fn`` is known to read (and differentiate through) every datum."""
    _WHOLE_BATCH.add(fn)
    return RegularizerSpec(fn, weight, name)


def reaches_every_datum(fn: Callable[..., Any]) -> bool:
    return fn in _WHOLE_BATCH
