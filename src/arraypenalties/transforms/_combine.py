"""Combining transforms: ``chain`` (one after the other) and ``masked`` (some leaves only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type
from arraypenalties.transforms._base import (
    GradientTransformation,
    check_state,
    check_transform,
    describe_state,
    prepare,
)
from arraypenalties.tree import (
    TreeDef,
    check_same_structure,
    flatten,
    leaf_paths,
    unflatten,
)

__all__ = ["MaskedState", "chain", "masked"]


class MaskedState(NamedTuple):
    """State of :func:`masked`: the inner transform's state (over the selected leaves)."""

    inner_state: Any


@dataclass(frozen=True)
class _Chain:
    """``init`` / ``update`` of :func:`chain` (a module-level class, so it pickles)."""

    transforms: tuple[GradientTransformation, ...]

    def init(self, params: Any) -> tuple[Any, ...]:
        return tuple(transform.init(params) for transform in self.transforms)

    def update(self, updates: Any, state: Any, params: Any = None) -> tuple[Any, tuple[Any, ...]]:
        count = len(self.transforms)
        if not isinstance(state, (tuple, list)) or hasattr(state, "_fields"):
            msg = (
                f"`state` must be the tuple of {count} inner states that this chain's `init` "
                f"returns; got {describe_state(state)}"
            )
            raise InvalidTypeError(msg)
        if len(state) != count:
            msg = f"`state` must hold {count} inner states for this chain; got {len(state)}"
            raise InvalidValueError(msg)
        new_states = []
        for transform, inner_state in zip(self.transforms, state, strict=True):
            updates, new_state = transform.update(updates, inner_state, params)
            new_states.append(new_state)
        return updates, tuple(new_states)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply ``transforms`` one after the other, in reading order.

    ``chain(a, b)`` applies ``a`` first, then ``b`` to ``a``'s output (as
    ``optax.chain``; NxPenalties, the Elixir library this ports, composed in
    reverse). The state is a tuple of the inner states, in the same order.
    ``chain()`` is the identity.

    Parameters
    ----------
    *transforms : GradientTransformation
        The transforms, first applied first.

    Returns
    -------
    GradientTransformation

    Raises
    ------
    InvalidTypeError
        An argument is not an ``(init, update)`` pair; at update: ``state`` is
        not a tuple.
    InvalidValueError
        At update: ``state`` holds a different number of inner states.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import add_l2_decay, chain, clip_by_global_norm
    >>> params = {"w": np.asarray([3.0, 4.0])}
    >>> grads = {"w": np.asarray([0.0, 0.0])}
    >>> tx = chain(add_l2_decay(1.0), clip_by_global_norm(1.0))
    >>> new_grads, state = tx.update(grads, tx.init(params), params)
    >>> new_grads["w"]  # decay first (g + w = [3, 4]), then clipped to norm 1
    array([0.6, 0.8])
    """
    checked = tuple(check_transform(t, f"transforms[{i}]") for i, t in enumerate(transforms))
    combined = _Chain(checked)
    return GradientTransformation(combined.init, combined.update)


def _mask_leaves(mask: Any, tree: Any, treedef: TreeDef) -> list[bool]:
    mask_tree = mask(tree) if callable(mask) else mask
    mask_leaves, mask_def = flatten(mask_tree)
    check_same_structure(treedef, mask_def, ("updates", "mask"))
    for index, value in enumerate(mask_leaves):
        if not isinstance(value, bool):
            path = leaf_paths(mask_def)[index]
            msg = (
                f"`mask{path}` must be a Python bool (True: transform this leaf); got "
                f"{describe_type(value)}"
            )
            raise InvalidTypeError(msg)
    return mask_leaves


@dataclass(frozen=True)
class _Masked:
    """``init`` / ``update`` of :func:`masked`."""

    inner: GradientTransformation
    mask: Any

    def init(self, params: Any) -> MaskedState:
        leaves, treedef = flatten(params)
        selected = _mask_leaves(self.mask, params, treedef)
        return MaskedState(
            self.inner.init([leaf for leaf, keep in zip(leaves, selected, strict=True) if keep])
        )

    def update(self, updates: Any, state: Any, params: Any = None) -> tuple[Any, MaskedState]:
        check_state(state, MaskedState, "masked")
        prepared = prepare(updates, params, transform="masked", needs_params=False)
        leaves, treedef = prepared.leaves, prepared.treedef
        selected = _mask_leaves(self.mask, updates, treedef)
        inner_params = None
        if prepared.param_leaves is not None:
            pairs = zip(prepared.param_leaves, selected, strict=True)
            inner_params = [p for p, keep in pairs if keep]
        chosen = [leaf for leaf, keep in zip(leaves, selected, strict=True) if keep]
        new_chosen, inner_state = self.inner.update(chosen, state.inner_state, inner_params)
        replaced = iter(new_chosen)
        new_leaves = [
            next(replaced) if keep else leaf for leaf, keep in zip(leaves, selected, strict=True)
        ]
        return unflatten(treedef, new_leaves), MaskedState(inner_state)


def masked(transform: GradientTransformation, mask: Any) -> GradientTransformation:
    """Apply ``transform`` only to the leaves where ``mask`` is True; pass the others through.

    Typical use: weight decay on weights but not on biases and normalisation
    parameters. Follows ``optax.masked``.

    Parameters
    ----------
    transform : GradientTransformation
        The inner transform.
    mask : tree of bool, or callable
        A tree of Python bools with the structure of the updates, or a function
        returning one. The function is called with ``params`` in ``init`` and
        with ``updates`` in ``update`` (as optax does), so it should look only
        at structure, names and shapes, which the two share. The transform
        pickles when the mask does: a tree of bools or a module-level function,
        not a lambda (``copy.deepcopy`` works with any mask).

    Returns
    -------
    GradientTransformation
        Its state is a :class:`MaskedState` holding the inner state.

    Raises
    ------
    InvalidValueError
        The mask's structure differs from the updates' (both are shown).
    InvalidTypeError
        A mask leaf is not a Python bool; at update: ``state`` is not a
        :class:`MaskedState`.

    Notes
    -----
    The inner transform sees the selected leaves as a flat list in tree order
    (and the matching parameters), so a global-norm clip inside ``masked``
    measures the norm of the selected leaves only.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import add_l2_decay, masked
    >>> params = {"bias": np.asarray([1.0]), "weight": np.asarray([2.0])}
    >>> grads = {"bias": np.asarray([0.0]), "weight": np.asarray([0.0])}
    >>> tx = masked(add_l2_decay(0.5), {"bias": False, "weight": True})
    >>> new_grads, _ = tx.update(grads, tx.init(params), params)
    >>> new_grads["bias"], new_grads["weight"]
    (array([0.]), array([1.]))
    """
    inner = check_transform(transform, "transform")
    if not (callable(mask) or isinstance(mask, (dict, list, tuple, bool))):
        msg = f"`mask` must be a tree of bools or a callable; got {describe_type(mask)}"
        raise InvalidTypeError(msg)
    combined = _Masked(inner, mask)
    return GradientTransformation(combined.init, combined.update)
