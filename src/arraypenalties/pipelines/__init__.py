"""Weighted composition of penalties: :class:`Pipeline`, :class:`MultiPipeline`, :func:`pipeline`.

A pipeline is immutable: ``add``, ``remove``, ``update_weight`` and ``set_enabled``
return a new pipeline. ``compute_total`` returns the weighted sum only (no host
transfer, safe under ``jax.jit``, ``jax.grad`` and ``torch.compile``); ``compute``
also returns the metrics dict, whose floats all come from ONE host transfer.

The package: ``_entry`` (the entry record, built-in and registered names),
``_collection`` (the immutable collection and its config form), ``_inputs`` (one
array or named arrays), ``_engine`` (compute, the jit cache, the per-call metric
layout, the host transfer, telemetry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from arraypenalties._lib.errors import InvalidTypeError
from arraypenalties.pipelines import _engine
from arraypenalties.pipelines._collection import EntryCollection
from arraypenalties.pipelines._entry import Entry, check_keys
from arraypenalties.pipelines._inputs import NAMED, SINGLE, Inputs
from arraypenalties.pipelines._names import known_penalties, register_penalty

__all__ = [
    "Entry",
    "MultiPipeline",
    "Pipeline",
    "compute",
    "compute_total",
    "known_penalties",
    "pipeline",
    "pipeline_grad_norms",
    "register_penalty",
    "total_grad_norm",
]

Array = Any


class _Computing(EntryCollection):
    """``compute`` and ``compute_total``, which both pipeline kinds share."""

    __slots__ = ()
    _inputs: ClassVar[Inputs]

    def compute_total(self, x: Any, /, *, extra_args: Mapping[str, Any] | None = None) -> Array:
        """``Σ wᵢ·fᵢ`` over the enabled entries, as a differentiable 0-d array.

        No host transfer and no telemetry: safe inside ``jax.jit``, ``jax.grad`` and
        ``torch.compile(fullgraph=True)``. An empty pipeline gives a 0-d zero.
        """
        return _engine.compute_total(self, x, extra_args)

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
        return _engine.compute(self, x, extra_args, track_grad_norms, check_finite)


class Pipeline(_Computing):
    """An immutable, ordered set of weighted penalties of one array.

    ``Pipeline()`` is empty; :meth:`add` returns a new pipeline with one more
    entry. Each entry's ``fn`` is called as ``fn(x, **opts)`` and must return a
    real 0-d array.

    ``compute(x)`` returns ``(total, metrics)``: ``total`` is the differentiable
    0-d array ``Σ wᵢ·fᵢ(x)``; ``metrics`` maps ``"<name>"`` to the raw value,
    ``"<name>_weighted"`` to ``wᵢ·fᵢ(x)`` and ``"total"`` to the total, all Python
    floats from one host transfer. With ``track_grad_norms=True`` it adds
    ``"<name>_grad_norm"`` (the norm of the UNWEIGHTED penalty's gradient, or None
    with ``"<name>_grad_norm_error": True`` when it cannot be computed) and
    ``"total_grad_norm"`` (of the weighted total, by linearity). Disabled entries
    are left out; entries added with ``differentiable=False`` get no grad norm.
    ``extra_args`` override the ``opts`` of every entry whose function accepts the
    option, for values and gradient norms; an option no entry accepts raises.
    ``check_finite=True`` raises :class:`~arraypenalties.NonFiniteError` naming
    the first entry whose value is NaN or infinite.

    Under ``jax.jit`` / ``jax.grad`` use :meth:`compute_total` (``compute``
    converts to Python floats, which traced values cannot be). A pipeline can be
    shared between threads, pickled and deep-copied (see the Guarantees section of
    the pipeline guide).

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
    _inputs = SINGLE

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
        to :func:`~arraypenalties.register_penalty`. ``name`` is a non-empty str
        without ``:`` whose metric keys (``<name>``, ``<name>_weighted``,
        ``<name>_grad_norm``, ``<name>_grad_norm_error``) are neither ``"total"``
        nor ``"total_grad_norm"`` nor another entry's. ``opts`` must be options of
        ``fn``'s signature. Each rule raises ``ValueError`` naming the entry.
        """
        entry = self._new_entry(
            name, fn, weight=weight, opts=opts, enabled=enabled, differentiable=differentiable
        )
        return self._added(entry)


class MultiPipeline(_Computing):
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
    _inputs = NAMED

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
        """A pipeline with one more entry, called as ``fn(*named_arrays, **opts)``.

        The same rules as :meth:`Pipeline.add`; ``fn`` must take ``len(inputs)`` arrays.
        """
        entry = self._new_entry(
            name,
            fn,
            weight=weight,
            opts=opts,
            enabled=enabled,
            differentiable=differentiable,
            inputs=inputs,
        )
        return self._added(entry)


_SPEC_KEYS = ("name", "weight", "opts", "enabled", "differentiable")


def _spec_items(specs: object) -> list[tuple[object, Mapping[str, Any]]]:
    if isinstance(specs, Mapping):  # {"l1": {"weight": 0.1}}: the options of each name
        specs = list(specs.items())
    if isinstance(specs, (str, bytes)) or not isinstance(specs, Sequence):
        msg = (
            "`specs` must be a list of built-in names or (name, options) pairs, or a "
            f"mapping of names to options; got {type(specs).__name__}"
        )
        raise InvalidTypeError(msg)
    items: list[tuple[object, Mapping[str, Any]]] = []
    for spec in specs:
        if isinstance(spec, str):
            items.append((spec, {}))
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
            items.append((spec[0], spec[1]))
        else:
            msg = f"each spec must be a built-in name or (name, options) in `specs`; got {spec!r}"
            raise InvalidTypeError(msg)
    return items


def pipeline(
    specs: Sequence[str | tuple[str, Mapping[str, Any]]] | Mapping[str, Mapping[str, Any]],
    *,
    name: str = "pipeline",
) -> Pipeline:
    """Build a :class:`Pipeline` from built-in names and options.

    Parameters
    ----------
    specs : sequence or mapping
        Each item is a built-in name (``"l1"``) or ``(builtin, options)`` where the
        options may hold ``weight``, ``opts``, ``enabled``, ``differentiable`` and
        ``name`` (the entry's name; defaults to the built-in's). A mapping
        ``{builtin: options}`` is read as its ``(builtin, options)`` items. Any
        other key raises. Built-ins: l1, l2, elastic_net, entropy,
        orthogonality, output_magnitude; two-input penalties (kl, js,
        consistency) belong in a :class:`MultiPipeline`.
    name : str, default "pipeline"
        The pipeline's name.

    Examples
    --------
    >>> from arraypenalties import pipeline
    >>> pipeline([("l1", {"weight": 1e-3}), "l2"])
    Pipeline('pipeline', [l1: l1 (weight 0.001), l2: l2 (weight 1)])
    >>> pipeline({"l1": {"weight": 0.1}})
    Pipeline('pipeline', [l1: l1 (weight 0.1)])
    """
    built = Pipeline(name=name)
    for builtin, options in _spec_items(specs):
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


def _check_pipeline(pipeline: object) -> _Computing:
    if not isinstance(pipeline, _Computing):
        msg = f"`pipeline` must be a Pipeline or MultiPipeline; got {type(pipeline).__name__}"
        raise InvalidTypeError(msg)
    return pipeline


def pipeline_grad_norms(
    pipeline: Pipeline | MultiPipeline,
    x: Array,
    /,
    *,
    extra_args: Mapping[str, Any] | None = None,
) -> dict[str, float | None]:
    """``{"<name>_grad_norm": ‖∇ fᵢ‖}`` of every enabled, differentiable entry (unweighted).

    ``x`` is the array of a :class:`~arraypenalties.Pipeline` or the mapping of
    named arrays of a :class:`~arraypenalties.MultiPipeline` (norms over all of
    them together). ``extra_args`` override the entries' options, as in ``compute``.
    All norms come from one host transfer.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties import Pipeline, pipeline_grad_norms
    >>> p = Pipeline().add("l1", "l1").add("l2", "l2", weight=0.5)
    >>> pipeline_grad_norms(p, torch.tensor([1.0, -2.0, 3.0]))
    {'l1_grad_norm': 1.732050..., 'l2_grad_norm': 7.483314...}
    """
    names, norms, _ = _engine.grad_norms(_check_pipeline(pipeline), x, extra_args)
    return {f"{name}_grad_norm": norm for name, norm in zip(names, norms, strict=True)}


def total_grad_norm(
    pipeline: Pipeline | MultiPipeline,
    x: Array,
    /,
    *,
    extra_args: Mapping[str, Any] | None = None,
) -> float | None:
    """``‖∇ Σ wᵢ·fᵢ‖₂`` over the enabled, differentiable entries (0.0 for none).

    Computed from the per-entry gradients by linearity; None when an entry cannot
    be differentiated.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties import Pipeline, total_grad_norm
    >>> total_grad_norm(Pipeline().add("l2", "l2", weight=0.5), torch.tensor([1.0, 2.0, 3.0]))
    3.741657...
    """
    return _engine.grad_norms(_check_pipeline(pipeline), x, extra_args)[2]
