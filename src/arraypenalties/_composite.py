"""The machinery :class:`Pipeline` and :class:`MultiPipeline` share: entries, compute, config.

``compute`` emits the telemetry events of :mod:`arraypenalties.telemetry`, stacks
every metric into one array and converts it with :func:`arraypenalties._host.to_floats`,
the one host transfer of a call.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from array_api_compat import device as array_device

from arraypenalties import _host, telemetry
from arraypenalties._checks import is_real_floating
from arraypenalties._entries import (
    ENTRY_KEYS,
    Entry,
    check_keys,
    check_name,
    entry_config,
    make_entry,
)
from arraypenalties._errors import (
    InvalidTypeError,
    InvalidValueError,
    NonFiniteError,
    UnknownNameError,
)
from arraypenalties._reductions import as_array
from arraypenalties.backends import get_backend
from arraypenalties.tracking import GradPlan, emit_events, tracked_gradients, warn_failures

__all__ = ["Composite", "freeze"]

Array = Any
_P = TypeVar("_P", bound="Composite")
EVENT = ("arraypenalties", "pipeline", "compute")
START, STOP, EXCEPTION = (*EVENT, "start"), (*EVENT, "stop"), (*EVENT, "exception")
_PLAN_CACHE_SIZE = 16


def freeze(extra_args: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """A hashable key for ``extra_args``, or None when its values are not hashable."""
    key = tuple(sorted((extra_args or {}).items()))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _check_finite(metrics: Mapping[str, float], names: Sequence[str]) -> None:
    """Raise :class:`NonFiniteError` naming the first entry (or the total) that is not finite."""
    for name in [*names, "total"]:
        value = metrics[name]
        if not math.isfinite(value):
            kind = "nan" if math.isnan(value) else "inf"
            what = "the total" if name == "total" else f"entry {name!r}"
            msg = f"{what} is not finite ({value}); `check_finite=True` was asked"
            raise NonFiniteError(kind, msg)


class Composite:
    """What :class:`Pipeline` and :class:`MultiPipeline` share."""

    __slots__ = ("_active", "_entries", "_name", "_plans")
    _multi: ClassVar[bool] = False

    def __init__(self, *, name: str = "pipeline") -> None:
        self._name = check_name(name)
        self._set_entries(())

    def _set_entries(self, entries: tuple[Entry, ...]) -> None:
        self._entries = entries
        self._active = tuple(entry for entry in entries if entry.enabled)
        self._plans: dict[Any, tuple[Callable[[Array], Array], ...]] = {}

    def _with(self: _P, entries: tuple[Entry, ...]) -> _P:
        new = type(self).__new__(type(self))
        new._name = self._name
        new._set_entries(entries)
        return new

    # ------------------------------------------------------------------ reading
    @property
    def name(self) -> str:
        """The pipeline's name (telemetry metadata ``pipeline_name``)."""
        return self._name

    @property
    def entries(self) -> tuple[Entry, ...]:
        """The entries, in insertion order."""
        return self._entries

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(entry.name for entry in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def __contains__(self, name: object) -> bool:
        return any(entry.name == name for entry in self._entries)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Composite)
        return (self._name, self._entries) == (other._name, other._entries)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [
            f"{e.name}: {e.ref or getattr(e.fn, '__name__', e.fn)} (weight {e.weight:g}"
            + (")" if e.enabled else ", disabled)")
            for e in self._entries
        ]
        return f"{type(self).__name__}({self._name!r}, [{', '.join(parts)}])"

    def _index(self, name: object) -> int:
        for index, entry in enumerate(self._entries):
            if entry.name == name:
                return index
        msg = f"no entry named {name!r}; entries are {list(self.names)}"
        raise UnknownNameError(msg)

    def get(self, name: str) -> Entry:
        """The entry called ``name`` (``KeyError`` listing the names otherwise)."""
        return self._entries[self._index(name)]

    # ----------------------------------------------------------------- changing
    def _added(self: _P, entry: Entry) -> _P:
        if entry.name in self:
            msg = f"an entry named {entry.name!r} already exists; names are {list(self.names)}"
            raise InvalidValueError(msg)
        return self._with((*self._entries, entry))

    def _replaced(self: _P, name: str, **changes: Any) -> _P:
        index = self._index(name)
        old = self._entries[index]
        fields = {
            "weight": old.weight,
            "opts": old.opts,
            "enabled": old.enabled,
            "differentiable": old.differentiable,
            "inputs": old.inputs,
        }
        new = make_entry(old.name, old.fn, **{**fields, **changes})
        new = dataclasses.replace(new, ref=old.ref)
        return self._with((*self._entries[:index], new, *self._entries[index + 1 :]))

    def remove(self: _P, name: str) -> _P:
        """A pipeline without the entry called ``name``."""
        index = self._index(name)
        return self._with(self._entries[:index] + self._entries[index + 1 :])

    def update_weight(self: _P, name: str, weight: float) -> _P:
        """A pipeline where the entry ``name`` has weight ``weight``."""
        return self._replaced(name, weight=weight)

    def set_enabled(self: _P, name: str, enabled: bool) -> _P:
        """A pipeline where the entry ``name`` is switched on or off."""
        return self._replaced(name, enabled=enabled)

    # ------------------------------------------------------------------- config
    def to_config(self) -> dict[str, Any]:
        """Plain, JSON-serialisable data; :meth:`from_config` rebuilds the pipeline."""
        return {"name": self._name, "entries": [entry_config(e) for e in self._entries]}

    @classmethod
    def from_config(
        cls: type[_P],
        config: Mapping[str, Any] | object,
        *,
        registry: Mapping[str, Callable[..., Any]] | None = None,
    ) -> _P:
        """Rebuild a pipeline from :meth:`to_config` data (unknown keys raise).

        A config is data, never code: each entry's ``fn`` must be a built-in name,
        a name given to :func:`~arraypenalties.register_penalty`, or a key of
        ``registry``. Any other string (an import path included) raises
        :class:`~arraypenalties.UnknownNameError`; nothing is imported or called.
        """
        if not isinstance(config, Mapping):
            msg = f"`config` must be a mapping; got {type(config).__name__}"
            raise InvalidTypeError(msg)
        check_keys(config, ("name", "entries"), "`config`")
        built = cls(name=config.get("name", "pipeline"))
        for item in config.get("entries", ()):
            if not isinstance(item, Mapping):
                msg = f"each entry of `config` must be a mapping; got {item!r}"
                raise InvalidTypeError(msg)
            allowed = ENTRY_KEYS if cls._multi else tuple(k for k in ENTRY_KEYS if k != "inputs")
            check_keys(item, allowed, f"entry {item.get('name')!r} of `config`")
            if "name" not in item or "fn" not in item:
                msg = f"each entry of `config` needs 'name' and 'fn'; got {dict(item)!r}"
                raise InvalidValueError(msg)
            fields = {k: v for k, v in item.items() if k not in ("name", "fn")}
            built = built._added(make_entry(item["name"], item["fn"], registry=registry, **fields))
        return built

    # -------------------------------------------------------------- computation
    def _arrays(self, x: Any) -> tuple[Any, dict[str, Array]]:
        """The namespace and the named arrays of one call, validated."""
        raise NotImplementedError

    def _args(self, entry: Entry, arrays: Mapping[str, Array]) -> tuple[Array, ...]:
        raise NotImplementedError

    @staticmethod
    def _value(entry: Entry, args: tuple[Array, ...], opts: Mapping[str, Any]) -> Array:
        value = entry.fn(*args, **opts)
        shape = getattr(value, "shape", None)
        if shape is None or tuple(shape) != ():
            got = f"shape {tuple(shape)}" if shape is not None else type(value).__name__
            msg = f"entry {entry.name!r} must return a 0-d array; got {got}"
            raise InvalidValueError(msg)
        return value

    def compute_total(self, x: Any, /, *, extra_args: Mapping[str, Any] | None = None) -> Array:
        """``Σ wᵢ·fᵢ`` over the enabled entries, as a differentiable 0-d array.

        No host transfer and no telemetry: safe inside ``jax.jit``, ``jax.grad`` and
        ``torch.compile(fullgraph=True)``. An empty pipeline gives a 0-d zero.
        """
        xp, arrays = self._arrays(x)
        return self._weighted(xp, arrays, self._values(arrays, extra_args))[2]

    def _values(self, arrays: Mapping[str, Array], extra_args: Any) -> list[Array]:
        return [
            self._value(e, self._args(e, arrays), e.call_opts(extra_args)) for e in self._active
        ]

    def _reference(self, xp: Any, arrays: Mapping[str, Array]) -> Array:
        """The first real floating input: it sets the dtype and device of an empty total."""
        for array in arrays.values():
            if is_real_floating(array.dtype, xp):
                return array
        msg = f"at least one input must have a real floating dtype; got {list(arrays)}"
        raise InvalidTypeError(msg)

    def _weighted(
        self, xp: Any, arrays: Mapping[str, Array], values: Sequence[Array]
    ) -> tuple[list[Array], list[Array], Array]:
        """``(values, weighted terms, total)``; integer values (argmax-style) become floats."""
        reference = self._reference(xp, arrays)
        values = [
            value if is_real_floating(value.dtype, xp) else xp.astype(value, reference.dtype)
            for value in values
        ]
        terms = [entry.weight * value for entry, value in zip(self._active, values, strict=True)]
        if not terms:
            zero = xp.zeros((), dtype=reference.dtype, device=array_device(reference))
            return values, terms, zero
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return values, terms, as_array(total, xp)

    def _grad_plan(self, x: Any, extra_args: Mapping[str, Any] | None) -> GradPlan:
        """One-argument functions of one flat array, for the gradient tracker."""
        _, arrays = self._arrays(x)
        return self._plan(arrays, [e for e in self._active if e.differentiable], extra_args)

    def _plan(
        self, arrays: Mapping[str, Array], entries: Sequence[Entry], extra_args: Any
    ) -> GradPlan:
        raise NotImplementedError

    def _cached_fns(
        self, key: Any, build: Callable[[], tuple[Callable[[Array], Array], ...]]
    ) -> tuple[Callable[[Array], Array], ...]:
        # the same function objects every step, so jax's jitted per-term gradients are reused
        if key is None:
            return build()
        fns = self._plans.get(key)
        if fns is None:
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            fns = self._plans[key] = build()
        return fns

    def compute(
        self,
        x: Any,
        /,
        *,
        extra_args: Mapping[str, Any] | None = None,
        track_grad_norms: bool = False,
        check_finite: bool = False,
    ) -> tuple[Array, dict[str, Any]]:
        """The total and a metrics dict whose floats come from one host transfer.

        See :class:`Pipeline` for the metric keys.
        """
        if not (telemetry.is_observed(START) or telemetry.is_observed(STOP)) and not (
            telemetry.is_observed(EXCEPTION)
        ):
            return self._compute(x, extra_args, track_grad_norms, check_finite)
        metadata = {"pipeline_name": self._name, "entry_count": len(self._active)}
        telemetry.emit(START, {"system_time": time.time_ns()}, metadata)
        start = time.perf_counter_ns()
        try:
            total, metrics = self._compute(x, extra_args, track_grad_norms, check_finite)
        except Exception as exc:
            failed = {
                **metadata,
                "kind": type(exc),
                "reason": exc,
                "stacktrace": traceback.format_exception(exc),
            }
            telemetry.emit(EXCEPTION, {"duration": time.perf_counter_ns() - start}, failed)
            raise
        done = {**metadata, "metrics": metrics, "total": metrics["total"]}
        telemetry.emit(STOP, {"duration": time.perf_counter_ns() - start}, done)
        return total, metrics

    def _compute(
        self, x: Any, extra_args: Any, track: object, check_finite: object
    ) -> tuple[Array, dict[str, Any]]:
        if not isinstance(track, bool) or not isinstance(check_finite, bool):
            msg = "`track_grad_norms` and `check_finite` must be bools"
            raise InvalidTypeError(msg)
        xp, arrays = self._arrays(x)
        run, layout = self._device_metrics(xp, arrays, extra_args, track)
        start = time.perf_counter_ns()
        total, stacked = run(arrays)
        floats = _host.to_floats(stacked)  # the one host transfer
        duration = time.perf_counter_ns() - start
        metrics: dict[str, Any] = {}
        count = len(self._active)
        for index, entry in enumerate(self._active):
            metrics[entry.name] = floats[index]
            metrics[f"{entry.name}_weighted"] = floats[count + index]
        metrics["total"] = floats[2 * count]
        if check_finite:
            _check_finite(metrics, [e.name for e in self._active])
        if track:
            self._add_norms(metrics, iter(floats[2 * count + 1 :]), layout, duration)
        return total, metrics

    def _device_metrics(
        self, xp: Any, arrays: Mapping[str, Array], extra_args: Any, track: bool
    ) -> tuple[Callable[[Mapping[str, Array]], tuple[Array, Array]], dict[str, Any]]:
        """``run(arrays) -> (total, every metric stacked in one 1-d array)`` and its layout.

        On jax ``run`` is jitted (cached per pipeline, ``extra_args`` and tracking),
        so ``compute`` costs one compiled call and one transfer. The layout (which
        entries have a gradient norm) is recorded while ``run`` executes or traces.
        """
        key = freeze(extra_args)
        backend = get_backend(self._reference(xp, arrays))
        cache_key = None if key is None else ("run", backend.name, track, key)
        cached = self._plans.get(cache_key) if cache_key is not None else None
        if cached is not None:
            return cached  # type: ignore[return-value]
        layout: dict[str, Any] = {}

        def run(arrays: Mapping[str, Array]) -> tuple[Array, Array]:
            if track:
                values, norms = self._tracked_values(arrays, extra_args, layout)
            else:
                values, norms = self._values(arrays, extra_args), []
            values, weighted, total = self._weighted(xp, arrays, values)
            parts = [*values, *weighted, total, *norms]
            dtype = xp.float64 if any(a.dtype == xp.float64 for a in parts) else xp.float32
            return total, xp.stack([xp.astype(a, dtype) for a in parts])

        built = (backend.jit(run) if cache_key is not None else run), layout
        if cache_key is not None:
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            self._plans[cache_key] = built  # type: ignore[assignment]
        return built

    def _tracked_values(
        self, arrays: Mapping[str, Array], extra_args: Any, layout: dict[str, Any]
    ) -> tuple[list[Array], list[Array]]:
        """Entry values (one forward pass) and the gradient norms that exist, as arrays."""
        entries = [e for e in self._active if e.differentiable]
        plan = self._plan(arrays, entries, extra_args)
        tracked = tracked_gradients(plan, keep_graph=True) if plan.fns else None
        by_name = dict(zip(plan.names, tracked.values if tracked else [], strict=True))
        values = [
            by_name[e.name]
            if e.name in by_name
            else self._value(e, self._args(e, arrays), e.call_opts(extra_args))
            for e in self._active
        ]
        layout["names"] = plan.names
        if tracked is None:
            layout.update(present=(), failures={}, total_norm=False)
            return values, []
        layout["present"] = tuple(norm is not None for norm in tracked.norms)
        layout["failures"] = tracked.failures
        layout["total_norm"] = tracked.total_norm is not None
        norms = [norm for norm in tracked.norms if norm is not None]
        if tracked.total_norm is not None:
            norms.append(tracked.total_norm)
        return values, norms

    def _add_norms(
        self,
        metrics: dict[str, Any],
        floats: Iterator[float],
        layout: dict[str, Any],
        duration: int,
    ) -> None:
        names = layout["names"]
        if not names:  # nothing differentiable: the total does not depend on x
            metrics["total_grad_norm"] = 0.0
            return
        norms = [next(floats) if present else None for present in layout["present"]]
        for name, norm in zip(names, norms, strict=True):
            metrics[f"{name}_grad_norm"] = norm
            if norm is None:
                metrics[f"{name}_grad_norm_error"] = True
        metrics["total_grad_norm"] = next(floats) if layout["total_norm"] else None
        warn_failures(layout["failures"])
        emit_events(names, norms, layout["failures"], duration)
