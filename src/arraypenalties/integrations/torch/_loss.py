"""Penalised losses: ``wrap_loss``, ``wrap_loss_with_pipeline``, ``parameter_penalty``."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from arraypenalties._lib.checks import check_callable, check_int
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type
from arraypenalties.integrations.torch._common import (
    check_opts,
    check_penalty,
    check_weight,
    inner_module,
)
from arraypenalties.pipelines import Pipeline

__all__ = [
    "ParameterTerm",
    "parameter_penalty",
    "parameter_term",
    "select_parameters",
    "wrap_loss",
    "wrap_loss_with_pipeline",
]

NameFilter = str | re.Pattern[str] | Callable[[str], bool]


def _argument(args: tuple[Any, ...], argnum: int) -> Any:
    if argnum >= len(args):
        msg = (
            f"`argnum` is {argnum} but the loss was called with {len(args)} positional "
            "argument(s); pass the penalised array positionally"
        )
        raise InvalidValueError(msg)
    return args[argnum]


def wrap_loss(
    loss_fn: Callable[..., Any],
    penalty: Callable[..., Any] | str,
    *,
    weight: float = 1.0,
    argnum: int = 0,
    opts: Mapping[str, Any] | None = None,
) -> Callable[..., Any]:
    """``loss_fn`` plus ``weight · penalty(args[argnum], **opts)``, with ``loss_fn``'s signature.

    Parameters
    ----------
    loss_fn : callable
        E.g. ``torch.nn.functional.cross_entropy`` or a ``torch.nn.Module`` loss.
    penalty : callable or str
        ``penalty(x, **opts) -> 0-d tensor``, or a one-input built-in name
        (``"l1"``, ``"l2"``, ``"elastic_net"``, ``"entropy"``, ...).
    weight : float, default 1.0
    argnum : int, default 0
        Which positional argument is penalised (0: the predictions).
    opts : mapping, optional
        Keyword options of the penalty.

    Returns
    -------
    callable
        ``wrapped(*args, **kwargs) = loss_fn(*args, **kwargs) + weight · penalty(args[argnum])``.

    Raises
    ------
    InvalidTypeError, UnknownNameError
        ``loss_fn`` is not callable, ``penalty`` neither callable nor a built-in name.
    InvalidValueError
        At call time: fewer than ``argnum + 1`` positional arguments.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.integrations.torch import wrap_loss
    >>> mse = torch.nn.functional.mse_loss
    >>> loss = wrap_loss(mse, "l1", weight=0.1)
    >>> loss(torch.tensor([1.0, -2.0]), torch.tensor([1.0, -2.0]))  # 0 + 0.1 · 3
    tensor(0.3000)
    """
    check_callable(loss_fn, "loss_fn")
    fn = check_penalty(penalty, "penalty")
    scale = check_weight(weight, "weight")
    index = check_int(argnum, "argnum", low=0)
    kwargs = check_opts(opts, "opts")

    @functools.wraps(loss_fn)
    def wrapped(*args: Any, **loss_kwargs: Any) -> Any:
        return loss_fn(*args, **loss_kwargs) + scale * fn(_argument(args, index), **kwargs)

    return wrapped


def wrap_loss_with_pipeline(
    loss_fn: Callable[..., Any], pipeline: object, *, argnum: int = 0
) -> Callable[..., Any]:
    """``loss_fn`` plus ``pipeline.compute_total(args[argnum])`` (no host transfer).

    Examples
    --------
    >>> import torch
    >>> from arraypenalties import Pipeline
    >>> from arraypenalties.integrations.torch import wrap_loss_with_pipeline
    >>> penalties = Pipeline().add("l1", "l1", weight=0.1).add("l2", "l2", weight=0.01)
    >>> loss = wrap_loss_with_pipeline(torch.nn.functional.mse_loss, penalties)
    >>> loss(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))  # 0.1 · 3 + 0.01 · 5
    tensor(0.3500)
    """
    check_callable(loss_fn, "loss_fn")
    if not isinstance(pipeline, Pipeline):
        msg = f"`pipeline` must be an arraypenalties.Pipeline; got {describe_type(pipeline)}"
        raise InvalidTypeError(msg)
    index = check_int(argnum, "argnum", low=0)

    @functools.wraps(loss_fn)
    def wrapped(*args: Any, **loss_kwargs: Any) -> Any:
        return loss_fn(*args, **loss_kwargs) + pipeline.compute_total(_argument(args, index))

    return wrapped


def _matcher(value: object, name: str) -> Callable[[str], bool] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = re.compile(value)
        except re.error as error:
            msg = f"`{name}` must be a valid regular expression; got {value!r} ({error})"
            raise InvalidValueError(msg) from None
    if isinstance(value, re.Pattern):
        pattern = value
        return lambda parameter: pattern.search(parameter) is not None
    if callable(value):
        return value
    msg = (
        f"`{name}` must be a regular expression (str or re.Pattern), a function of the "
        f"parameter name, or None; got {describe_type(value)}"
    )
    raise InvalidTypeError(msg)


def _named_pairs(source: object) -> list[tuple[str, torch.Tensor]]:
    if isinstance(source, torch.nn.Module):
        return list(inner_module(source, "module_or_named_parameters").named_parameters())
    if isinstance(source, Mapping):
        pairs = list(source.items())
    elif isinstance(source, Iterable) and not isinstance(source, (str, bytes, torch.Tensor)):
        pairs = list(source)
    else:
        pairs = None
    if pairs is None or not all(
        isinstance(pair, tuple)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and isinstance(pair[1], torch.Tensor)
        for pair in pairs
    ):
        msg = (
            "`module_or_named_parameters` must be a torch.nn.Module, a mapping of names to "
            "tensors or an iterable of (name, tensor) pairs such as model.named_parameters(); "
            f"got {describe_type(source)}"
        )
        raise InvalidTypeError(msg)
    return pairs


def select_parameters(
    module_or_named_parameters: object,
    *,
    include: NameFilter | None = None,
    exclude: NameFilter | None = None,
) -> list[tuple[str, torch.Tensor]]:
    """The ``(name, parameter)`` pairs that match ``include`` (default: all) and not ``exclude``.

    Raises
    ------
    InvalidValueError
        Nothing is selected (a mistyped expression is never a silent zero penalty).

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.integrations.torch import select_parameters
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    >>> [name for name, _ in select_parameters(model, exclude=r"bias$|^1\\.")]
    ['0.weight']
    """
    pairs = _named_pairs(module_or_named_parameters)
    keep, drop = _matcher(include, "include"), _matcher(exclude, "exclude")
    selected = [
        (name, param)
        for name, param in pairs
        if (keep is None or keep(name)) and not (drop is not None and drop(name))
    ]
    if not selected:
        shown = ", ".join(repr(name) for name, _ in pairs[:8]) + (", ..." if len(pairs) > 8 else "")
        msg = (
            f"`include` {include!r} / `exclude` {exclude!r} select no parameter; the "
            f"parameters are {shown or 'none'}"
        )
        raise InvalidValueError(msg)
    return selected


@dataclass(frozen=True)
class ParameterTerm:
    """A parameter penalty with its parameters chosen once: ``term.raw()`` is Σ penalty(p)."""

    params: tuple[torch.Tensor, ...]
    fn: Callable[..., Any]
    weight: float
    opts: Mapping[str, Any]

    def raw(self) -> torch.Tensor:
        """``Σ penalty(p, **opts)`` over the parameters (unweighted), one 0-d tensor."""
        values: list[torch.Tensor] = [self.fn(param, **self.opts) for param in self.params]
        if len(values) > 1 and len({value.dtype for value in values}) == 1:
            return torch.stack(values).sum()  # one kernel instead of a chain of additions
        total = values[0]
        for value in values[1:]:
            total = total + value
        return total


def parameter_term(
    module_or_named_parameters: object,
    penalty: Callable[..., Any] | str,
    *,
    weight: float = 1.0,
    include: NameFilter | None = None,
    exclude: NameFilter | None = None,
    opts: Mapping[str, Any] | None = None,
) -> ParameterTerm:
    """The checked :class:`ParameterTerm` of :func:`parameter_penalty`'s arguments."""
    fn = check_penalty(penalty, "penalty")
    scale = check_weight(weight, "weight")
    kwargs = check_opts(opts, "opts")
    pairs = select_parameters(module_or_named_parameters, include=include, exclude=exclude)
    return ParameterTerm(tuple(param for _, param in pairs), fn, scale, kwargs)


def parameter_penalty(
    module_or_named_parameters: object,
    penalty: Callable[..., Any] | str,
    *,
    weight: float = 1.0,
    include: NameFilter | None = None,
    exclude: NameFilter | None = None,
    opts: Mapping[str, Any] | None = None,
) -> torch.Tensor:
    """``weight · Σ penalty(p, **opts)`` over the selected parameters of a model.

    Parameters
    ----------
    module_or_named_parameters : torch.nn.Module, mapping or iterable of (name, tensor)
        A model (its ``named_parameters()``; a ``DistributedDataParallel`` or
        ``torch.compile`` wrapper is looked through, so names are the model's
        own), a ``{name: tensor}`` mapping or ``model.named_parameters()``.
    penalty : callable or str
        ``penalty(p, **opts) -> 0-d tensor`` or a one-input built-in name.
    weight : float, default 1.0
    include, exclude : str, re.Pattern or callable, optional
        A parameter is used when its name matches ``include`` (``re.search``;
        default: every parameter) and does not match ``exclude``. Typical:
        ``exclude=r"bias$|norm"`` skips biases and normalisation layers.
        A callable receives the name and returns a bool.
    opts : mapping, optional
        Keyword options of the penalty.

    Returns
    -------
    torch.Tensor
        A differentiable 0-d tensor. Selection is by name only: frozen
        parameters (``requires_grad=False``) that match are counted too.

    Raises
    ------
    InvalidValueError
        No parameter is selected, or ``include`` / ``exclude`` is not a valid
        regular expression.
    InvalidTypeError, UnknownNameError
        Bad ``module_or_named_parameters``, ``penalty``, ``opts``.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.integrations.torch import parameter_penalty
    >>> model = torch.nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    >>> parameter_penalty(model, "l2", weight=0.5, exclude="bias")  # 0.5 · (1 + 4)
    tensor(2.5000, grad_fn=<MulBackward0>)
    """
    term = parameter_term(
        module_or_named_parameters,
        penalty,
        weight=weight,
        include=include,
        exclude=exclude,
        opts=opts,
    )
    return term.weight * term.raw()
