"""Weight schedules: a penalty's weight as a function of the training step or epoch.

A :class:`Schedule` maps ``(step, total)`` to a Python float. ``step`` counts
whatever unit you call it with, optimizer steps or epochs (fractional epochs
allowed), and ``total`` is the length of the run in the same unit; durations
left as ``None`` mean "the whole run" and then need ``total``. Schedules work
on host numbers only (no arrays), so they cost nothing per call and never sync
a device.

Kinds (names follow optax's schedules, with ``init`` / ``end`` for optax's
``init_value`` / ``end_value``): :func:`constant`, :func:`linear`,
:func:`warmup`, :func:`exponential_decay`, :func:`cosine`. Build by name with
:func:`schedule`, and schedule several pipeline weights together with
:func:`weight_schedule` and :func:`apply_scheduled_weights`.

Examples
--------
>>> from arraypenalties.schedules import cosine, warmup, weight_schedule
>>> weights = weight_schedule({"l2": 1e-4, "entropy": warmup(0.1, steps=10, then=cosine(0.1))})
>>> weights(0, 110)
{'l2': 0.0001, 'entropy': 0.0}
>>> weights(10, 110)
{'l2': 0.0001, 'entropy': 0.1}
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from arraypenalties._lib.checks import check_bool, check_real
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError, UnknownNameError

__all__ = [
    "SCHEDULE_KINDS",
    "Schedule",
    "WeightSchedule",
    "apply_scheduled_weights",
    "constant",
    "cosine",
    "exponential_decay",
    "linear",
    "schedule",
    "warmup",
    "weight_schedule",
]


def _check_type(value: object, name: str, types: tuple[type, ...], allowed: str) -> None:
    if not isinstance(value, types):
        msg = f"`{name}` must be {allowed}; got {value!r}"
        raise InvalidTypeError(msg)


def _check_duration(value: object, name: str) -> float | None:
    if value is None:
        return None
    number = check_real(value, name, low=0.0)
    if number == 0.0:
        msg = f"`{name}` must be > 0 (or None for the whole run); got {value!r}"
        raise InvalidValueError(msg)
    return number


def _check_kind(kind: object) -> str:
    if not isinstance(kind, str) or kind not in _EVALUATORS:
        msg = f"`kind` must be one of {', '.join(map(repr, SCHEDULE_KINDS))}; got {kind!r}"
        raise UnknownNameError(msg)
    return kind


def _resolve(duration: float | None, total: float | None, name: str) -> float:
    if duration is not None:
        return duration
    if total is None:
        msg = f"`{name}` is None (the whole run), so call the schedule with `total`"
        raise InvalidValueError(msg)
    return total


@dataclass(frozen=True)
class Schedule:
    """A weight as a function of the step: ``schedule(step, total=None) -> float``.

    Plain data (a kind name and its options), so it pickles, deep-copies and
    round-trips through :meth:`to_config` / :meth:`from_config`.

    Attributes
    ----------
    kind : str
        One of :data:`SCHEDULE_KINDS`.
    options : dict
        The checked options it was built with (``then`` holds a Schedule).
    """

    kind: str
    options: Mapping[str, Any]

    def __post_init__(self) -> None:
        _check_kind(self.kind)

    def fn(self, step: float, total: float | None) -> float:
        """The weight on already-checked numbers (``step >= 0``, ``total > 0`` or None)."""
        return _EVALUATORS[self.kind](self.options, step, total)

    def __call__(self, step: float, total: float | None = None) -> float:
        """The weight at ``step`` (>= 0) of a run of ``total`` (> 0) steps or epochs."""
        at = check_real(step, "step", low=0.0)
        length = None if total is None else _check_duration(total, "total")
        return self.fn(at, length)

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.options.items())
        return f"{self.kind}({options})"

    def to_config(self) -> dict[str, Any]:
        """``{"kind": ..., **options}``: JSON-ready data (a nested ``then`` as a mapping).

        Examples
        --------
        >>> from arraypenalties.schedules import Schedule, cosine, warmup
        >>> config = warmup(1.0, steps=4, then=cosine(1.0)).to_config()
        >>> config  # doctest: +NORMALIZE_WHITESPACE
        {'kind': 'warmup', 'peak': 1.0, 'steps': 4.0, 'init': 0.0,
         'then': {'kind': 'cosine', 'init': 1.0, 'end': 0.0, 'steps': None}}
        >>> Schedule.from_config(config)(6, total=8)
        0.5
        """
        config: dict[str, Any] = {"kind": self.kind}
        for key, value in self.options.items():
            config[key] = value.to_config() if isinstance(value, Schedule) else value
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Schedule:
        """The schedule :meth:`to_config` wrote. Only known kinds; nothing is imported."""
        _check_type(config, "config", (Mapping,), "a {'kind': ..., **options} mapping")
        return _from_spec(config, "config")


def constant(value: float) -> Schedule:
    """``value`` at every step.

    Examples
    --------
    >>> from arraypenalties.schedules import constant
    >>> constant(0.5)(100)
    0.5
    """
    return Schedule("constant", {"value": check_real(value, "value")})


def _constant(options: Mapping[str, Any], step: float, total: float | None) -> float:
    return float(options["value"])


def linear(init: float, end: float, *, steps: float | None = None, begin: float = 0.0) -> Schedule:
    """From ``init`` to ``end`` linearly over ``steps`` starting at ``begin``, then ``end``.

    ``steps=None`` spans the rest of the run (``total - begin``). optax's
    ``linear_schedule(init_value, end_value, transition_steps, transition_begin)``.

    Examples
    --------
    >>> from arraypenalties.schedules import linear
    >>> ramp = linear(0.0, 1.0, steps=10)
    >>> ramp(0), ramp(5), ramp(20)
    (0.0, 0.5, 1.0)
    >>> linear(1.0, 0.0)(3, total=4)  # over the whole run
    0.25
    """
    start, stop = check_real(init, "init"), check_real(end, "end")
    length = _check_duration(steps, "steps")
    offset = check_real(begin, "begin", low=0.0)
    return Schedule("linear", {"init": start, "end": stop, "steps": length, "begin": offset})


def _linear(options: Mapping[str, Any], step: float, total: float | None) -> float:
    start, stop, length, offset = (options[k] for k in ("init", "end", "steps", "begin"))
    span = length if length is not None else _resolve(None, total, "steps") - offset
    if span <= 0:
        return float(stop)
    fraction = min(max((step - offset) / span, 0.0), 1.0)
    return float(start + (stop - start) * fraction)


def warmup(
    peak: float, *, steps: float, init: float = 0.0, then: Schedule | None = None
) -> Schedule:
    """Linear warm-up from ``init`` to ``peak`` over ``steps``; then ``peak``, or ``then``.

    After the warm-up, ``then(step - steps, total - steps)`` continues (a decay
    that starts where the warm-up ends, as optax's ``warmup_cosine_decay_schedule``).

    Examples
    --------
    >>> from arraypenalties.schedules import cosine, warmup
    >>> ramp = warmup(1.0, steps=4)
    >>> ramp(1), ramp(4), ramp(100)
    (0.25, 1.0, 1.0)
    >>> warmup(1.0, steps=4, then=cosine(1.0))(7, total=10)  # half-way down the cosine
    0.5
    """
    top, start = check_real(peak, "peak"), check_real(init, "init")
    length = _check_duration(steps, "steps")
    if length is None:
        msg = "`steps` must be a number for warmup (the length of the warm-up); got None"
        raise InvalidValueError(msg)
    _check_type(then, "then", (Schedule, type(None)), "a Schedule or None")
    return Schedule("warmup", {"peak": top, "steps": length, "init": start, "then": then})


def _warmup(options: Mapping[str, Any], step: float, total: float | None) -> float:
    top, span, start, then = (options[k] for k in ("peak", "steps", "init", "then"))
    if step < span:
        return float(start + (top - start) * step / span)
    if then is None:
        return float(top)
    rest = None if total is None else max(total - span, 0.0)
    return float(then.fn(step - span, rest if rest else None))


def exponential_decay(
    init: float,
    *,
    rate: float,
    steps: float,
    staircase: bool = False,
    end: float | None = None,
    begin: float = 0.0,
) -> Schedule:
    """``init · rate^((step − begin) / steps)``, optionally stepwise and bounded by ``end``.

    optax's ``exponential_decay(init_value, transition_steps, decay_rate,
    transition_begin, staircase, end_value)``. ``end`` is a lower bound when
    ``rate < 1`` and an upper bound when ``rate > 1``.

    Examples
    --------
    >>> from arraypenalties.schedules import exponential_decay
    >>> decay = exponential_decay(1.0, rate=0.5, steps=10)
    >>> decay(0), decay(10), decay(20)
    (1.0, 0.5, 0.25)
    >>> exponential_decay(1.0, rate=0.5, steps=10, staircase=True)(19)
    0.5
    """
    start = check_real(init, "init")
    factor = check_real(rate, "rate", low=0.0)
    if factor == 0.0:
        msg = f"`rate` must be > 0; got {rate!r}"
        raise InvalidValueError(msg)
    length = _check_duration(steps, "steps")
    if length is None:
        msg = "`steps` must be a number for exponential_decay; got None"
        raise InvalidValueError(msg)
    check_bool(staircase, "staircase")
    bound = None if end is None else check_real(end, "end")
    offset = check_real(begin, "begin", low=0.0)
    options: dict[str, Any] = {"init": start, "rate": factor, "steps": length}
    options |= {"staircase": staircase, "end": bound, "begin": offset}
    return Schedule("exponential_decay", options)


def _exponential_decay(options: Mapping[str, Any], step: float, total: float | None) -> float:
    start, factor, span = options["init"], options["rate"], options["steps"]
    bound, offset = options["end"], options["begin"]
    exponent = max(step - offset, 0.0) / span
    value = start * factor ** (math.floor(exponent) if options["staircase"] else exponent)
    if bound is not None:
        value = max(value, bound) if factor < 1.0 else min(value, bound)
    return float(value)


def cosine(init: float, *, end: float = 0.0, steps: float | None = None) -> Schedule:
    """Half a cosine from ``init`` down to ``end`` over ``steps`` (default: the run), then ``end``.

    optax's ``cosine_decay_schedule(init_value, decay_steps, alpha)`` with
    ``end = alpha · init``.

    Examples
    --------
    >>> from arraypenalties.schedules import cosine
    >>> decay = cosine(1.0, steps=10)
    >>> decay(0), decay(5), decay(10), decay(50)
    (1.0, 0.5, 0.0, 0.0)
    """
    start, stop = check_real(init, "init"), check_real(end, "end")
    return Schedule(
        "cosine", {"init": start, "end": stop, "steps": _check_duration(steps, "steps")}
    )


def _cosine(options: Mapping[str, Any], step: float, total: float | None) -> float:
    start, stop = options["init"], options["end"]
    span = _resolve(options["steps"], total, "steps")
    fraction = min(step / span, 1.0)
    return float(stop + (start - stop) * 0.5 * (1.0 + math.cos(math.pi * fraction)))


_EVALUATORS: dict[str, Callable[[Mapping[str, Any], float, float | None], float]] = {
    "constant": _constant,
    "linear": _linear,
    "warmup": _warmup,
    "exponential_decay": _exponential_decay,
    "cosine": _cosine,
}
_FACTORIES: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "linear": linear,
    "warmup": warmup,
    "exponential_decay": exponential_decay,
    "cosine": cosine,
}
SCHEDULE_KINDS: tuple[str, ...] = tuple(_FACTORIES)


def schedule(kind: str, /, **options: Any) -> Schedule:
    """Build a schedule by name: ``schedule("cosine", init=0.1, steps=1000)``.

    ``then`` of a warm-up may itself be a ``{"kind": ..., ...}`` mapping.

    Raises
    ------
    UnknownNameError
        ``kind`` is not one of :data:`SCHEDULE_KINDS` (a ``ValueError`` and a
        ``KeyError``); the message lists the known kinds.

    Examples
    --------
    >>> from arraypenalties.schedules import schedule
    >>> schedule("linear", init=0.0, end=1.0, steps=4)(1)
    0.25
    """
    factory = _FACTORIES[_check_kind(kind)]
    _check_option_names(kind, factory, options)
    then = options.get("then")
    if isinstance(then, Mapping):
        options = {**options, "then": _from_spec(then, "then")}
    return factory(**options)


def _check_option_names(kind: str, factory: Callable[..., Schedule], options: Any) -> None:
    """Unknown or missing options raise naming them (the factory's own errors pass through)."""
    parameters = inspect.signature(factory).parameters
    allowed = ", ".join(parameters)
    for name in options:
        if name not in parameters:
            msg = f"`{name}` is not an option of schedule {kind!r}; allowed: {allowed}"
            raise InvalidTypeError(msg)
    for name, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and name not in options:
            msg = f"`{name}` is required by schedule {kind!r} (options: {allowed})"
            raise InvalidTypeError(msg)


def _from_spec(spec: object, name: str) -> Schedule:
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return constant(spec)
    if isinstance(spec, Mapping):
        options = dict(spec)
        for key in options:
            if not isinstance(key, str):
                msg = f"`{name}` keys must be option names (str); got {key!r}"
                raise InvalidTypeError(msg)
        kind = options.pop("kind", None)
        if kind is None:
            msg = f"`{name}` needs a 'kind' key (one of {', '.join(SCHEDULE_KINDS)}); got {spec!r}"
            raise InvalidValueError(msg)
        return schedule(kind, **options)
    msg = f"`{name}` must be a Schedule, a number or a {{'kind': ...}} mapping; got {spec!r}"
    raise InvalidTypeError(msg)


@dataclass(frozen=True)
class WeightSchedule:
    """Several named schedules: ``weights(step, total=None) -> {name: weight}``.

    Plain data: pickles, deep-copies, and round-trips through :meth:`to_config`
    (a JSON-ready mapping) and :meth:`from_config` (which accepts only the
    kinds of :data:`SCHEDULE_KINDS` and numbers; nothing is imported or called).
    """

    schedules: Mapping[str, Schedule]

    def __call__(self, step: float, total: float | None = None) -> dict[str, float]:
        return {name: fn(step, total) for name, fn in self.schedules.items()}

    def to_config(self) -> dict[str, dict[str, Any]]:
        """``{name: {"kind": ..., **options}}``, the input form of :func:`weight_schedule`.

        Examples
        --------
        >>> import json
        >>> from arraypenalties.schedules import WeightSchedule, weight_schedule
        >>> weights = weight_schedule({"l1": 1e-3, "kl": {"kind": "cosine", "init": 0.1}})
        >>> config = weights.to_config()
        >>> config["kl"]
        {'kind': 'cosine', 'init': 0.1, 'end': 0.0, 'steps': None}
        >>> restored = WeightSchedule.from_config(json.loads(json.dumps(config)))
        >>> restored(5, total=10) == weights(5, total=10)
        True
        """
        return {name: fn.to_config() for name, fn in self.schedules.items()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WeightSchedule:
        """The schedule :meth:`to_config` wrote; as :func:`weight_schedule`, naming ``config``."""
        return _weight_schedule(config, "config")


def weight_schedule(specs: Mapping[str, Any]) -> WeightSchedule:
    """Schedule the weights of several named penalties together.

    Parameters
    ----------
    specs : mapping of str to Schedule, number or mapping
        Per penalty name: a :class:`Schedule`, a number (constant weight) or a
        ``{"kind": "cosine", "init": 0.1, ...}`` mapping (JSON / YAML friendly).

    Returns
    -------
    WeightSchedule
        ``weights(step, total=None)`` returns ``{name: weight}`` in ``specs`` order.

    Raises
    ------
    UnknownNameError
        A mapping names an unknown ``kind``.
    InvalidValueError, InvalidTypeError
        Bad options (each message names the option).

    Examples
    --------
    >>> from arraypenalties.schedules import weight_schedule
    >>> weights = weight_schedule({"l1": {"kind": "linear", "init": 0.0, "end": 1e-3}})
    >>> weights(5, total=10)
    {'l1': 0.0005}
    """
    return _weight_schedule(specs, "specs")


def _weight_schedule(specs: object, label: str) -> WeightSchedule:
    _check_type(specs, label, (Mapping,), "a mapping of penalty names to schedules")
    assert isinstance(specs, Mapping)
    return WeightSchedule(
        {str(name): _from_spec(spec, f"{label}[{name!r}]") for name, spec in specs.items()}
    )


class SupportsUpdateWeight(Protocol):
    """Anything with ``update_weight(name, weight)`` returning a new object (a ``Pipeline``)."""

    def update_weight(self, name: str, weight: float, /) -> Any: ...


P = TypeVar("P", bound=SupportsUpdateWeight)


def apply_scheduled_weights(pipeline: P, weights: Mapping[str, float]) -> P:
    """Return ``pipeline`` with every weight in ``weights`` set (``update_weight`` per name).

    The pipeline is immutable: the result is a new one; unknown names raise
    the pipeline's own ``KeyError``.

    Examples
    --------
    >>> from arraypenalties import Pipeline
    >>> from arraypenalties.schedules import apply_scheduled_weights, weight_schedule
    >>> schedule = weight_schedule({"l2": {"kind": "linear", "init": 0.0, "end": 1.0}})
    >>> p = Pipeline().add("l1", "l1").add("l2", "l2", weight=0.0)
    >>> apply_scheduled_weights(p, schedule(3, total=4)).get("l2").weight
    0.75
    """
    if not callable(getattr(pipeline, "update_weight", None)):
        msg = f"`pipeline` must have an update_weight(name, weight) method; got {pipeline!r}"
        raise InvalidTypeError(msg)
    _check_type(weights, "weights", (Mapping,), "a mapping of entry names to weights")
    for name, weight in weights.items():
        pipeline = pipeline.update_weight(name, weight)
    return pipeline
