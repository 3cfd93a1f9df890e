"""Weighted composition of penalties: :class:`Pipeline`, :class:`MultiPipeline`, :func:`pipeline`.

A pipeline is immutable: ``add``, ``remove``, ``update_weight`` and ``set_enabled``
return a new pipeline. ``compute_total`` returns the weighted sum only (no host
transfer, safe under ``jax.jit``, ``jax.grad`` and ``torch.compile``); ``compute``
also returns the metrics dict, whose floats all come from ONE host transfer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from arraypenalties._checks import check_real_floating
from arraypenalties._composite import Composite, freeze
from arraypenalties._entries import Entry, check_keys, input_count, make_entry
from arraypenalties._errors import InvalidTypeError, InvalidValueError, UnknownNameError
from arraypenalties._xp import get_xp
from arraypenalties.tracking import GradPlan

__all__ = ["MultiPipeline", "Pipeline", "compute", "compute_total", "pipeline"]

Array = Any


class Pipeline(Composite):
    """An immutable, ordered set of weighted penalties of one array.

    ``Pipeline()`` is empty; :meth:`add` returns a new pipeline with one more
    entry. Each entry's ``fn`` is called as ``fn(x, **opts)`` and must return a
    0-d array.

    ``compute(x)`` returns ``(total, metrics)``: ``total`` is the differentiable
    0-d array ``Σ wᵢ·fᵢ(x)``; ``metrics`` maps ``"<name>"`` to the raw value,
    ``"<name>_weighted"`` to ``wᵢ·fᵢ(x)`` and ``"total"`` to the total, all Python
    floats from one host transfer. With ``track_grad_norms=True`` it adds
    ``"<name>_grad_norm"`` (the norm of the UNWEIGHTED penalty's gradient, or None
    with ``"<name>_grad_norm_error": True`` when it cannot be computed) and
    ``"total_grad_norm"`` (of the weighted total, by linearity). Disabled entries
    are left out; entries added with ``differentiable=False`` get no grad norm.
    ``extra_args`` override every entry's ``opts``, for values and gradient norms.
    ``check_finite=True`` raises :class:`~arraypenalties.NonFiniteError` naming
    the first entry whose value is NaN or infinite.

    Under ``jax.jit`` / ``jax.grad`` use :meth:`compute_total` (``compute``
    converts to Python floats, which traced values cannot be).

    Parameters
    ----------
    name : str, default "pipeline"
        Reported as ``pipeline_name`` in telemetry events.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties import Pipeline
    >>> p = Pipeline().add("l1", "l1", weight=0.1).add("l2", "l2", weight=0.01)
    >>> total, metrics = p.compute(np.array([1.0, 2.0]))
    >>> round(float(total), 6), metrics["l1"], metrics["l2_weighted"]
    (0.35, 3.0, 0.05)
    >>> p.set_enabled("l2", False).compute_total(np.array([1.0, 2.0]))
    array(0.3)
    """

    __slots__ = ()

    def add(
        self,
        name: str,
        fn: Callable[..., Any] | str,
        *,
        weight: float = 1.0,
        opts: Mapping[str, Any] | None = None,
        enabled: bool = True,
        differentiable: bool = True,
    ) -> Pipeline:
        """A pipeline with one more entry.

        ``fn`` is a callable ``fn(x, **opts) -> 0-d array``, a built-in name (l1,
        l2, elastic_net, entropy, orthogonality, output_magnitude) or a name given
        to :func:`~arraypenalties.register_penalty`. Duplicate names raise ``ValueError``.
        """
        if isinstance(fn, str) and input_count(fn) == 2:
            msg = (
                f"{fn!r} compares two arrays and cannot be an entry of a single-input "
                "Pipeline; use MultiPipeline with `inputs=(...)`"
            )
            raise InvalidValueError(msg)
        entry = make_entry(
            name, fn, weight=weight, opts=opts, enabled=enabled, differentiable=differentiable
        )
        return self._added(entry)

    def _arrays(self, x: Any) -> tuple[Any, dict[str, Array]]:
        xp = get_xp(x, names=("x",))
        check_real_floating(x, "x", xp)
        return xp, {"x": x}

    def _args(self, entry: Entry, arrays: Mapping[str, Array]) -> tuple[Array, ...]:
        return (arrays["x"],)

    def _plan(
        self, arrays: Mapping[str, Array], entries: Sequence[Entry], extra_args: Any
    ) -> GradPlan:
        def build() -> tuple[Callable[[Array], Array], ...]:
            def bind(entry: Entry) -> Callable[[Array], Array]:
                opts = entry.call_opts(extra_args)
                return lambda x: self._value(entry, (x,), opts)

            return tuple(bind(entry) for entry in entries)

        key = freeze(extra_args)
        fns = self._cached_fns(None if key is None else ("x", key), build)
        names = tuple(e.name for e in entries)
        return GradPlan(names, fns, tuple(e.weight for e in entries), arrays["x"])


class MultiPipeline(Composite):
    """A pipeline whose entries take several named arrays (distillation, consistency, KL).

    Entries name their inputs: ``add("kl", "kl", inputs=("student", "teacher"))``
    calls ``kl_divergence(inputs["student"], inputs["teacher"], **opts)``.
    ``compute(inputs)`` takes a mapping of names to arrays (one namespace) and
    returns the same metric keys as :class:`Pipeline`; gradient norms are taken
    with respect to all the named inputs the tracked entries use, together. A
    missing input raises ``KeyError`` naming the entry and the input.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties import MultiPipeline
    >>> p = MultiPipeline().add("mse", "consistency", inputs=("a", "b"), weight=2.0)
    >>> total, metrics = p.compute({"a": np.array([1.0, 2.0, 3.0]), "b": np.array([1.5, 2.5, 3.5])})
    >>> metrics
    {'mse': 0.25, 'mse_weighted': 0.5, 'total': 0.5}
    """

    __slots__ = ()
    _multi = True

    def add(
        self,
        name: str,
        fn: Callable[..., Any] | str,
        *,
        inputs: Sequence[str],
        weight: float = 1.0,
        opts: Mapping[str, Any] | None = None,
        enabled: bool = True,
        differentiable: bool = True,
    ) -> MultiPipeline:
        """A pipeline with one more entry, called as ``fn(*named_arrays, **opts)``."""
        entry = make_entry(
            name,
            fn,
            weight=weight,
            opts=opts,
            enabled=enabled,
            differentiable=differentiable,
            inputs=inputs,
        )
        return self._added(entry)

    def _arrays(self, x: Any) -> tuple[Any, dict[str, Array]]:
        if not isinstance(x, Mapping):
            msg = f"`inputs` must be a mapping of names to arrays; got {type(x).__name__}"
            raise InvalidTypeError(msg)
        arrays = dict(x)
        for entry in self._active:
            for needed in entry.inputs or ():
                if needed not in arrays:
                    msg = (
                        f"entry {entry.name!r} needs input {needed!r}, which is missing; "
                        f"inputs given are {sorted(arrays)}"
                    )
                    raise UnknownNameError(msg)
        if not arrays:
            msg = "`inputs` must contain at least one array"
            raise InvalidValueError(msg)
        xp = get_xp(*arrays.values(), names=tuple(f"inputs[{k!r}]" for k in arrays))
        return xp, arrays

    def _args(self, entry: Entry, arrays: Mapping[str, Array]) -> tuple[Array, ...]:
        return tuple(arrays[name] for name in entry.inputs or ())

    def _plan(
        self, arrays: Mapping[str, Array], entries: Sequence[Entry], extra_args: Any
    ) -> GradPlan:
        used = tuple(dict.fromkeys(n for e in entries for n in e.inputs or ()))
        xp = get_xp(*arrays.values())
        for name in used:
            check_real_floating(arrays[name], f"inputs[{name!r}]", xp)
        layout = tuple((n, tuple(arrays[n].shape), arrays[n].dtype) for n in used)
        dtype = xp.result_type(*(arrays[n] for n in used)) if used else None

        def build() -> tuple[Callable[[Array], Array], ...]:
            def unpack(flat: Array) -> dict[str, Array]:
                out, offset = {}, 0
                for name, shape, array_dtype in layout:
                    size = math.prod(shape)
                    part = xp.reshape(flat[offset : offset + size], shape)
                    out[name] = part if array_dtype == dtype else xp.astype(part, array_dtype)
                    offset += size
                return out

            def bind(entry: Entry) -> Callable[[Array], Array]:
                opts = entry.call_opts(extra_args)
                return lambda flat: self._value(entry, self._args(entry, unpack(flat)), opts)

            return tuple(bind(entry) for entry in entries)

        key = freeze(extra_args)
        fns = self._cached_fns(None if key is None else (layout, key), build)
        parts = [xp.reshape(xp.astype(arrays[n], dtype), (-1,)) for n in used]
        flat = xp.concat(parts) if parts else None
        names = tuple(e.name for e in entries)
        return GradPlan(names, fns, tuple(e.weight for e in entries), flat)


_SPEC_KEYS = ("name", "weight", "opts", "enabled", "differentiable")


def pipeline(
    specs: Sequence[str | tuple[str, Mapping[str, Any]] | object], *, name: str = "pipeline"
) -> Pipeline:
    """Build a :class:`Pipeline` from built-in names and options.

    Parameters
    ----------
    specs : sequence
        Each item is a built-in name (``"l1"``) or ``(builtin, options)`` where the
        options may hold ``weight``, ``opts``, ``enabled``, ``differentiable`` and
        ``name`` (the entry's name; defaults to the built-in's). Any other key
        raises. Built-ins: l1, l2, elastic_net, entropy, orthogonality,
        output_magnitude; two-input penalties (kl, js, consistency) belong in a
        :class:`MultiPipeline`.
    name : str, default "pipeline"
        The pipeline's name.

    Examples
    --------
    >>> from arraypenalties import pipeline
    >>> pipeline([("l1", {"weight": 1e-3}), "l2"])
    Pipeline('pipeline', [l1: l1 (weight 0.001), l2: l2 (weight 1)])
    """
    built = Pipeline(name=name)
    for spec in specs:
        options: Mapping[str, Any]
        builtin: object
        if isinstance(spec, str):
            builtin, options = spec, {}
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
            builtin, options = spec[0], spec[1]
        else:
            msg = f"each spec must be a built-in name or (name, options); got {spec!r}"
            raise InvalidTypeError(msg)
        if not isinstance(builtin, str):
            msg = f"specs name built-in or registered penalties; got {builtin!r}"
            raise InvalidTypeError(msg)
        check_keys(options, _SPEC_KEYS, f"the spec of {builtin!r}")
        entry_name = options.get("name", builtin)
        fields = {k: v for k, v in options.items() if k != "name"}
        built = built.add(entry_name, builtin, **fields)
    return built


def compute(
    pipeline: Pipeline | MultiPipeline,
    x: Any,
    /,
    *,
    extra_args: Mapping[str, Any] | None = None,
    track_grad_norms: bool = False,
    check_finite: bool = False,
) -> tuple[Array, dict[str, Any]]:
    """``pipeline.compute(x, ...)``, for code written against the function-style API."""
    return pipeline.compute(
        x, extra_args=extra_args, track_grad_norms=track_grad_norms, check_finite=check_finite
    )


def compute_total(
    pipeline: Pipeline | MultiPipeline, x: Any, /, *, extra_args: Mapping[str, Any] | None = None
) -> Array:
    """``pipeline.compute_total(x, ...)``, for code written against the function-style API."""
    return pipeline.compute_total(x, extra_args=extra_args)
