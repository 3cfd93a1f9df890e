"""Weight schedules evaluated on a traced step (imports jax).

``arraypenalties.schedules`` computes weights on the host from Python numbers.
When the train step runs inside the caller's own ``jax.jit`` or ``lax.scan``,
its ``step_index`` is a tracer; :func:`traced_weight` computes the same
formulas with ``jax.numpy`` from the schedule's kind and options, so the whole
loop stays compiled. ``total`` (the run's length) stays a host number.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp

from arraypenalties._lib.errors import InvalidValueError
from arraypenalties.schedules import Schedule

__all__ = ["traced_weight"]

Array = Any


def _span(duration: float | None, total: float | None, name: str) -> float:
    if duration is not None:
        return duration
    if total is None:
        msg = f"`{name}` is None (the whole run), so pass `total_steps` to make_train_step"
        raise InvalidValueError(msg)
    return total


def traced_weight(schedule: Schedule, step: Array, total: float | None, dtype: Any) -> Array:
    """``schedule(step, total)`` for a traced ``step``, as a 0-d array of ``dtype``.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from arraypenalties.integrations._traced_schedules import traced_weight
    >>> from arraypenalties.schedules import warmup
    >>> ramp = warmup(1.0, steps=4)
    >>> jax.jit(lambda s: traced_weight(ramp, s, None, jnp.float32))(1)
    Array(0.25, dtype=float32)
    """
    step = jnp.asarray(step).astype(dtype)
    options = schedule.options
    kind = schedule.kind
    if kind == "constant":
        return jnp.full((), options["value"], dtype=dtype)
    if kind == "linear":
        start, stop, begin = options["init"], options["end"], options["begin"]
        steps = options["steps"]
        span = steps if steps is not None else _span(None, total, "steps") - begin
        if span <= 0:
            return jnp.full((), stop, dtype=dtype)
        fraction = jnp.clip((step - begin) / span, 0.0, 1.0)
        return start + (stop - start) * fraction
    if kind == "warmup":
        peak, span, start, then = (
            options["peak"],
            options["steps"],
            options["init"],
            options["then"],
        )
        if then is None:
            after: Array = jnp.full((), peak, dtype=dtype)
        else:
            rest = None if total is None else max(total - span, 0.0)
            after = traced_weight(then, step - span, rest if rest else None, dtype)
        return jnp.where(step < span, start + (peak - start) * step / span, after)
    if kind == "exponential_decay":
        exponent = jnp.maximum(step - options["begin"], 0.0) / options["steps"]
        if options["staircase"]:
            exponent = jnp.floor(exponent)
        value = options["init"] * jnp.power(options["rate"], exponent)
        bound = options["end"]
        if bound is not None:
            value = (
                jnp.maximum(value, bound) if options["rate"] < 1.0 else jnp.minimum(value, bound)
            )
        return value
    if kind == "cosine":
        span = _span(options["steps"], total, "steps")
        fraction = jnp.minimum(step / span, 1.0)
        start, stop = options["init"], options["end"]
        return stop + (start - stop) * 0.5 * (1.0 + jnp.cos(math.pi * fraction))
    msg = f"schedule kind {kind!r} has no traced form"
    raise InvalidValueError(msg)
