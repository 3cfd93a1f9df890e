"""A jitted, pure optax train step with penalties (imports jax, numpy and optax).

:func:`make_train_step` builds ``step(params, opt_state, batch, step_index)``:
forward, base loss, output penalties (a :class:`~arraypenalties.Pipeline` on the
model output), parameter penalties (:func:`~arraypenalties.tree_penalty` over
the params), activity penalties (over values the model sows), gradients,
``arraypenalties.transforms`` (through :func:`~arraypenalties.integrations.optax.to_optax`),
then the optax optimizer, all in one compiled function.

Every penalty weight enters that function as an element of one array argument,
so a weight schedule changes numbers, never the compiled program: a run with a
scheduled weight compiles once.

Examples
--------
>>> import jax.numpy as jnp
>>> import optax
>>> from arraypenalties import l2, pipeline
>>> from arraypenalties.integrations.jax import make_train_step
>>> step = make_train_step(
...     lambda p, x: x @ p["w"],
...     lambda out, y: jnp.mean((out - y) ** 2),
...     optax.sgd(0.1),
...     penalties=pipeline([("l1", {"weight": 1e-3})]),
...     parameter_penalties={"l2": (l2, 1e-4)},
... )
>>> params = {"w": jnp.ones((3, 1), dtype=jnp.float32)}
>>> batch = (jnp.ones((4, 3), dtype=jnp.float32), jnp.zeros((4, 1), dtype=jnp.float32))
>>> params, opt_state, metrics = step(params, step.init(params), batch, 0)
>>> sorted(metrics)
['base_loss', 'l1', 'l1_weighted', 'loss', 'param/l2', 'param/l2_weighted',
 'penalty_total', 'total']
>>> metrics["base_loss"]
Array(9., dtype=float32)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from arraypenalties import (
    InvalidTypeError,
    InvalidValueError,
    Pipeline,
    UnknownNameError,
    tree_penalty,
)
from arraypenalties._lib.checks import check_callable
from arraypenalties.integrations._sown import activity_terms, check_spec, sown_values, zero_d
from arraypenalties.integrations._traced_schedules import traced_weight
from arraypenalties.integrations.optax import to_optax
from arraypenalties.schedules import WeightSchedule, weight_schedule
from arraypenalties.transforms import GradientTransformation, chain

__all__ = ["TrainStep", "make_train_step", "sown_values"]

Array = Any
Path = tuple[Any, ...]
_PARAM_OPTIONS = ("include", "exclude", "mask", "opts")


# --------------------------------------------------------- parameter penalties
def _matcher(rule: object, what: str) -> Callable[[str], bool]:
    if callable(rule):
        return lambda name: bool(rule(name))
    if isinstance(rule, str):
        pattern = re.compile(rule)
        return lambda name: pattern.search(name) is not None
    msg = f"{what} must be a regular expression (str) or a callable on the name; got {rule!r}"
    raise InvalidTypeError(msg)


def _param_mask(name: str, options: Mapping[str, Any]) -> Any:
    """The ``tree_penalty`` mask of one parameter penalty: include / exclude on ``a/b/c``."""
    unknown = sorted(set(options) - set(_PARAM_OPTIONS))
    if unknown:
        msg = f"parameter penalty {name!r} has unknown options {unknown}; allowed {_PARAM_OPTIONS}"
        raise InvalidValueError(msg)
    include = options.get("include")
    exclude = options.get("exclude")
    if include is None and exclude is None:
        return options.get("mask")
    keep = _matcher(include, f"`include` of {name!r}") if include is not None else None
    drop = _matcher(exclude, f"`exclude` of {name!r}") if exclude is not None else None
    base = options.get("mask")
    if base is not None and not callable(base):
        msg = f"parameter penalty {name!r}: combine `include`/`exclude` with a callable `mask`"
        raise InvalidTypeError(msg)

    def mask(path: Path, leaf: Any) -> bool:
        joined = "/".join(str(part) for part in path)
        chosen = (keep is None or keep(joined)) and (drop is None or not drop(joined))
        return bool(chosen and (base is None or base(path, leaf)))

    return mask


# ------------------------------------------------------------------- the step
@dataclass(frozen=True)
class _Slot:
    group: str  # "penalty", "param" or "activity"
    name: str
    weight: float


@dataclass(frozen=True)
class TrainStep:
    """``step(params, opt_state, batch, step_index) -> (params, opt_state, metrics)``.

    Built by :func:`make_train_step`. ``init(params)`` is the optimizer state
    (transforms first, then the optimizer, as ``optax.chain``). ``weights(step)``
    is the array of every penalty weight the compiled function receives at that
    step; ``compiled`` is the ``jax.jit`` function of
    ``(params, opt_state, batch, weights)`` that every call runs.
    """

    optimizer: optax.GradientTransformation
    compiled: Callable[..., Any]
    slots: tuple[_Slot, ...]
    schedule: WeightSchedule | None
    total_steps: int | None
    constant_weights: Array

    def init(self, params: Any) -> Any:
        """The optimizer state for ``params`` (transforms' states first)."""
        return self.optimizer.init(params)

    def weights(self, step_index: Any) -> Array:
        """Every penalty weight at ``step_index`` as one array (built on the host, or traced)."""
        if self.schedule is None:
            return self.constant_weights
        if isinstance(step_index, jax.core.Tracer):  # inside the caller's jit / scan
            dtype = self.constant_weights.dtype
            return jnp.stack(
                [
                    traced_weight(
                        self.schedule.schedules[slot.name], step_index, self.total_steps, dtype
                    )
                    if slot.name in self.schedule.schedules
                    else jnp.asarray(slot.weight, dtype=dtype)
                    for slot in self.slots
                ]
            )
        step = _host_step(step_index)
        scheduled = self.schedule(step, self.total_steps)
        values = [scheduled.get(slot.name, slot.weight) for slot in self.slots]
        return np.asarray(values, dtype=self.constant_weights.dtype)

    def __call__(self, params: Any, opt_state: Any, batch: Any, step_index: Any) -> Any:
        return self.compiled(params, opt_state, batch, self.weights(step_index))


def _host_step(step_index: Any) -> int:
    value = np.asarray(step_index)
    if value.shape != () or not np.issubdtype(value.dtype, np.integer) or value < 0:
        msg = (
            f"`step_index` must be an integer >= 0 (a Python int or 0-d array); got {step_index!r}"
        )
        raise InvalidValueError(msg)
    return int(value)


def _slots(
    penalties: Pipeline | None,
    params_specs: Mapping[str, Any],
    activity_specs: Mapping[str, Any],
    schedule: WeightSchedule | None,
) -> tuple[_Slot, ...]:
    slots = [_Slot("penalty", e.name, e.weight) for e in (penalties or ()) if e.enabled]
    slots += [_Slot("param", name, spec[1]) for name, spec in params_specs.items()]
    slots += [_Slot("activity", name, spec[1]) for name, spec in activity_specs.items()]
    names = [slot.name for slot in slots]
    for name in schedule.schedules if schedule is not None else ():
        if names.count(name) != 1:
            problem = "matches no" if name not in names else "is ambiguous between several"
            msg = (
                f"`weight_schedules` names {name!r}, which {problem} penalty; scheduled names "
                f"are pipeline entries, parameter penalties and activity paths: {names}"
            )
            raise UnknownNameError(msg) if name not in names else InvalidValueError(msg)
    return tuple(slots)


def _check_arguments(apply_fn: Any, loss_fn: Any, optimizer: Any, penalties: Any) -> None:
    for value, name in ((apply_fn, "apply_fn"), (loss_fn, "loss_fn")):
        check_callable(value, name)
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        msg = f"`optimizer` must be an optax GradientTransformation; got {optimizer!r}"
        raise InvalidTypeError(msg)
    if penalties is not None and not isinstance(penalties, Pipeline):
        msg = f"`penalties` must be a Pipeline applied to the model output; got {penalties!r}"
        raise InvalidTypeError(msg)


def _full_optimizer(
    optimizer: optax.GradientTransformation,
    transforms: GradientTransformation | Sequence[GradientTransformation] | None,
) -> optax.GradientTransformation:
    if transforms is None:
        return optimizer
    if isinstance(transforms, GradientTransformation) or callable(
        getattr(transforms, "init", None)
    ):
        chained = transforms
    else:
        chained = chain(*transforms)
    return optax.chain(to_optax(chained), optimizer)  # type: ignore[arg-type]


def make_train_step(
    apply_fn: Callable[..., Any],
    loss_fn: Callable[[Any, Any], Array],
    optimizer: optax.GradientTransformation,
    *,
    penalties: Pipeline | None = None,
    parameter_penalties: Mapping[str, tuple[Any, ...]] | None = None,
    activity: Mapping[str, tuple[Any, ...]] | None = None,
    weight_schedules: WeightSchedule | Mapping[str, Any] | None = None,
    transforms: GradientTransformation | Sequence[GradientTransformation] | None = None,
    has_aux: bool = False,
    total_steps: int | None = None,
) -> TrainStep:
    """A pure, jitted optax train step with output, parameter and activity penalties.

    The step computes ``loss = loss_fn(outputs, targets) + penalty_total`` where
    ``penalty_total`` sums the weighted output penalties (``penalties`` on the
    outputs), parameter penalties and activity penalties, takes its gradient
    with respect to ``params``, runs ``transforms`` and then ``optimizer`` on
    it, and applies the updates (``optax.apply_updates``).

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, inputs)`` returns the outputs, or
        ``(outputs, intermediates)`` with ``has_aux=True`` (flax linen:
        ``lambda p, x: model.apply(p, x, mutable=["intermediates"])``).
    loss_fn : callable
        ``loss_fn(outputs, targets)`` returns the 0-d base loss.
    optimizer : optax.GradientTransformation
        Applied after ``transforms``.
    penalties : Pipeline, optional
        Output penalties: each enabled entry's ``fn(outputs, **opts)``, times its weight.
    parameter_penalties : mapping, optional
        Name → ``(penalty, weight)`` or ``(penalty, weight, options)``: the term
        is ``weight · tree_penalty(penalty, params, mask=...)``. ``options`` may
        hold ``include`` / ``exclude`` (regular expressions searched in, or
        callables on, the leaf path joined with ``/``, e.g.
        ``"params/Dense_0/kernel"``; typical: ``exclude=r"bias$|scale$"`` leaves
        out biases and norm scales), ``mask`` (a ``tree_penalty`` mask) and
        ``opts`` (the penalty's options).
    activity : mapping, optional
        Path → ``(penalty, weight)`` or ``(penalty, weight, opts)`` over the
        intermediates (see :func:`sown_values`); needs ``has_aux=True``.
    weight_schedules : WeightSchedule or mapping, optional
        Weights by step (``arraypenalties.schedules.weight_schedule``); keys are
        pipeline entry names, parameter penalty names or activity paths.
        Evaluated on the host at ``step_index`` (and ``total_steps``), or with
        ``jax.numpy`` when ``step_index`` is traced (the step called inside
        your own ``jax.jit`` or ``lax.scan``).
    transforms : GradientTransformation or sequence of them, optional
        ``arraypenalties.transforms`` applied to the gradients before ``optimizer``.
    has_aux : bool, default False
        ``apply_fn`` also returns the intermediates.
    total_steps : int, optional
        The run's length, for schedules whose durations span the whole run.

    Returns
    -------
    TrainStep
        ``step(params, opt_state, batch, step_index) -> (params, opt_state, metrics)``
        with ``batch = (inputs, targets)`` and ``step.init(params)`` for the
        first ``opt_state``. ``metrics`` are 0-d device arrays (convert them
        when you log): ``loss``, ``base_loss``, ``penalty_total``, the
        pipeline's ``<name>`` / ``<name>_weighted`` / ``total``,
        ``param/<name>`` / ``param/<name>_weighted``, ``activity/<path>`` /
        ``activity/<path>_weighted`` (raw values are unweighted), and
        ``weight/<name>`` for every scheduled weight.

    Raises
    ------
    InvalidTypeError, InvalidValueError, UnknownNameError
        Bad arguments, named; a schedule key that names no penalty.

    Notes
    -----
    Weights reach the compiled function as one array argument, so changing
    them (schedules) never recompiles. The step works unchanged on
    ``NamedSharding``-sharded params and batches: jit propagates the input
    shardings, and the updated params keep theirs.
    """
    _check_arguments(apply_fn, loss_fn, optimizer, penalties)
    param_specs = {
        name: check_spec(spec, f"parameter penalty {name!r}")
        for name, spec in (parameter_penalties or {}).items()
    }
    masks = {name: _param_mask(name, spec[2]) for name, spec in param_specs.items()}
    activity_specs = {
        path: check_spec(spec, f"activity penalty {path!r}")
        for path, spec in (activity or {}).items()
    }
    if activity_specs and not has_aux:
        msg = "`activity` penalties need `has_aux=True` (apply_fn returning the intermediates)"
        raise InvalidValueError(msg)
    schedule = weight_schedules
    if schedule is not None and not isinstance(schedule, WeightSchedule):
        schedule = weight_schedule(schedule)
    slots = _slots(penalties, param_specs, activity_specs, schedule)
    entries = [e for e in (penalties or ()) if e.enabled]
    scheduled = set(schedule.schedules) if schedule is not None else set()
    index = {(slot.group, slot.name): i for i, slot in enumerate(slots)}

    def objective(params: Any, batch: Any, weights: Array) -> tuple[Array, dict[str, Array]]:
        inputs, targets = batch
        produced = apply_fn(params, inputs)
        outputs, intermediates = produced if has_aux else (produced, None)
        base = zero_d(loss_fn(outputs, targets), "`loss_fn`")
        metrics: dict[str, Array] = {"base_loss": base}
        terms = []

        def weigh(group: str, name: str, raw: Array, key: str) -> None:
            weighted = weights[index[group, name]].astype(raw.dtype) * raw
            metrics[key], metrics[f"{key}_weighted"] = raw, weighted
            terms.append(weighted)

        for entry in entries:
            raw = zero_d(entry.fn(outputs, **entry.opts), f"penalty {entry.name!r}")
            weigh("penalty", entry.name, raw, entry.name)
        if entries:
            metrics["total"] = sum(terms[1:], terms[0])
        for name, (penalty, _, options) in param_specs.items():
            raw = tree_penalty(penalty, params, mask=masks[name], **options.get("opts", {}))
            weigh("param", name, raw, f"param/{name}")
        for path, raw in activity_terms(intermediates, activity_specs).items():
            weigh("activity", path, raw, f"activity/{path}")
        total = sum(terms[1:], terms[0]) if terms else jnp.zeros((), dtype=base.dtype)
        metrics["penalty_total"] = total
        metrics["loss"] = base + total
        for name in scheduled:
            group = next(slot.group for slot in slots if slot.name == name)
            metrics[f"weight/{name}"] = weights[index[group, name]]
        return metrics["loss"], metrics

    full = _full_optimizer(optimizer, transforms)

    def step(params: Any, opt_state: Any, batch: Any, weights: Array) -> Any:
        grads, metrics = jax.grad(objective, has_aux=True)(params, batch, weights)
        updates, opt_state = full.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    constant = jnp.asarray(np.asarray([slot.weight for slot in slots], dtype=dtype))
    return TrainStep(full, jax.jit(step), slots, schedule, total_steps, constant)
