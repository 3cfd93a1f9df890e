"""Apply an arraypenalties transform to the gradients of a ``torch.optim.Optimizer``.

:class:`TransformRunner` transforms ``p.grad`` of every parameter of an optimizer
when asked (the train step calls it); :func:`apply_transforms` registers one as a
step pre-hook and returns it as a removable :class:`TransformHook`.

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

from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type
from arraypenalties.transforms._base import (
    GradientTransformation,
    check_transform,
    overwrite_updates,
)
from arraypenalties.tree import flatten, unflatten

__all__ = ["TransformHook", "TransformRunner", "apply_transforms", "check_optimizer"]

NamedParameters = Mapping[str, Any] | Iterable[tuple[str, Any]]


def _optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    params: list[torch.Tensor] = []
    seen: set[int] = set()
    for group in optimizer.param_groups:
        for param in group["params"]:
            if id(param) not in seen:
                seen.add(id(param))
                params.append(param)
    return params


def _name_table(named_parameters: NamedParameters) -> dict[int, str]:
    pairs = named_parameters.items() if isinstance(named_parameters, Mapping) else named_parameters
    name_of: dict[int, str] = {}
    for pair in pairs:
        name, tensor = pair
        name_of.setdefault(id(tensor), name)  # tied weights: the first name wins
    return name_of


def _names(params: list[torch.Tensor], name_of: dict[int, str]) -> list[str]:
    """The name of every optimizer parameter, in optimizer order."""
    missing = sum(1 for param in params if id(param) not in name_of)
    if missing:
        msg = (
            f"`named_parameters` must name every parameter of the optimizer; {missing} of "
            f"{len(params)} have no name (pass model.named_parameters() of the model the "
            "optimizer was built from)"
        )
        raise InvalidValueError(msg)
    return [name_of[id(param)] for param in params]


def check_optimizer(optimizer: object) -> torch.optim.Optimizer:
    if not isinstance(optimizer, torch.optim.Optimizer):
        msg = f"`optimizer` must be a torch.optim.Optimizer; got {describe_type(optimizer)}"
        raise InvalidTypeError(msg)
    return optimizer


class TransformRunner:
    """A transform and its state over the parameters of one optimizer, applied on demand.

    :meth:`apply` transforms the current gradients. Parameter groups added to the
    optimizer later (``optimizer.add_param_group``, e.g. when unfreezing layers)
    are picked up at the next :meth:`apply`: their parameters join the tree (a
    global-norm clip then measures them too) and the state carries on when its
    structure does not depend on the parameters (true of every built-in
    transform); a transform whose state does depend on them raises
    :class:`~arraypenalties.InvalidValueError` instead of silently restarting.

    Attributes
    ----------
    state
        The transform's state, updated by every :meth:`apply`; read it for
        logging (``runner.state.norm`` for a global-norm clip); checkpoint it
        with :meth:`state_dict` / :meth:`load_state_dict`.
    names : list of str or None
        The parameter names (dict keys of the trees) when ``named_parameters``
        was given.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        tx: GradientTransformation,
        named_parameters: NamedParameters | None = None,
    ) -> None:
        self._optimizer = check_optimizer(optimizer)
        self._tx = check_transform(tx, "tx")
        self._name_of = None if named_parameters is None else _name_table(named_parameters)
        self._params = _optimizer_params(optimizer)
        self._layout = self._current_layout()
        self.names = None if self._name_of is None else _names(self._params, self._name_of)
        # the parameters themselves (transforms are pure and run under no_grad): a detached
        # view would go stale when `module.to()` swaps `param.data`
        self._param_tree = self._tree(list(self._params))
        self.state = self._tx.init(self._param_tree)

    def _current_layout(self) -> list[int]:
        return [id(param) for group in self._optimizer.param_groups for param in group["params"]]

    def _tree(self, leaves: list[torch.Tensor]) -> Any:
        if self.names is None:
            return leaves
        return dict(zip(self.names, leaves, strict=True))

    def _refresh(self) -> None:
        """Follow parameter groups added (or changed) since the last :meth:`apply`."""
        params = _optimizer_params(self._optimizer)
        names = None if self._name_of is None else _names(params, self._name_of)
        old_names, self.names = self.names, names
        param_tree = self._tree(list(params))
        fresh = self._tx.init(param_tree)
        if flatten(fresh)[1] != flatten(self.state)[1]:
            self.names = old_names
            msg = (
                "`optimizer` has new parameters (add_param_group) and the transform's "
                "state depends on the parameters, so it cannot carry on: call "
                "apply_transforms (or make_train_step) again after adding the group"
            )
            raise InvalidValueError(msg)
        self._params, self._param_tree = params, param_tree

    def apply(self) -> None:
        """Transform the current gradients now.

        Parameters whose ``grad`` is None enter the transform as zeros (so the
        tree keeps its structure and the state its meaning) and keep ``None``.
        """
        layout = self._current_layout()
        if layout != self._layout:
            self._refresh()
            self._layout = layout
        with torch.no_grad():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._params]
            # the grads are ours to replace: let the transforms write into them
            with overwrite_updates():
                new_tree, self.state = self._tx.update(
                    self._tree(grads), self.state, self._param_tree
                )
            # by name, not flatten order: dict leaves come out in sorted-key order
            new_grads = new_tree if self.names is None else [new_tree[n] for n in self.names]
            for param, new in zip(self._params, new_grads, strict=True):
                if param.grad is not None and new is not param.grad:
                    param.grad = new

    def state_dict(self) -> dict[str, Any]:
        """The transform state as plain data: ``{"leaves": [...], "names": [...] | None}``.

        The leaves are tensors and Python numbers only, so the result goes
        through ``torch.save`` / ``torch.load(weights_only=True)`` next to
        ``optimizer.state_dict()``. Tensors are cloned: later steps do not
        change a state dict already taken.
        """
        leaves, _ = flatten(self.state)
        copied = [
            leaf.detach().clone() if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves
        ]
        return {"leaves": copied, "names": None if self.names is None else list(self.names)}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state taken by :meth:`state_dict` of the same transform.

        Raises
        ------
        InvalidValueError
            ``state_dict`` is not such a mapping, holds a different number of
            state leaves, or other parameter names.
        """
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"leaves", "names"}:
            msg = (
                "`state_dict` must be a mapping with keys 'leaves' and 'names' (from "
                f"state_dict()); got {describe_type(state_dict)}"
            )
            raise InvalidValueError(msg)
        leaves, treedef = flatten(self.state)
        loaded = list(state_dict["leaves"])
        if len(loaded) != len(leaves):
            msg = (
                f"`state_dict` holds {len(loaded)} state leaves; this transform's state has "
                f"{len(leaves)} (was it taken from another transform?)"
            )
            raise InvalidValueError(msg)
        names = state_dict["names"]
        if names != (None if self.names is None else list(self.names)):
            msg = f"`state_dict` names parameters {names}; this optimizer's are {self.names}"
            raise InvalidValueError(msg)
        restored = []
        for old, new in zip(leaves, loaded, strict=True):
            if isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor):
                new = new.detach().to(device=old.device, dtype=old.dtype, copy=True)
            restored.append(new)
        self.state = unflatten(treedef, restored)


class TransformHook(TransformRunner):
    """The handle :func:`apply_transforms` returns: a :class:`TransformRunner` run by a hook.

    ``.remove()`` unregisters the step pre-hook (also a context manager);
    ``.state``, ``.names``, ``.apply()``, ``.state_dict()`` and
    ``.load_state_dict()`` are the runner's.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        tx: GradientTransformation,
        named_parameters: NamedParameters | None = None,
    ) -> None:
        super().__init__(optimizer, tx, named_parameters)
        self._handle = optimizer.register_step_pre_hook(self._before_step)

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


def apply_transforms(
    optimizer: torch.optim.Optimizer,
    tx: GradientTransformation,
    *,
    named_parameters: NamedParameters | None = None,
) -> TransformHook:
    """Transform ``p.grad`` of every parameter of ``optimizer`` before each ``step()``.

    Registers a step pre-hook (``optimizer.register_step_pre_hook``) that runs
    ``tx.update(grads, state, params)`` and writes the result back to ``p.grad``
    (in place where the transform allows it: no second set of gradient buffers).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Any optimizer; all its parameter groups are transformed together (a
        global-norm clip sees all of them), including groups added later with
        ``add_param_group`` (see :class:`TransformRunner`).
    tx : GradientTransformation
        The transform (often a :func:`~arraypenalties.transforms.chain`).
    named_parameters : mapping or iterable of (name, tensor), optional
        E.g. ``model.named_parameters()``. Given, the trees are dicts keyed by
        parameter name, so masks can be written by name
        (``lambda tree: {n: not n.endswith("bias") for n in tree}``); omitted,
        they are lists in optimizer order. Parameters of groups added later
        must be named here too.

    Returns
    -------
    TransformHook
        ``.remove()`` unregisters the hook (also a context manager); ``.state``
        holds the transform state; ``.apply()`` transforms the gradients now;
        ``.state_dict()`` / ``.load_state_dict()`` checkpoint the state.

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
    >>> checkpoint = {"optimizer": optimizer.state_dict(), "transforms": hook.state_dict()}
    >>> hook.load_state_dict(checkpoint["transforms"])
    >>> hook.remove()
    """
    return TransformHook(optimizer, tx, named_parameters)
