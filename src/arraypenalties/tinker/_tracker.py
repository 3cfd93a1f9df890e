"""Gradient norms with respect to the log-probs of every datum (the Tinkex GradientTracker).

One backward per term (``retain_graph``) gives each term's per-datum gradients; the
total's gradient is their weighted sum (linearity), never another backward. A term
that is not differentiable (no graph to the log-probs, an autograd error) has no
norm: ``None``, never a silent 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from arraypenalties import GradientTrackingWarning, InvalidTypeError, InvalidValueError
from arraypenalties.tinker._data import check_batch
from arraypenalties.tinker._specs import RegularizerSpec, check_specs

__all__ = [
    "compute_grad_norm",
    "grad_norm_for_regularizer",
    "leaves",
    "norm",
    "scalar",
    "term_gradients",
    "total_grad_norm",
    "warn_failed",
]

Grads = list[torch.Tensor]


def leaves(logprobs_list: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Detached copies that require grad: the variables the norms are taken against."""
    return [logprobs.detach().requires_grad_(True) for logprobs in logprobs_list]


def scalar(result: object, what: str) -> tuple[torch.Tensor, Any]:
    """``(0-d tensor, metrics or None)`` from a term's return value."""
    metrics = None
    if isinstance(result, tuple):
        if len(result) != 2:
            msg = f"{what} must return a 0-d tensor or (loss, metrics); got a {len(result)}-tuple"
            raise InvalidValueError(msg)
        result, metrics = result
    if not isinstance(result, torch.Tensor):
        msg = f"{what} must return a 0-d torch tensor; got {type(result).__name__}"
        raise InvalidTypeError(msg)
    if result.ndim != 0:
        msg = (
            f"{what} must return a 0-d tensor (a scalar loss); got shape {tuple(result.shape)} "
            "(reduce it yourself: nothing is summed silently)"
        )
        raise InvalidValueError(msg)
    return result, metrics


def term_gradients(value: torch.Tensor, variables: Sequence[torch.Tensor]) -> Grads | None:
    """∂value/∂variables per datum (zeros for datums the term does not read), or None."""
    if not value.requires_grad or not value.is_floating_point():
        return None
    try:
        grads = torch.autograd.grad(value, list(variables), retain_graph=True, allow_unused=True)
    except RuntimeError:
        return None
    return [
        torch.zeros_like(var) if grad is None else grad
        for grad, var in zip(grads, variables, strict=True)
    ]


def norm(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """The 2-norm over every element of every datum's gradient, as a 0-d tensor."""
    squares = torch.stack([torch.sum(grad * grad) for grad in grads])
    return torch.sqrt(torch.sum(squares))


def warn_failed(names: Sequence[str]) -> None:
    if names:
        msg = (
            f"gradient norm of {', '.join(repr(n) for n in names)} failed: the value is not "
            "differentiable with respect to the log-probs (non-differentiable operations, or a "
            "graph cut by .item() / .detach()); its norm is reported as None"
        )
        warnings.warn(msg, GradientTrackingWarning, stacklevel=3)


def _float_norm(grads: Grads | None, name: str) -> float | None:
    if grads is None:
        warn_failed([name])
        return None
    return float(norm(grads))  # host transfer: the caller asked for a float


def compute_grad_norm(
    loss_fn: Callable[[Any], Any], logprobs: torch.Tensor | Sequence[torch.Tensor], /
) -> float | None:
    """‖∂loss_fn(logprobs)/∂logprobs‖₂, over every element of every datum.

    Parameters
    ----------
    loss_fn : callable
        Called with a tensor like ``logprobs`` (or a list like it); returns a
        0-d tensor or ``(loss, metrics)``.
    logprobs : tensor or list of tensors
        The point where the gradient is taken (a copy is differentiated).

    Returns
    -------
    float or None
        None, with a :class:`~arraypenalties.GradientTrackingWarning`, when
        ``loss_fn`` is not differentiable there.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import compute_grad_norm
    >>> round(compute_grad_norm(torch.sum, torch.tensor([1.0, 2.0, 3.0])) ** 2, 6)  # √3
    3.0
    """
    single = isinstance(logprobs, torch.Tensor)
    _, checked = check_batch(None, [logprobs] if single else logprobs)
    variables = leaves(checked)
    value, _ = scalar(loss_fn(variables[0] if single else variables), "`loss_fn`")
    return _float_norm(term_gradients(value, variables), "loss_fn")


def grad_norm_for_regularizer(
    spec: RegularizerSpec, data: Sequence[Any] | None, logprobs_list: Sequence[torch.Tensor], /
) -> float | None:
    """‖∂spec.fn(data, logprobs_list)/∂logprobs‖₂ (unweighted), or None when it fails.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import RegularizerSpec, grad_norm_for_regularizer
    >>> spec = RegularizerSpec(lambda data, lps: (lps[0] ** 2).sum(), weight=0.5, name="l2")
    >>> round(grad_norm_for_regularizer(spec, None, [torch.tensor([1.0, 2.0, 3.0])]) ** 2, 4)
    56.0
    """
    check_specs([spec])  # a RegularizerSpec, enabled or not
    data, checked = check_batch(data, logprobs_list)
    variables = leaves(checked)
    value, _ = scalar(spec.fn(data, variables), f"regularizer {spec.name!r}")
    return _float_norm(term_gradients(value, variables), spec.name)


def total_grad_norm(
    base_loss_fn: Callable[..., Any] | None,
    regularizers: Sequence[RegularizerSpec],
    data: Sequence[Any] | None,
    logprobs_list: Sequence[torch.Tensor],
    /,
) -> float | None:
    """‖∂(base + Σ wᵢ·regᵢ)/∂logprobs‖₂ by linearity of the per-term gradients.

    None (with a warning) when any term is not differentiable; 0.0 when there
    is no term at all.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import RegularizerSpec, total_grad_norm
    >>> base = lambda data, lps: lps[0].mean()
    >>> plus = [RegularizerSpec(lambda d, lps: lps[0].sum(), weight=1.0, name=n) for n in "ab"]
    >>> norm = total_grad_norm(base, plus, None, [torch.tensor([1.0, 2.0, 3.0])])
    >>> round(norm, 6) == round(7 / 3 * 3 ** 0.5, 6)
    True
    """
    specs = check_specs(regularizers)
    data, checked = check_batch(data, logprobs_list)
    variables = leaves(checked)
    terms: list[tuple[str, float, Callable[..., Any]]] = [
        (spec.name, spec.weight, spec.fn) for spec in specs
    ]
    if base_loss_fn is not None:
        terms.insert(0, ("base loss", 1.0, base_loss_fn))
    total = [torch.zeros_like(var) for var in variables]
    failed = []
    for name, weight, fn in terms:
        value, _ = scalar(fn(data, variables), f"{name!r}")
        grads = term_gradients(value, variables)
        if grads is None:
            failed.append(name)
            continue
        total = [acc + weight * grad for acc, grad in zip(total, grads, strict=True)]
    if failed:
        warn_failed(failed)
        return None
    return float(norm(total))
