"""The compute engine of a pipeline: values, weighted total, metrics in one host transfer.

``compute`` runs one function of the call's arrays that returns the total and
every metric stacked into one 1-d array, plus a :class:`Layout` that says what
sits where. The layout is a per-call value (on jax, a per-trace value, looked up
by the shapes and dtypes the call was traced for): nothing about one call is
stored on the shared pipeline, so a pipeline can be used from several threads.
The stacked array crosses to the host once (:func:`unpack`); gradient norms,
telemetry and warnings are then read off the layout.

On jax that function is jitted and cached on the pipeline (per backend,
tracking setting and hashable ``extra_args``), so each step reuses one compiled
function; the gradient closures are cached the same way, so the backend's own
per-term cache hits as well.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol

from array_api_compat import device as array_device

from arraypenalties import telemetry
from arraypenalties._lib.checks import check_bool, is_real_floating
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError, NonFiniteError
from arraypenalties.backends import get_backend, primitives
from arraypenalties.backends.primitives import as_array
from arraypenalties.pipelines._entry import Entry
from arraypenalties.pipelines._inputs import Inputs, reference
from arraypenalties.tracking import GradPlan, emit_events, tracked_gradients, warn_failures

__all__ = ["Layout", "compute", "compute_total", "grad_norms", "pack", "unpack"]

Array = Any
Arrays = Mapping[str, Array]
EVENT = ("arraypenalties", "pipeline", "compute")
START, STOP, EXCEPTION = (*EVENT, "start"), (*EVENT, "stop"), (*EVENT, "exception")
_CACHE_SIZE = 16


class Computable(Protocol):
    """What the engine reads from a pipeline."""

    _name: str
    _entries: tuple[Entry, ...]
    _active: tuple[Entry, ...]
    _cache: dict[Any, Any]
    _inputs: ClassVar[Inputs]


class Layout(NamedTuple):
    """Where one call's metrics sit in its stacked array (a per-call value).

    ``present[i]`` says whether part ``i`` of the stacked parts was an array (it
    was None otherwise: a gradient norm that could not be computed).
    """

    present: tuple[bool, ...]
    tracked: tuple[str, ...] = ()
    failures: tuple[tuple[str, str], ...] = ()


# ------------------------------------------------------------------ pack / transfer / unpack
def pack(parts: Sequence[Array | None], xp: Any) -> tuple[Array | None, tuple[bool, ...]]:
    """Stack the parts that are arrays into one 1-d float array (on the device).

    float64 when any part is float64, else float32. Returns the stack (None when
    no part is an array) and which parts were arrays.
    """
    arrays = [part for part in parts if part is not None]
    present = tuple(part is not None for part in parts)
    if not arrays:
        return None, present
    dtype = xp.float64 if any(a.dtype == xp.float64 for a in arrays) else xp.float32
    return xp.stack([xp.astype(a, dtype, copy=False) for a in arrays]), present


def unpack(stacked: Array | None, present: Sequence[bool]) -> list[float | None]:
    """The one host transfer: Python floats in the parts' order, None where a part was None."""
    if stacked is None:
        return [None] * len(present)
    floats: list[float | None] = list(primitives.to_floats(stacked))
    if len(floats) == len(present):  # every part was an array: nothing to place
        return floats
    found = iter(floats)
    return [next(found) if here else None for here in present]


# ----------------------------------------------------------------------------- values
def options_key(extra_args: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """A hashable cache key for ``extra_args``, or None when its values are not hashable."""
    key = tuple(sorted((extra_args or {}).items()))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def check_extra_args(entries: Sequence[Entry], extra_args: object) -> Mapping[str, Any] | None:
    """``extra_args`` checked: a mapping whose every option some entry accepts."""
    if extra_args is None:
        return None
    if not isinstance(extra_args, Mapping) or not all(isinstance(k, str) for k in extra_args):
        msg = f"`extra_args` must be a mapping of option names to values; got {extra_args!r}"
        raise InvalidTypeError(msg)
    for key in extra_args:
        if not any(e.accepts is None or key in e.accepts for e in entries):
            msg = (
                f"`extra_args` option {key!r} is accepted by no entry of the pipeline; "
                f"entries are {[e.name for e in entries]}"
            )
            raise InvalidValueError(msg)
    return extra_args


def entry_value(entry: Entry, args: tuple[Array, ...], opts: Mapping[str, Any], xp: Any) -> Array:
    """``entry.fn(*args, **opts)``, which must be a real (or integer) 0-d array."""
    value = entry.fn(*args, **opts)
    shape = getattr(value, "shape", None)
    if shape is None or tuple(shape) != ():
        got = f"shape {tuple(shape)}" if shape is not None else type(value).__name__
        msg = f"entry {entry.name!r} must return a 0-d array; got {got}"
        raise InvalidValueError(msg)
    if not is_real_floating(value.dtype, xp) and xp.isdtype(value.dtype, "complex floating"):
        msg = (
            f"entry {entry.name!r} must return a real 0-d array; got dtype {value.dtype} "
            "(a complex value would lose its imaginary part in the total)"
        )
        raise InvalidTypeError(msg)
    return value


def _values(pipe: Computable, xp: Any, arrays: Arrays, extra: Any) -> list[Array]:
    args = pipe._inputs.args
    return [entry_value(e, args(e, arrays), e.call_opts(extra), xp) for e in pipe._active]


def _weighted(
    pipe: Computable, xp: Any, arrays: Arrays, values: Sequence[Array]
) -> tuple[list[Array], list[Array], Array]:
    """``(values, weighted terms, total)``; integer values (argmax-style) become floats."""
    first = reference(xp, arrays)
    values = [
        value if is_real_floating(value.dtype, xp) else xp.astype(value, first.dtype)
        for value in values
    ]
    terms = [entry.weight * value for entry, value in zip(pipe._active, values, strict=True)]
    if not terms:
        return values, terms, xp.zeros((), dtype=first.dtype, device=array_device(first))
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return values, terms, as_array(total, xp)


def compute_total(pipe: Computable, x: Any, extra_args: Any) -> Array:
    """``Σ wᵢ·fᵢ`` as a 0-d array: no host transfer, no telemetry (traceable)."""
    extra = check_extra_args(pipe._entries, extra_args)
    xp, arrays = pipe._inputs.arrays(x, pipe._active)
    return _weighted(pipe, xp, arrays, _values(pipe, xp, arrays, extra))[2]


# ----------------------------------------------------------------------------- gradients
def _cached(pipe: Computable, key: Any, build: Callable[[], Any]) -> Any:
    # the same objects every step: jax's compiled functions and per-term cache are reused
    if key is None:
        return build()
    found = pipe._cache.get(key)
    if found is None:
        if len(pipe._cache) >= _CACHE_SIZE:
            pipe._cache.clear()
        found = pipe._cache[key] = build()
    return found


def grad_plan(pipe: Computable, xp: Any, arrays: Arrays, extra: Any) -> GradPlan:
    """One-argument functions of one flat array: the enabled, differentiable entries."""
    entries = tuple(e for e in pipe._active if e.differentiable)
    inputs = pipe._inputs
    flat_key, flat, unflatten = inputs.flat(xp, arrays, entries)

    def build() -> tuple[Callable[[Array], Array], ...]:
        def bind(entry: Entry) -> Callable[[Array], Array]:
            opts = entry.call_opts(extra)
            return lambda v: entry_value(entry, inputs.args(entry, unflatten(v)), opts, xp)

        return tuple(bind(entry) for entry in entries)

    key = options_key(extra)
    fns = _cached(pipe, None if key is None else ("grad", flat_key, key), build)
    names = tuple(e.name for e in entries)
    return GradPlan(names, fns, tuple(e.weight for e in entries), flat)


def _tracked(
    pipe: Computable, xp: Any, arrays: Arrays, extra: Any
) -> tuple[list[Array], list[Array | None], Layout]:
    """Entry values (one forward pass), the norm parts and the tracking half of the layout."""
    plan = grad_plan(pipe, xp, arrays, extra)
    if not plan.fns:
        return _values(pipe, xp, arrays, extra), [], Layout((), (), ())
    tracked = tracked_gradients(plan, keep_graph=True)
    by_name = dict(zip(plan.names, tracked.values, strict=True))
    args = pipe._inputs.args
    values = [
        by_name[e.name]
        if e.name in by_name
        else entry_value(e, args(e, arrays), e.call_opts(extra), xp)
        for e in pipe._active
    ]
    failures = tuple(tracked.failures.items())
    return values, [*tracked.norms, tracked.total_norm], Layout((), plan.names, failures)


def _runner(pipe: Computable, xp: Any, arrays: Arrays, extra: Any, track: bool) -> _Run:
    key = options_key(extra)
    backend = get_backend(reference(xp, arrays))

    def run(arrays: Arrays) -> tuple[Array, Array, Layout]:
        if not track:
            values, weighted, total = _weighted(pipe, xp, arrays, _values(pipe, xp, arrays, extra))
            stacked, present = pack([*values, *weighted, total], xp)
            return total, stacked, Layout(present)
        values, norms, tracking = _tracked(pipe, xp, arrays, extra)
        values, weighted, total = _weighted(pipe, xp, arrays, values)
        stacked, present = pack([*values, *weighted, total, *norms], xp)
        return total, stacked, tracking._replace(present=present)

    cache_key = None if key is None else ("run", backend.name, track, key)
    return _cached(pipe, cache_key, lambda: _Run(run, backend.jit))  # type: ignore[no-any-return]


class _Run:
    """``run`` compiled by the backend, returning each call's layout with its arrays.

    A compiled (jax) function returns arrays only; its layout is fixed when it is
    traced, so it is kept per trace signature (input names, shapes, dtypes) and
    looked up with the call's own signature. Uncompiled, ``run`` returns it directly.
    """

    def __init__(self, run: Callable[[Arrays], tuple[Array, Array, Layout]], jit: Any) -> None:
        self._run = run
        self._layouts: dict[Any, Layout] = {}
        traced = self._traced
        compiled = jit(traced)
        self._compiled = None if compiled is traced else compiled

    @staticmethod
    def _signature(arrays: Arrays) -> tuple[Any, ...]:
        return tuple((name, tuple(a.shape), a.dtype) for name, a in arrays.items())

    def _traced(self, arrays: Arrays) -> tuple[Array, Array]:
        total, stacked, layout = self._run(arrays)
        self._layouts[self._signature(arrays)] = layout
        return total, stacked

    def __call__(self, arrays: Arrays) -> tuple[Array, Array, Layout]:
        if self._compiled is None:
            return self._run(arrays)
        total, stacked = self._compiled(arrays)
        return total, stacked, self._layouts[self._signature(arrays)]


# ----------------------------------------------------------------------------- compute


def _check_finite(metrics: Mapping[str, Any], names: Sequence[str]) -> None:
    """Raise :class:`NonFiniteError` naming the first entry (or the total) that is not finite."""
    for name in [*names, "total"]:
        value = metrics[name]
        if not math.isfinite(value):
            kind = "nan" if math.isnan(value) else "inf"
            what = "the total" if name == "total" else f"entry {name!r}"
            msg = f"{what} is not finite ({value}); `check_finite=True` was asked"
            raise NonFiniteError(kind, msg)


def _metrics(pipe: Computable, floats: list[float | None], layout: Layout, track: bool) -> Any:
    metrics: dict[str, Any] = {}
    count = len(pipe._active)
    for index, entry in enumerate(pipe._active):
        metrics[entry.name] = floats[index]
        metrics[f"{entry.name}_weighted"] = floats[count + index]
    metrics["total"] = floats[2 * count]
    if not track:
        return metrics, []
    norms = floats[2 * count + 1 :]
    if not layout.tracked:  # nothing differentiable: the total does not depend on x
        metrics["total_grad_norm"] = 0.0
        return metrics, []
    for name, norm in zip(layout.tracked, norms[:-1], strict=True):
        metrics[f"{name}_grad_norm"] = norm
        if norm is None:
            metrics[f"{name}_grad_norm_error"] = True
    metrics["total_grad_norm"] = norms[-1]
    return metrics, norms[:-1]


def _compute(
    pipe: Computable, x: Any, extra_args: Any, track: object, check_finite: object
) -> tuple[Array, dict[str, Any]]:
    check_bool(track, "track_grad_norms")
    check_bool(check_finite, "check_finite")
    extra = check_extra_args(pipe._entries, extra_args)
    xp, arrays = pipe._inputs.arrays(x, pipe._active)
    run = _runner(pipe, xp, arrays, extra, bool(track))
    start = time.perf_counter_ns()
    total, stacked, layout = run(arrays)
    floats = unpack(stacked, layout.present)  # the one host transfer
    duration = time.perf_counter_ns() - start
    metrics, norms = _metrics(pipe, floats, layout, bool(track))
    if check_finite:
        _check_finite(metrics, [e.name for e in pipe._active])
    if layout.tracked:
        failures = dict(layout.failures)
        warn_failures(failures)
        emit_events(layout.tracked, norms, failures, duration)
    return total, metrics


def compute(
    pipe: Computable, x: Any, extra_args: Any, track: object, check_finite: object
) -> tuple[Array, dict[str, Any]]:
    """The total and the metrics dict (one host transfer), with the telemetry events."""
    if not (telemetry.is_observed(START) or telemetry.is_observed(STOP)) and not (
        telemetry.is_observed(EXCEPTION)
    ):
        return _compute(pipe, x, extra_args, track, check_finite)
    metadata = {"pipeline_name": pipe._name, "entry_count": len(pipe._active)}
    telemetry.emit(START, {"system_time": time.time_ns()}, metadata)
    start = time.perf_counter_ns()
    try:
        total, metrics = _compute(pipe, x, extra_args, track, check_finite)
    except Exception as exc:
        failed = {
            **metadata,
            "kind": type(exc),
            "reason": exc,
            "stacktrace": traceback.format_exception(exc),
        }
        telemetry.emit(EXCEPTION, {"duration": time.perf_counter_ns() - start}, failed)
        raise
    # handlers get a copy: what they do to it never reaches the caller's metrics
    done = {**metadata, "metrics": dict(metrics), "total": metrics["total"]}
    telemetry.emit(STOP, {"duration": time.perf_counter_ns() - start}, done)
    return total, metrics


def grad_norms(
    pipe: Computable, x: Any, extra_args: Any
) -> tuple[tuple[str, ...], list[float | None], float | None]:
    """Names, unweighted norms and the total's norm of the tracked entries (one transfer)."""
    extra = check_extra_args(pipe._entries, extra_args)
    xp, arrays = pipe._inputs.arrays(x, pipe._active)
    plan = grad_plan(pipe, xp, arrays, extra)
    if not plan.fns:
        return (), [], 0.0
    start = time.perf_counter_ns()
    tracked = tracked_gradients(plan)
    stacked, present = pack([*tracked.norms, tracked.total_norm], xp)
    floats = unpack(stacked, present)
    warn_failures(tracked.failures)
    emit_events(plan.names, floats[:-1], tracked.failures, time.perf_counter_ns() - start)
    return plan.names, floats[:-1], floats[-1]
