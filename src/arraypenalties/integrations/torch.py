"""Apply an arraypenalties transform inside any ``torch.optim.Optimizer`` (imports torch).

Examples
--------
>>> import torch
>>> from arraypenalties.integrations.torch import apply_transforms
>>> from arraypenalties.transforms import clip_by_global_norm
>>> model = torch.nn.Linear(2, 1)
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
>>> hook = apply_transforms(optimizer, clip_by_global_norm(max_norm=1.0))
>>> model(torch.ones(1, 2)).sum().backward()
>>> optimizer.step()  # gradients are clipped first
>>> hook.remove()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from arraypenalties._errors import InvalidTypeError, InvalidValueError
from arraypenalties._xp import describe_type
from arraypenalties.transforms._base import (
    GradientTransformation,
    check_transform,
    overwrite_updates,
)

__all__ = ["TransformHook", "apply_transforms"]


def _optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    params: list[torch.Tensor] = []
    seen: set[int] = set()
    for group in optimizer.param_groups:
        for param in group["params"]:
            if id(param) not in seen:
                seen.add(id(param))
                params.append(param)
    return params


def _named(
    params: list[torch.Tensor], named_parameters: Mapping[str, Any] | Iterable[tuple[str, Any]]
) -> list[str]:
    """The name of every optimizer parameter, in optimizer order."""
    pairs = named_parameters.items() if isinstance(named_parameters, Mapping) else named_parameters
    name_of: dict[int, str] = {}
    for pair in pairs:
        name, tensor = pair
        name_of.setdefault(id(tensor), name)  # tied weights: the first name wins
    missing = sum(1 for param in params if id(param) not in name_of)
    if missing:
        msg = (
            f"`named_parameters` must name every parameter of the optimizer; {missing} of "
            f"{len(params)} have no name (pass model.named_parameters() of the model the "
            "optimizer was built from)"
        )
        raise InvalidValueError(msg)
    return [name_of[id(param)] for param in params]


class TransformHook:
    """The handle :func:`apply_transforms` returns.

    Attributes
    ----------
    state
        The transform's state, updated on every ``optimizer.step()``; read it
        for logging (``hook.state.norm`` for a global-norm clip) or save and
        assign it to checkpoint.
    names : list of str or None
        The parameter names (dict keys of the trees) when ``named_parameters``
        was given.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        tx: GradientTransformation,
        names: list[str] | None,
    ) -> None:
        self._tx = tx
        self._params = _optimizer_params(optimizer)
        self.names = names
        self.state = tx.init(self._tree([param.detach() for param in self._params]))
        self._handle = optimizer.register_step_pre_hook(self._before_step)

    def _tree(self, leaves: list[torch.Tensor]) -> Any:
        if self.names is None:
            return leaves
        return dict(zip(self.names, leaves, strict=True))

    def apply(self) -> None:
        """Transform the current gradients now (what the step pre-hook does).

        Parameters whose ``grad`` is None enter the transform as zeros (so the
        tree keeps its structure and the state its meaning) and keep ``None``.
        """
        with torch.no_grad():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._params]
            params = [p.detach() for p in self._params]
            # the grads are ours to replace: let the transforms write into them
            with overwrite_updates():
                new_tree, self.state = self._tx.update(
                    self._tree(grads), self.state, self._tree(params)
                )
            # by name, not flatten order: dict leaves come out in sorted-key order
            new_grads = new_tree if self.names is None else [new_tree[n] for n in self.names]
            for param, new in zip(self._params, new_grads, strict=True):
                if param.grad is not None and new is not param.grad:
                    param.grad = new

    def _before_step(self, optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # torch passes the step's own arguments, `self` first: (optimizer, closure?)
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        if closure is not None:
            msg = (
                "`apply_transforms` cannot transform gradients that `optimizer.step(closure)` "
                "computes inside the step (after this pre-hook); call hook.apply() in the "
                "closure after backward() instead, and remove the hook"
            )
            raise InvalidValueError(msg)
        self.apply()

    def remove(self) -> None:
        """Stop transforming gradients: ``optimizer.step()`` is plain again."""
        self._handle.remove()

    def __enter__(self) -> TransformHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


def _check_optimizer(optimizer: object) -> None:
    if not isinstance(optimizer, torch.optim.Optimizer):
        msg = f"`optimizer` must be a torch.optim.Optimizer; got {describe_type(optimizer)}"
        raise InvalidTypeError(msg)


def apply_transforms(
    optimizer: torch.optim.Optimizer,
    tx: GradientTransformation,
    *,
    named_parameters: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
) -> TransformHook:
    """Transform ``p.grad`` of every parameter of ``optimizer`` before each ``step()``.

    Registers a step pre-hook (``optimizer.register_step_pre_hook``) that runs
    ``tx.update(grads, state, params)`` and writes the result back to ``p.grad``
    (in place where the transform allows it: no second set of gradient buffers).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Any optimizer; all its parameter groups are transformed together (a
        global-norm clip sees all of them).
    tx : GradientTransformation
        The transform (often a :func:`~arraypenalties.transforms.chain`).
    named_parameters : mapping or iterable of (name, tensor), optional
        E.g. ``model.named_parameters()``. Given, the trees are dicts keyed by
        parameter name, so masks can be written by name
        (``lambda tree: {n: not n.endswith("bias") for n in tree}``); omitted,
        they are lists in optimizer order.

    Returns
    -------
    TransformHook
        ``.remove()`` unregisters the hook (also a context manager); ``.state``
        holds the transform state; ``.apply()`` transforms the gradients now.

    Raises
    ------
    InvalidTypeError
        ``optimizer`` is not a ``torch.optim.Optimizer`` or ``tx`` not a transform.
    InvalidValueError
        ``named_parameters`` misses a parameter of the optimizer; at step time:
        ``step(closure)`` (the closure recomputes gradients after the hook).

    Notes
    -----
    Decay placement: the hook runs before the optimizer, so a decay transform
    here is coupled (L2-style) regularisation for adaptive optimizers such as
    Adam; use ``torch.optim.AdamW``'s own ``weight_decay`` for decoupled decay.
    With AMP's ``GradScaler``, ``scaler.step(optimizer)`` unscales the
    gradients before ``optimizer.step()``, so the hook sees true gradients.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.integrations.torch import apply_transforms
    >>> from arraypenalties.transforms import add_l2_decay, masked
    >>> model = torch.nn.Linear(2, 1)
    >>> no_bias = lambda tree: {name: name != "bias" for name in tree}
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> hook = apply_transforms(
    ...     optimizer, masked(add_l2_decay(decay=0.1), no_bias),
    ...     named_parameters=model.named_parameters(),
    ... )
    >>> hook.names
    ['weight', 'bias']
    >>> hook.remove()
    """
    _check_optimizer(optimizer)
    transform = check_transform(tx, "tx")
    names = None
    if named_parameters is not None:
        names = _named(_optimizer_params(optimizer), named_parameters)
    return TransformHook(optimizer, transform, names)
