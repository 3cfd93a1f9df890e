"""Telemetry: attach handlers to the events arraypenalties emits (``:telemetry``-style).

Events are tuples of strings. :class:`~arraypenalties.Pipeline` emits

- ``("arraypenalties", "pipeline", "compute", "start")``: measurements
  ``{"system_time": ns}``; metadata ``{"pipeline_name", "entry_count"}``;
- ``("arraypenalties", "pipeline", "compute", "stop")``: measurements
  ``{"duration": ns}``; metadata adds ``"metrics"`` (a copy of the metrics dict) and
  ``"total"`` (a float);
- ``("arraypenalties", "pipeline", "compute", "exception")``: measurements
  ``{"duration": ns}``; metadata adds ``"kind"`` (the exception type),
  ``"reason"`` (the exception) and ``"stacktrace"`` (its traceback);

and gradient tracking emits

- ``("arraypenalties", "gradient", "computed")``: measurements
  ``{"duration": ns, "grad_norm": float}``; metadata ``{"name"}`` (the entry);
- ``("arraypenalties", "gradient", "failed")``: measurements ``{"duration": ns}``;
  metadata ``{"name", "reason"}``.

``system_time`` is :func:`time.time_ns`; durations come from
:func:`time.perf_counter_ns`. A handler is called as
``handler(event, measurements, metadata)``. A handler that raises is detached and
the error logged on the ``arraypenalties.telemetry`` logger; the computation goes
on. With no handler attached, emitting costs one dictionary lookup (and
``Pipeline.compute`` skips building the measurements).

Examples
--------
>>> from arraypenalties import telemetry
>>> seen = []
>>> telemetry.attach("log", [("arraypenalties", "pipeline", "compute", "stop")],
...                  lambda event, measurements, metadata: seen.append(metadata["total"]))
>>> telemetry.emit(("arraypenalties", "pipeline", "compute", "stop"), {}, {"total": 0.5})
>>> seen
[0.5]
>>> telemetry.detach("log")
True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from arraypenalties._lib.checks import check_callable
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError

__all__ = [
    "EVENTS",
    "Event",
    "Handler",
    "attach",
    "detach",
    "emit",
    "handlers",
    "is_observed",
]

Event = tuple[str, ...]
Handler = Callable[[Event, Mapping[str, Any], Mapping[str, Any]], object]

EVENTS: tuple[Event, ...] = (
    ("arraypenalties", "pipeline", "compute", "start"),
    ("arraypenalties", "pipeline", "compute", "stop"),
    ("arraypenalties", "pipeline", "compute", "exception"),
    ("arraypenalties", "gradient", "computed"),
    ("arraypenalties", "gradient", "failed"),
)

_logger = logging.getLogger(__name__)
# handler id -> (events, handler); event -> [(handler id, handler)] for emit's one lookup
_by_id: dict[str, tuple[tuple[Event, ...], Handler]] = {}
_by_event: dict[Event, list[tuple[str, Handler]]] = {}


def _check_event(event: object) -> Event:
    if not (isinstance(event, tuple) and event and all(isinstance(p, str) for p in event)):
        msg = f"each event must be a non-empty tuple of strings; got {event!r}"
        raise InvalidTypeError(msg)
    return event


def attach(handler_id: str | object, events: Iterable[Event], handler: Handler | object) -> None:
    """Call ``handler(event, measurements, metadata)`` whenever one of ``events`` is emitted.

    Parameters
    ----------
    handler_id : str
        Unique id, used to :func:`detach` the handler.
    events : iterable of tuple of str
        Event names, e.g. ``[("arraypenalties", "pipeline", "compute", "stop")]``;
        :data:`EVENTS` lists the ones arraypenalties emits.
    handler : callable
        Called synchronously, in the thread that emits.

    Raises
    ------
    InvalidValueError
        ``handler_id`` is already attached, or ``events`` is empty.
    InvalidTypeError
        ``handler_id`` is not a string, an event is not a tuple of strings, or
        ``handler`` is not callable.
    """
    if not isinstance(handler_id, str):
        msg = f"`handler_id` must be a str; got {handler_id!r}"
        raise InvalidTypeError(msg)
    if handler_id in _by_id:
        msg = f"`handler_id` {handler_id!r} is already attached; detach it first"
        raise InvalidValueError(msg)
    handler = check_callable(handler, "handler")
    checked = tuple(dict.fromkeys(_check_event(event) for event in events))
    if not checked:
        msg = "`events` must name at least one event"
        raise InvalidValueError(msg)
    _by_id[handler_id] = (checked, handler)
    for event in checked:
        _by_event.setdefault(event, []).append((handler_id, handler))


def detach(handler_id: str) -> bool:
    """Remove a handler; return False if no handler had that id."""
    entry = _by_id.pop(handler_id, None)
    if entry is None:
        return False
    for event in entry[0]:
        remaining = [(hid, h) for hid, h in _by_event[event] if hid != handler_id]
        if remaining:
            _by_event[event] = remaining
        else:
            del _by_event[event]
    return True


def handlers() -> dict[str, tuple[Event, ...]]:
    """The attached handler ids and the events each listens to."""
    return {handler_id: events for handler_id, (events, _) in _by_id.items()}


def is_observed(event: Event) -> bool:
    """True when at least one handler listens to ``event`` (skip building measurements if not)."""
    return event in _by_event


def emit(event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """Call every handler attached to ``event``; a handler that raises is detached and logged.

    Each handler receives its own copies of ``measurements`` and ``metadata`` (and
    of the dicts they hold, such as a pipeline's ``metrics``): what one handler
    changes reaches neither the caller nor the other handlers.
    """
    listeners = _by_event.get(event)
    if not listeners:
        return
    for handler_id, handler in tuple(listeners):
        try:
            handler(event, _copied(measurements), _copied(metadata))
        except Exception:
            detach(handler_id)
            _logger.exception(
                "telemetry handler %r raised on event %r and was detached", handler_id, event
            )


def _copied(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
