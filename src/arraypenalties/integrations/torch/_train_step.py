"""``make_train_step``: one optimisation step with penalties, transforms, schedules and metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.distributed as dist

from arraypenalties._lib.checks import check_callable, check_int
from arraypenalties._lib.errors import InvalidTypeError, UnknownNameError
from arraypenalties.backends import primitives
from arraypenalties.integrations.torch._activity import ActivityRegularizer
from arraypenalties.integrations.torch._common import (
    check_opts,
    inner_module,
)
from arraypenalties.integrations.torch._loss import ParameterTerm, parameter_term
from arraypenalties.integrations.torch._output import OutputPenalties, add_all
from arraypenalties.integrations.torch._transforms import TransformRunner, check_optimizer
from arraypenalties.schedules import WeightSchedule, weight_schedule
from arraypenalties.tracking import warn_failures
from arraypenalties.transforms._base import GradientTransformation

__all__ = ["TrainStep", "make_train_step"]

_TERM_OPTIONS = ("include", "exclude", "opts")


def _parameter_terms(model: torch.nn.Module, specs: object) -> dict[str, ParameterTerm]:
    if specs is None:
        return {}
    if not isinstance(specs, Mapping):
        msg = f"`parameter_penalties` must be a mapping of names to specs; got {specs!r}"
        raise InvalidTypeError(msg)
    terms = {}
    for name, spec in specs.items():
        where = f"parameter_penalties[{name!r}]"
        if not (isinstance(spec, tuple) and len(spec) in (2, 3)):
            msg = f"`{where}` must be (penalty, weight) or (penalty, weight, options); got {spec!r}"
            raise InvalidTypeError(msg)
        options = check_opts(spec[2] if len(spec) == 3 else None, f"{where}[2]")
        unknown = sorted(set(options) - set(_TERM_OPTIONS))
        if unknown:
            msg = f"`{where}[2]` may hold {list(_TERM_OPTIONS)}; got unknown keys {unknown}"
            raise UnknownNameError(msg)
        terms[str(name)] = parameter_term(model, spec[0], weight=spec[1], **options)
    return terms


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return 1


class TrainStep:
    """The callable :func:`make_train_step` returns: ``step(inputs, targets) -> metrics``.

    Attributes
    ----------
    step : int
        The index of the next step (0 before the first call).
    activity : ActivityRegularizer or None
    transforms : TransformRunner or None
        The transform state lives here (``.state``), not on the optimizer.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        *,
        output: OutputPenalties | None,
        parameters: dict[str, ParameterTerm],
        activity: ActivityRegularizer | None,
        owns_activity: bool,
        transforms: TransformRunner | None,
        schedule: Schedule | None,
        allowed: list[str] | None,
        total_steps: int | None,
        track_every: int,
        log: Callable[[dict[str, Any], int], Any] | None,
        autocast: dict[str, Any] | None,
    ) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self._output, self._parameters = output, parameters
        self.activity, self._owns_activity = activity, owns_activity
        self.transforms = transforms
        self._schedule, self._allowed, self._total = schedule, allowed, total_steps
        self._track_every, self._log, self._autocast = track_every, log, autocast
        self._output_weights = [e.weight for e in output.entries] if output else []
        self._param_weights = {name: term.weight for name, term in parameters.items()}
        self.step = 0

    def _apply_schedule(self, step: int) -> None:
        if self._schedule is None:
            return
        weights = self._schedule(step, self._total)
        if self._allowed is not None:
            _check_names(weights, self._allowed)
        if self._output is not None:
            self._output_weights = [
                weights.get(name, weight)
                for name, weight in zip(self._output.names, self._output_weights, strict=True)
            ]
        for key, weight in weights.items():
            group, _, name = key.partition("/")
            if group == "param" and name in self._param_weights:
                self._param_weights[name] = weight
            elif group == "activity" and self.activity is not None and name in self.activity.paths:
                self.activity.set_weight(name, weight)

    def _context(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(**self._autocast)

    def __call__(self, inputs: Any, targets: Any) -> dict[str, Any]:
        step = self.step
        self._apply_schedule(step)
        track = self._track_every > 0 and step % self._track_every == 0
        keys: list[str] = ["loss", "base_loss", "penalty_total"]
        parts: list[torch.Tensor] = []
        with self._context():
            out = self.model(inputs)
            base = self.loss_fn(out, targets)
            added: list[torch.Tensor] = []  # what the penalties add to the loss
            if self._output is not None:
                terms = self._output.terms(out, self._output_weights, track=track)
                added.append(terms.total)
                keys += terms.keys(self._output.names, self._output.tracked_names)
                parts += terms.parts()
            for name, term in self._parameters.items():
                raw = term.raw()
                weighted = self._param_weights[name] * raw
                added.append(weighted)
                keys += [f"param/{name}", f"param/{name}_weighted"]
                parts += [raw, weighted]
            if self.activity is not None:
                total, raws, weighted_terms = self.activity.collect()
                added.append(total)
                for path in self.activity.paths:
                    keys += [f"activity/{path}", f"activity/{path}_weighted"]
                for raw, weighted in zip(raws, weighted_terms, strict=True):
                    parts += [raw, weighted]
            penalty = add_all(added, base)
            loss = base + penalty
        loss.backward()  # type: ignore[no-untyped-call]
        if self.transforms is not None:
            self.transforms.apply()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        metrics = self._metrics(keys, [loss, base, penalty, *parts])
        if self._output is not None and track:
            self._add_tracking(metrics, terms.present, terms.failures)
        self.step = step + 1
        if self._log is not None:
            self._log(metrics, step)
        return metrics

    @staticmethod
    def _metrics(keys: list[str], parts: list[torch.Tensor]) -> dict[str, Any]:
        """Every metric from ONE host transfer (and, distributed, ONE all-reduce)."""
        with torch.no_grad():
            dtype = torch.float64 if any(p.dtype == torch.float64 for p in parts) else None
            dtype = dtype or torch.float32
            stacked = torch.stack([p if p.dtype == dtype else p.to(dtype) for p in parts])
            world = _world_size()
            if world > 1:
                dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
                stacked = stacked / world
        return dict(zip(keys, primitives.to_floats(stacked), strict=True))

    def _add_tracking(
        self, metrics: dict[str, Any], present: tuple[bool, ...], failures: dict[str, str]
    ) -> None:
        assert self._output is not None
        if not self._output.tracked_names:  # nothing differentiable: no gradient at all
            metrics["total_grad_norm"] = 0.0
            return
        for name, ok in zip(self._output.tracked_names, present, strict=True):
            if not ok:
                metrics[f"{name}_grad_norm"] = None
                metrics[f"{name}_grad_norm_error"] = True
        metrics.setdefault("total_grad_norm", None)
        warn_failures(failures)

    def state_dict(self) -> dict[str, Any]:
        """``{"step": int, "transforms": ...}``: checkpoint it next to the optimizer's."""
        transforms = None if self.transforms is None else self.transforms.state_dict()
        return {"step": self.step, "transforms": transforms}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`: the step counter and the transform state."""
        self.step = check_int(state_dict["step"], "state_dict['step']", low=0)
        if self.transforms is not None:
            self.transforms.load_state_dict(state_dict["transforms"])

    def close(self) -> None:
        """Remove the activity hooks this step registered (not those of a regularizer passed in)."""
        if self.activity is not None and self._owns_activity:
            self.activity.remove()


Schedule = Callable[[int, "int | None"], Mapping[str, float]]


def _schedule(spec: object, allowed: list[str]) -> tuple[Schedule | None, bool]:
    """The schedule and whether its names still need checking at every step (a plain callable)."""
    if spec is None:
        return None, False
    if isinstance(spec, Mapping):
        spec = weight_schedule(spec)
    if isinstance(spec, WeightSchedule):
        _check_names(spec.schedules, allowed)
        return spec, False
    if callable(spec):
        return spec, True
    msg = (
        "`weight_schedules` must be a WeightSchedule, a mapping, a function "
        f"(step, total_steps) -> {{name: weight}} or None; got {spec!r}"
    )
    raise InvalidTypeError(msg)


def _check_names(names: Iterable[str], allowed: list[str]) -> None:
    unknown = [name for name in names if name not in allowed]
    if unknown:
        msg = f"`weight_schedules` names {unknown}, which are not penalties here; known: {allowed}"
        raise UnknownNameError(msg)


def _activity(model: torch.nn.Module, activity: object) -> tuple[ActivityRegularizer | None, bool]:
    """The regularizer, and whether the step made it (and so removes its hooks on close)."""
    if activity is None or isinstance(activity, ActivityRegularizer):
        return activity, False
    if isinstance(activity, Mapping):
        return ActivityRegularizer(model, activity), True
    msg = f"`activity` must be an ActivityRegularizer, a mapping or None; got {activity!r}"
    raise InvalidTypeError(msg)


def _runner(
    optimizer: torch.optim.Optimizer, transforms: object, module: torch.nn.Module
) -> TransformRunner | None:
    if transforms is None:
        return None
    named = dict(module.named_parameters())
    known = {id(param) for param in named.values()}
    every_named = all(id(p) in known for group in optimizer.param_groups for p in group["params"])
    pairs = named.items() if every_named else None
    return TransformRunner(optimizer, transforms, pairs)  # type: ignore[arg-type]


def make_train_step(
    model: torch.nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    penalties: Any = None,
    parameter_penalties: Mapping[str, tuple[Any, ...]] | None = None,
    activity: ActivityRegularizer | Mapping[str, Any] | None = None,
    transforms: GradientTransformation | None = None,
    weight_schedules: WeightSchedule | Mapping[str, Any] | Schedule | None = None,
    total_steps: int | None = None,
    track_every: int = 0,
    log: Callable[[dict[str, Any], int], Any] | None = None,
    autocast: Mapping[str, Any] | None = None,
) -> TrainStep:
    """One training step with penalties: ``step(inputs, targets) -> dict[str, float]``.

    Each call runs: forward ``out = model(inputs)``; ``base = loss_fn(out, targets)``;
    the output penalties (a :class:`~arraypenalties.Pipeline` on ``out``); the
    parameter penalties; the activity penalties; ``loss.backward()``; the
    transforms on the gradients (applied by the step: no hook is put on
    ``optimizer``); ``optimizer.step()``; ``optimizer.zero_grad(set_to_none=True)``.

    Parameters
    ----------
    model : torch.nn.Module
        Plain, ``torch.compile``'d or ``DistributedDataParallel``-wrapped; names
        (parameters, submodule paths) are those of the model you built.
    loss_fn : callable
        ``loss_fn(out, targets) -> 0-d tensor``.
    optimizer : torch.optim.Optimizer
    penalties : Pipeline, optional
        Output penalties: each enabled entry is called on ``out``.
    parameter_penalties : mapping, optional
        ``name -> (penalty, weight)`` or ``(penalty, weight, {"include": ...,
        "exclude": ..., "opts": ...})``, see :func:`parameter_penalty`; the
        parameters are selected once, here.
    activity : ActivityRegularizer or mapping, optional
        A regularizer on ``model`` (kept when the step is closed), or its
        ``{path: (penalty, weight) | Pipeline}`` mapping (the step builds one and
        :meth:`TrainStep.close` removes its hooks).
    transforms : GradientTransformation, optional
        Applied to the gradients of every parameter of ``optimizer`` after
        ``backward()``. The trees are dicts keyed by the model's parameter
        names when the model names every optimizer parameter, else lists.
    weight_schedules : WeightSchedule, mapping or callable, optional
        Evaluated at every step as ``schedule(step, total_steps)``, returning
        ``{name: weight}``; names are output entry names, ``"param/<name>"``
        or ``"activity/<path>"`` (unknown names raise). A mapping goes through
        :func:`~arraypenalties.schedules.weight_schedule`; a function can
        change units, e.g. epochs:
        ``lambda step, total: by_epoch(step / steps_per_epoch, epochs)``.
    total_steps : int, optional
        The run's length, for schedules whose duration is "the whole run".
    track_every : int, default 0
        On steps where ``step % track_every == 0`` (steps count from 0) add the
        output penalties' gradient norms with respect to ``out``; 0: never.
    log : callable, optional
        ``log(metrics, step)`` after every step.
    autocast : mapping, optional
        ``torch.autocast`` arguments (``{"device_type": "cpu", "dtype":
        torch.bfloat16}``): forward and losses run inside, ``backward()``
        outside, as PyTorch recommends. Calling the step inside your own
        ``torch.autocast`` block works too.

    Returns
    -------
    TrainStep
        ``step(inputs, targets)`` returns the metrics: ``loss``, ``base_loss``,
        ``penalty_total``; the pipeline's keys (``"<name>"``,
        ``"<name>_weighted"``, ``"total"`` and, on tracked steps,
        ``"<name>_grad_norm"``, ``"total_grad_norm"``); ``param/<name>`` and
        ``param/<name>_weighted``; ``activity/<path>`` and
        ``activity/<path>_weighted``. Unsuffixed keys are raw values, ``_weighted``
        what was added to the loss. All floats come from one host transfer;
        under ``torch.distributed`` they are averaged across ranks with one
        all-reduce (every rank must call the step with the same penalties).

    Raises
    ------
    InvalidTypeError, UnknownNameError, InvalidValueError
        A bad argument (named in the message); a schedule naming no penalty.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties import Pipeline
    >>> from arraypenalties.integrations.torch import make_train_step
    >>> from arraypenalties.transforms import clip_by_global_norm
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> step = make_train_step(
    ...     model, torch.nn.functional.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1),
    ...     penalties=Pipeline().add("l1", "l1", weight=1e-3),
    ...     parameter_penalties={"l2": ("l2", 1e-4, {"exclude": "bias"})},
    ...     activity={"1": ("l1", 1e-3)},
    ...     transforms=clip_by_global_norm(max_norm=1.0),
    ...     weight_schedules={"l1": {"kind": "linear", "init": 0.0, "end": 1e-3, "steps": 10}},
    ...     track_every=10,
    ... )
    >>> metrics = step(torch.randn(16, 4), torch.randn(16, 2))
    >>> list(metrics)  # doctest: +NORMALIZE_WHITESPACE
    ['loss', 'base_loss', 'penalty_total', 'l1', 'l1_weighted', 'total', 'l1_grad_norm',
     'total_grad_norm', 'param/l2', 'param/l2_weighted', 'activity/1', 'activity/1_weighted']
    >>> metrics["l1_weighted"], step.step  # the scheduled weight is 0 at step 0
    (0.0, 1)
    """
    module = inner_module(model)
    check_callable(loss_fn, "loss_fn")
    check_optimizer(optimizer)
    output = None if penalties is None else OutputPenalties(penalties)
    parameters = _parameter_terms(module, parameter_penalties)
    regularizer, owns_activity = _activity(model, activity)
    allowed = [*(output.all_names if output else ()), *(f"param/{n}" for n in parameters)]
    allowed += [f"activity/{p}" for p in (regularizer.paths if regularizer else ())]
    schedule, check_every_step = _schedule(weight_schedules, allowed)
    track = check_int(track_every, "track_every", low=0)
    steps = None if total_steps is None else check_int(total_steps, "total_steps", low=1)
    check_callable(log, "log", what="callable log(metrics, step)", optional=True)
    cast = None if autocast is None else check_opts(autocast, "autocast")
    return TrainStep(
        model,
        loss_fn,
        optimizer,
        output=output,
        parameters=parameters,
        activity=regularizer,
        owns_activity=owns_activity,
        transforms=_runner(optimizer, transforms, module),
        schedule=schedule,
        allowed=allowed if check_every_step else None,
        total_steps=steps,
        track_every=track,
        log=log,
        autocast=cast,
    )
