"""Timing helper for the benchmarks: the median per-call time of zero-argument callables.

Each callable is warmed up first (this is where ``jax.jit`` compiles), then timed
with :class:`timeit.Timer` (garbage collection off) in repeats of ``number`` calls,
``number`` chosen so that one repeat takes at least ``min_time`` seconds. The
report is the median over repeats of the per-call time, with the minimum kept
for reference. :func:`compare` interleaves the repeats of two callables so that
load from other processes hits both alike and the ratio stays meaningful.

Asynchronous frameworks need ``sync``: a function applied to every result that
returns only once the work is done (``jax.block_until_ready``). torch on the CPU
and numpy are synchronous and need none.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Timing", "compare", "measure"]


@dataclass(frozen=True)
class Timing:
    """Per-call times in seconds."""

    median: float
    minimum: float
    number: int
    repeats: int


def _timer(fn: Callable[[], Any], sync: Callable[[Any], Any] | None) -> timeit.Timer:
    if sync is None:
        return timeit.Timer(fn)
    return timeit.Timer(lambda: sync(fn()))


def _calibrate(timer: timeit.Timer, min_time: float) -> int:
    """Smallest ``number`` in 1, 2, 5, 10, 20, 50, ... whose run takes ``>= min_time``."""
    base = 1
    while True:
        for factor in (1, 2, 5):
            number = base * factor
            if timer.timeit(number) >= min_time:
                return number
        base *= 10


def compare(
    *fns: Callable[[], Any],
    sync: Callable[[Any], Any] | None = None,
    repeats: int = 25,
    min_time: float = 0.02,
    warmup: int = 3,
) -> list[Timing]:
    """Time every callable in ``fns``, interleaving their repeats; one :class:`Timing` each."""
    timers = [_timer(fn, sync) for fn in fns]
    for timer in timers:
        timer.timeit(warmup)
    numbers = [_calibrate(timer, min_time) for timer in timers]
    samples: list[list[float]] = [[] for _ in timers]
    for _ in range(repeats):
        for timer, number, times in zip(timers, numbers, samples, strict=True):
            times.append(timer.timeit(number) / number)
    return [
        Timing(statistics.median(times), min(times), number, repeats)
        for number, times in zip(numbers, samples, strict=True)
    ]


def measure(
    fn: Callable[[], Any],
    *,
    sync: Callable[[Any], Any] | None = None,
    repeats: int = 25,
    min_time: float = 0.02,
    warmup: int = 3,
) -> Timing:
    """Time one callable; see :func:`compare`."""
    return compare(fn, sync=sync, repeats=repeats, min_time=min_time, warmup=warmup)[0]
