"""Built-ins that compare the log-probs with something: a reference, a pair, a distribution.

References are data (a ``loss_fn_inputs`` field, a per-datum list or a callable
``reference(data) -> list``): each datum is aligned with its own item, which is
read without gradient in the log-probs' dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

import arraypenalties as ap
from arraypenalties import InvalidTypeError, InvalidValueError
from arraypenalties._lib.checks import check_bool, check_callable
from arraypenalties.tinker._data import MaskOption, check_mask, references
from arraypenalties.tinker._gather import elements, need_rows, per_row, reduce, rows, selected
from arraypenalties.tinker._specs import (
    RegularizerSpec,
    whole_batch_spec,
)

__all__ = ["consistency", "entropy", "gradient_penalty", "kl_to_reference"]

_ESTIMATORS = ("k1", "k2", "k3", "full")
_PAIR = torch.log(torch.tensor([[0.5, 0.5]], dtype=torch.float64))


def _choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        msg = f"`{name}` must be one of {list(allowed)}; got {value!r}"
        raise InvalidValueError(msg)
    return value


def _check_reference(reference: object, name: str) -> None:
    if isinstance(reference, (str, Sequence)) or callable(reference):
        return
    msg = (
        f"`{name}` must be a loss_fn_inputs field name, a per-datum list or a callable "
        f"reference(data) -> list; got {type(reference).__name__}"
    )
    raise InvalidTypeError(msg)


def _renormalized(tensors: Sequence[torch.Tensor], renormalize: bool) -> list[torch.Tensor]:
    if not renormalize:
        return list(tensors)
    return [t - torch.logsumexp(t, dim=-1, keepdim=True) for t in tensors]


def kl_to_reference(
    reference: str | Sequence[Any] | Callable[[Sequence[Any]], Sequence[Any]],
    *,
    weight: float,
    name: str = "kl_divergence",
    mask: MaskOption = "weights",
    estimator: str = "k3",
    reduction: str = "mean",
    direction: str = "forward",
    symmetric: bool = False,
    max_log_ratio: float | None = None,
    renormalize: bool = True,
) -> RegularizerSpec:
    """KL between the policy's log-probs and a reference's, datum by datum.

    Parameters
    ----------
    reference : str, list or callable
        A ``loss_fn_inputs`` field name, a list with one item per datum, or
        ``reference(data) -> list``; each item shaped like its datum's log-probs.
    estimator : {"k3", "k1", "k2", "full"}, default "k3"
        ``"k1"``/``"k2"``/``"k3"``: the sampled-token estimators of the core
        :func:`~arraypenalties.kl_estimate` on every position (``[T]`` or
        ``[T, K]``). ``"full"``: the core :func:`~arraypenalties.kl_divergence`
        per row of ``[T, K]`` candidates, renormalised over K first
        (``renormalize=True``) and with ``direction`` / ``symmetric`` /
        ``max_log_ratio``.
    reduction : {"mean", "sum"}
        Over positions (rows for ``"full"``), weighted by the mask.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import kl_to_reference
    >>> p = torch.log(torch.tensor([[0.4, 0.3, 0.3]]))
    >>> q = torch.log(torch.tensor([[0.25, 0.25, 0.5]]))
    >>> round(kl_to_reference([q], weight=1.0, estimator="full").fn(None, [p]).item(), 6)
    0.08945
    """
    _check_reference(reference, "reference")
    estimator = _choice(estimator, "estimator", _ESTIMATORS)
    reduction = _choice(reduction, "reduction", ("mean", "sum"))
    mask = check_mask(mask)
    options: dict[str, Any] = {
        "direction": direction,
        "symmetric": symmetric,
        "max_log_ratio": max_log_ratio,
    }
    ap.kl_divergence(_PAIR, _PAIR, **options)
    check_bool(renormalize, "renormalize")

    def sampled(data: Sequence[Any], logprobs_list: Sequence[torch.Tensor]) -> Any:
        refs = references(reference, data, logprobs_list)
        x, w, (ref,) = elements(data, logprobs_list, mask, [refs])
        if w is None:
            return ap.kl_estimate(x, ref, estimator=estimator, reduction=reduction)
        values = ap.kl_estimate(x, ref, estimator=estimator, mask=w != 0, reduction="none")
        return reduce(values, w, reduction)

    def full(data: Sequence[Any], logprobs_list: Sequence[torch.Tensor]) -> Any:
        need_rows(logprobs_list, 'kl_to_reference(estimator="full")')
        refs = references(reference, data, logprobs_list)
        p, w, (q,) = rows(data, logprobs_list, mask, [refs])
        p, q = _renormalized(p, renormalize), _renormalized(q, renormalize)
        values = per_row(lambda a, b: ap.kl_divergence(a, b, reduction="none", **options), p, q)
        return reduce(values, w, reduction)

    return whole_batch_spec(full if estimator == "full" else sampled, weight, name)


def entropy(
    *,
    weight: float,
    name: str = "entropy",
    mask: MaskOption = "weights",
    objective: str = "maximize",
    reduction: str = "mean",
    normalize: bool = False,
    temperature: float = 1.0,
    renormalize: bool = True,
) -> RegularizerSpec:
    """Entropy of the ``[T, K]`` candidates per position: ``-H`` to maximize, ``+H`` to minimize.

    Rows are renormalised over K first (``renormalize=True``: top-K log-probs do
    not sum to 1); ``normalize`` / ``temperature`` are the core
    :func:`~arraypenalties.entropy`'s.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import entropy
    >>> uniform = torch.log(torch.full((1, 4), 0.25))
    >>> round(entropy(weight=1.0).fn(None, [uniform]).item(), 6)  # -ln 4
    -1.386294
    """
    objective = _choice(objective, "objective", ("maximize", "minimize"))
    reduction = _choice(reduction, "reduction", ("mean", "sum"))
    mask = check_mask(mask)
    mode = "bonus" if objective == "maximize" else "penalty"
    options: dict[str, Any] = {"mode": mode, "normalize": normalize, "temperature": temperature}
    ap.entropy(_PAIR, **options)

    def fn(data: Sequence[Any], logprobs_list: Sequence[torch.Tensor]) -> Any:
        need_rows(logprobs_list, "entropy")
        p, w, _ = rows(data, logprobs_list, mask)
        p = _renormalized(p, renormalize)
        values = per_row(lambda a: ap.entropy(a, reduction="none", **options), p)
        return reduce(values, w, reduction)

    return whole_batch_spec(fn, weight, name)


def consistency(
    pair_field: str | Sequence[Any] | Callable[[Sequence[Any]], Sequence[Any]],
    *,
    weight: float,
    name: str = "consistency",
    mask: MaskOption = "weights",
    metric: str = "mse",
    reduction: str = "mean",
) -> RegularizerSpec:
    """Core ``consistency`` between the log-probs and a paired tensor of each datum.

    ``"mse"`` / ``"l1"`` per position (any shape); ``"cosine"`` / ``"kl"`` per
    row of ``[T, K]`` datums. The pair is data (no gradient).

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import consistency
    >>> spec = consistency([torch.tensor([1.5, 2.5, 3.5])], weight=1.0)
    >>> spec.fn(None, [torch.tensor([1.0, 2.0, 3.0])]).item()
    0.25
    """
    _check_reference(pair_field, "pair_field")
    metric = _choice(metric, "metric", ("mse", "l1", "cosine", "kl"))
    reduction = _choice(reduction, "reduction", ("mean", "sum"))
    mask = check_mask(mask)

    def fn(data: Sequence[Any], logprobs_list: Sequence[torch.Tensor]) -> Any:
        pairs = references(pair_field, data, logprobs_list)
        if metric in ("mse", "l1"):
            x, w, (y,) = elements(data, logprobs_list, mask, [pairs])
            return reduce(ap.consistency(x, y, metric=metric, reduction="none"), w, reduction)
        need_rows(logprobs_list, f"consistency(metric={metric!r})")
        a, w, (b,) = rows(data, logprobs_list, mask, [pairs])
        values = per_row(lambda u, v: ap.consistency(u, v, metric=metric, reduction="none"), a, b)
        return reduce(values, w, reduction)

    return whole_batch_spec(fn, weight, name)


def gradient_penalty(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    weight: float,
    name: str = "gradient_penalty",
    mask: MaskOption = "weights",
    mode: str = "output",
    reference_field: str | Sequence[Any] | Callable[[Sequence[Any]], Sequence[Any]] | None = None,
    target_norm: float = 1.0,
    rng: object = None,
) -> RegularizerSpec:
    """``(‖∇ loss_fn(x)‖₂ − target_norm)²`` with one global norm (ADR-007).

    ``x`` is the batch's kept log-probs concatenated (``[N]``, or ``[N, K]`` rows);
    ``loss_fn`` maps it to a scalar. ``mode="interpolated"`` takes the gradient at
    ``α·x + (1 − α)·ref`` (``ref`` from ``reference_field``, kept the same way;
    one α drawn from ``rng``, an int seed or a ``torch.Generator``).

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import gradient_penalty
    >>> spec = gradient_penalty(lambda x: torch.sum(x ** 2) / 2, weight=1.0)
    >>> spec.fn(None, [torch.tensor([3.0]), torch.tensor([4.0])]).item()  # (5 - 1)²
    16.0
    """
    check_callable(loss_fn, "loss_fn")
    mode = _choice(mode, "mode", ("output", "interpolated"))
    mask = check_mask(mask)
    if mode == "interpolated":
        if reference_field is None:
            msg = '`reference_field` is required with mode="interpolated"'
            raise InvalidValueError(msg)
        _check_reference(reference_field, "reference_field")

    def fn(data: Sequence[Any], logprobs_list: Sequence[torch.Tensor]) -> Any:
        x = torch.cat(selected(data, logprobs_list, mask, "gradient_penalty"))
        if mode == "output":
            return ap.gradient_penalty(loss_fn, x, target_norm=target_norm)
        refs = references(reference_field, data, logprobs_list)
        real = torch.cat(selected(data, refs, mask, "gradient_penalty"))
        return ap.interpolated_gradient_penalty(
            loss_fn, x, real, target_norm=target_norm, batch_axis=None, rng=rng
        )

    return RegularizerSpec(fn, weight, name)
