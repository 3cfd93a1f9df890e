"""``compose`` and ``as_custom_loss_fn``: base loss + Σ weight·regularizer, with a report.

One call evaluates every term once (one forward each), moves every value and
custom metric to the host in one transfer and, with tracking, takes one backward
per term; the total's gradient comes from linearity and is attached to the
returned total, so the backward Tinker runs does not evaluate the terms again.
"""

from __future__ import annotations

import math
import numbers
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from arraypenalties import InvalidTypeError, InvalidValueError, NonFiniteError, telemetry
from arraypenalties._lib.checks import check_bool, check_callable
from arraypenalties.tinker._autograd import linear_total, reaches_all, touch
from arraypenalties.tinker._data import check_batch
from arraypenalties.tinker._report import (
    BaseLossOutput,
    CustomLossOutput,
    RegularizerOutput,
    check_prefix,
)
from arraypenalties.tinker._specs import (
    RegularizerError,
    RegularizerSpec,
    check_on_nonfinite,
    check_specs,
    reaches_every_datum,
)
from arraypenalties.tinker._tracker import norm, scalar, term_gradients, warn_failed

__all__ = ["EVENTS", "as_custom_loss_fn", "compose"]

LOSS_EVENT = ("arraypenalties", "custom_loss")
REG_EVENT = ("arraypenalties", "regularizer", "compute")
EVENTS = tuple(
    (*head, tail) for head in (LOSS_EVENT, REG_EVENT) for tail in ("start", "stop", "exception")
)
BASE = "base loss"


@dataclass
class _Term:
    name: str
    weight: float
    value: torch.Tensor
    metrics: Any
    duration: int = 0
    value_float: float = 0.0
    kept: bool = True
    custom: dict[str, float] = field(default_factory=dict)
    norm: float | None = None
    constant: bool = False  # the absent base loss: 0, with a zero gradient
    whole_batch: bool = False  # a built-in whose graph reaches every datum


def _failure(event: tuple[str, ...], start: int, metadata: dict[str, Any], exc: Exception) -> None:
    failed = {**metadata, "kind": type(exc), "reason": exc}
    failed["stacktrace"] = traceback.format_exception(exc)
    telemetry.emit((*event, "exception"), {"duration": time.perf_counter_ns() - start}, failed)


def _evaluate(spec: RegularizerSpec, data: Any, variables: list[torch.Tensor]) -> _Term:
    observed = telemetry.is_observed((*REG_EVENT, "exception"))
    metadata = {"regularizer_name": spec.name, "weight": spec.weight}
    if telemetry.is_observed((*REG_EVENT, "start")):
        telemetry.emit((*REG_EVENT, "start"), {"system_time": time.time_ns()}, metadata)
    start = time.perf_counter_ns()
    try:
        value, metrics = scalar(spec.fn(data, variables), f"regularizer {spec.name!r}")
        _check_metrics(metrics, f"regularizer {spec.name!r}")
    except Exception as exc:
        if observed:
            _failure(REG_EVENT, start, metadata, exc)
        msg = f"regularizer {spec.name!r} failed: {type(exc).__name__}: {exc}"
        raise RegularizerError(msg) from exc
    duration = time.perf_counter_ns() - start
    term = _Term(spec.name, spec.weight, value, metrics, duration)
    term.whole_batch = reaches_every_datum(spec.fn)
    return term


def _check_metrics(metrics: object, what: str) -> None:
    if metrics is None:
        return
    if not isinstance(metrics, Mapping):
        msg = f"{what} must return metrics as a mapping; got {type(metrics).__name__}"
        raise InvalidTypeError(msg)
    for key in metrics:
        if not isinstance(key, str) or ":" in key:
            msg = f"{what} returned metric name {key!r}; names must be str without ':'"
            raise InvalidValueError(msg)


def _base(base_loss_fn: Any, data: Any, variables: list[torch.Tensor]) -> _Term:
    if base_loss_fn is None:
        zero = torch.zeros((), dtype=variables[0].dtype, device=variables[0].device)
        return _Term(BASE, 1.0, zero, None, constant=True)
    check_callable(base_loss_fn, "base_loss_fn", optional=True)
    value, metrics = scalar(base_loss_fn(data, variables), "`base_loss_fn`")
    _check_metrics(metrics, "`base_loss_fn`")
    return _Term(BASE, 1.0, value, metrics)


def _to_host(terms: list[_Term]) -> None:
    """Every term's value and 0-d tensor metric as floats, in one host transfer."""
    tensors = [term.value for term in terms]
    slots: list[tuple[_Term, str]] = []
    for term in terms:
        for key, value in (term.metrics or {}).items():
            if isinstance(value, torch.Tensor):
                if value.ndim == 0:
                    tensors.append(value)
                    slots.append((term, key))
            elif isinstance(value, numbers.Real):  # bools and numbers; other values are dropped
                term.custom[key] = float(value)
    first = tensors[0]
    if all(t.dtype == first.dtype and t.device == first.device for t in tensors):
        stacked = torch.stack([t.detach() for t in tensors])
    else:
        stacked = torch.stack([t.detach().to(device="cpu", dtype=torch.float64) for t in tensors])
    floats = stacked.tolist()  # the one host transfer of the values
    for term, value in zip(terms, floats, strict=False):
        term.value_float = value
    for (term, key), value in zip(slots, floats[len(terms) :], strict=True):
        term.custom[key] = value


def _apply_nonfinite(terms: list[_Term], on_nonfinite: str) -> None:
    for term in terms:
        value = term.value_float
        if math.isfinite(value):
            continue
        what = "the base loss" if term.name == BASE else f"regularizer {term.name!r}"
        if on_nonfinite == "raise":
            kind = "nan" if math.isnan(value) else "inf"
            msg = f"{what} is not finite ({value}); `on_nonfinite='raise'`"
            raise NonFiniteError(kind, msg)
        if on_nonfinite == "warn":
            msg = f"{what} is not finite ({value}); kept (`on_nonfinite='warn'`)"
            warnings.warn(msg, RuntimeWarning, stacklevel=4)
        else:  # "zero": the term contributes value 0 and gradient 0
            term.kept, term.value_float = False, 0.0


def _track(
    terms: list[_Term], variables: list[torch.Tensor]
) -> tuple[list[torch.Tensor] | None, float | None]:
    """Per-term gradients and norms (set on the terms); the total gradient and its norm.

    The total is None when a kept term's gradient failed. Norms come from one
    host transfer.
    """
    kept = [term for term in terms if term.kept]
    grads = [
        [torch.zeros_like(v) for v in variables]
        if term.constant
        else term_gradients(term.value, variables)
        for term in kept
    ]
    ok = [(term, g) for term, g in zip(kept, grads, strict=True) if g is not None]
    total: list[torch.Tensor] | None = None
    if len(ok) == len(kept):
        total = [torch.zeros_like(v) for v in variables]
        for term, g in ok:
            total = [acc + term.weight * gi for acc, gi in zip(total, g, strict=True)]
    parts = [norm(g) for _, g in ok] + ([norm(total)] if total is not None else [])
    floats = torch.stack(parts).tolist() if parts else []  # the one transfer of the norms
    for (term, _), value in zip(ok, floats, strict=False):
        term.norm = value
    for term in terms:
        if not term.kept:
            term.norm = 0.0
    warn_failed([term.name for term, g in zip(kept, grads, strict=True) if g is None])
    return total, (floats[-1] if total is not None else None)


def _total(
    terms: list[_Term], variables: list[torch.Tensor], grads: list[torch.Tensor] | None
) -> torch.Tensor:
    """``base + Σ wᵢ·regᵢ`` over the kept terms, reaching every datum's log-probs."""
    total: torch.Tensor | None = None
    for term in terms:
        if term.kept and not term.constant:
            value = term.value.detach() if grads is not None else term.value
            weighted = value if term.weight == 1.0 else term.weight * value
            total = weighted if total is None else total + weighted
    if total is None:
        total = torch.zeros((), dtype=variables[0].dtype, device=variables[0].device)
    if grads is not None:
        return linear_total(total, variables, grads)
    if any(t.kept and t.whole_batch and t.value.requires_grad for t in terms):
        return total  # a built-in already reaches every datum
    if reaches_all(total, variables):
        return total
    live = [v for v in variables if v.requires_grad]
    return total + touch(live) if live else total


def _report(terms: list[_Term], tracked: bool, total_norm: float | None) -> CustomLossOutput:
    base, regs = terms[0], terms[1:]
    outputs = {}
    for term in regs:
        weighted = None if term.norm is None else term.weight * term.norm
        outputs[term.name] = RegularizerOutput(
            term.name,
            term.value_float,
            term.weight,
            term.weight * term.value_float,
            term.norm,
            weighted,
            dict(term.custom),
        )
    reg_total = math.fsum(out.contribution for out in outputs.values())
    return CustomLossOutput(
        base.value_float + reg_total,
        BaseLossOutput(base.value_float, base.norm, dict(base.custom)),
        outputs,
        reg_total,
        total_norm,
        tracked,
    )


def _compose(
    data: Any,
    logprobs_list: list[torch.Tensor],
    base_loss_fn: Any,
    specs: tuple[RegularizerSpec, ...],
    track: bool,
    on_nonfinite: str,
) -> tuple[torch.Tensor, CustomLossOutput]:
    variables = logprobs_list
    if track:  # the norms need variables to differentiate against
        variables = [v if v.requires_grad else v.detach().requires_grad_(True) for v in variables]
    terms = [_base(base_loss_fn, data, variables)]
    terms += [_evaluate(spec, data, variables) for spec in specs]
    _to_host(terms)
    _apply_nonfinite(terms, on_nonfinite)
    grads, total_norm = _track(terms, variables) if track else (None, None)
    total = _total(terms, variables, grads)
    report = _report(terms, track, total_norm)
    if telemetry.is_observed((*REG_EVENT, "stop")):
        for term in terms[1:]:
            out = report.regularizers[term.name]
            measurements = {
                "duration": term.duration,
                "value": out.value,
                "contribution": out.contribution,
                "grad_norm": out.grad_norm,
            }
            metadata = {"regularizer_name": term.name, "weight": term.weight}
            telemetry.emit((*REG_EVENT, "stop"), measurements, metadata)
    return total, report


def compose(
    data: Sequence[Any] | None,
    logprobs_list: Sequence[torch.Tensor],
    base_loss_fn: Callable[..., Any] | None,
    *,
    regularizers: Sequence[RegularizerSpec] = (),
    track_grad_norms: bool = False,
    on_nonfinite: str = "raise",
) -> tuple[torch.Tensor, CustomLossOutput]:
    """``base + Σ weightᵢ·regᵢ`` as one differentiable 0-d tensor, and its report.

    Parameters
    ----------
    data : list of datums or None
        What Tinker passes to a custom loss (``tinker.Datum`` or any object with a
        ``loss_fn_inputs`` mapping); None when no term reads data.
    logprobs_list : list of tensors
        One log-prob tensor per datum, ``[T]`` or ``[T, K]``.
    base_loss_fn : callable or None
        ``base_loss_fn(data, logprobs_list)`` returning a 0-d tensor or
        ``(loss, metrics)``; None means a base of 0.
    regularizers : sequence of RegularizerSpec
        Names unique; disabled specs are neither computed nor reported.
    track_grad_norms : bool, default False
        Also report ‖∂term/∂logprobs‖ per term and for the total: one backward
        per term, the total by linearity.
    on_nonfinite : {"raise", "warn", "zero"}, default "raise"
        A non-finite base or term: raise :class:`~arraypenalties.NonFiniteError`
        naming it; warn (``RuntimeWarning``) and keep it; or drop it (value 0,
        gradient 0).

    Returns
    -------
    total : tensor
        0-d, connected to every datum's log-probs (a datum no term reads gets
        a zero gradient, so Tinker never reports "No gradient computed").
        With tracking its gradient is the linear combination already computed
        (first order, with respect to the log-probs; quantities a term reaches
        other than through the log-probs get no gradient then).
    report : CustomLossOutput

    Raises
    ------
    RegularizerError
        A regularizer raised or returned something other than a 0-d tensor.
    NonFiniteError
        ``on_nonfinite="raise"`` and a term is NaN or infinite.
    InvalidValueError, InvalidTypeError
        Bad options, duplicate names, ``data`` and ``logprobs_list`` of
        different lengths.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import RegularizerSpec, compose
    >>> logprobs = [torch.tensor([1.0, 2.0, 3.0], requires_grad=True)]
    >>> l2 = RegularizerSpec(lambda data, lps: (lps[0] ** 2).sum(), weight=0.5, name="l2")
    >>> total, report = compose(None, logprobs, lambda data, lps: lps[0].sum(),
    ...                         regularizers=[l2], track_grad_norms=True)
    >>> total.item(), report.regularizers["l2"].contribution, round(report.total_grad_norm ** 2, 4)
    (13.0, 7.0, 29.0)
    """
    specs = check_specs(regularizers)
    check_bool(track_grad_norms, "track_grad_norms")
    on_nonfinite = check_on_nonfinite(on_nonfinite)
    return _checked_compose(
        data, logprobs_list, base_loss_fn, specs, track_grad_norms, on_nonfinite
    )


def _checked_compose(
    data: Any,
    logprobs_list: Any,
    base_loss_fn: Any,
    specs: tuple[RegularizerSpec, ...],
    track_grad_norms: bool,
    on_nonfinite: str,
) -> tuple[torch.Tensor, CustomLossOutput]:
    """:func:`compose` once its options are checked: the batch, then telemetry around it."""
    data, checked = check_batch(data, logprobs_list)
    if not checked:
        msg = "`logprobs_list` is empty: a custom loss needs at least one datum"
        raise InvalidValueError(msg)
    if not any(
        telemetry.is_observed((*LOSS_EVENT, tail)) for tail in ("start", "stop", "exception")
    ):
        return _compose(data, checked, base_loss_fn, specs, track_grad_norms, on_nonfinite)
    metadata = {"regularizer_count": len(specs), "track_grad_norms": track_grad_norms}
    telemetry.emit((*LOSS_EVENT, "start"), {"system_time": time.time_ns()}, metadata)
    start = time.perf_counter_ns()
    try:
        total, report = _compose(data, checked, base_loss_fn, specs, track_grad_norms, on_nonfinite)
    except Exception as exc:
        _failure(LOSS_EVENT, start, metadata, exc)
        raise
    measurements = {
        "duration": time.perf_counter_ns() - start,
        "loss_total": report.loss_total,
        "regularizer_total": report.regularizer_total,
    }
    telemetry.emit((*LOSS_EVENT, "stop"), measurements, metadata)
    return total, report


def as_custom_loss_fn(
    base_loss_fn: Callable[..., Any] | None,
    regularizers: Sequence[RegularizerSpec] = (),
    *,
    track_grad_norms: bool = False,
    metrics_prefix: str = "",
    on_nonfinite: str = "raise",
    report_sink: Callable[[CustomLossOutput], object] | None = None,
) -> Callable[[Sequence[Any], Sequence[torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]:
    """A loss function for ``TrainingClient.forward_backward_custom(data, loss_fn)``.

    It returns ``(total, report.to_metrics(metrics_prefix))`` (plain floats, keys
    without ``:``) and hands the full :class:`CustomLossOutput` to
    ``report_sink``. Options are checked here, once, not inside Tinker's
    background thread; see :func:`compose` for their meaning.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import as_custom_loss_fn
    >>> loss_fn = as_custom_loss_fn(lambda data, lps: -torch.cat(lps).mean())
    >>> loss, metrics = loss_fn(None, [torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)])
    >>> loss.item(), metrics
    (2.0, {'loss_total': 2.0, 'base_loss': 2.0, 'regularizer_total': 0.0})
    """
    specs = check_specs(regularizers)
    check_callable(base_loss_fn, "base_loss_fn", optional=True)
    check_bool(track_grad_norms, "track_grad_norms")
    on_nonfinite = check_on_nonfinite(on_nonfinite)
    prefix = check_prefix(metrics_prefix)
    check_callable(report_sink, "report_sink", optional=True)

    def custom_loss(
        data: Sequence[Any], logprobs_list: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        total, report = _checked_compose(
            data, logprobs_list, base_loss_fn, specs, track_grad_norms, on_nonfinite
        )
        if report_sink is not None:
            report_sink(report)
        return total, report.to_metrics(prefix)

    return custom_loss
