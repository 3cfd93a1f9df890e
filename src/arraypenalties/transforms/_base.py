"""The transform type, ``chain``, ``masked`` and the checks every ``update`` starts with."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NamedTuple

from arraypenalties._lib.checks import is_real_floating
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type, get_xp
from arraypenalties.transforms._tree import (
    TreeDef,
    check_same_structure,
    flatten,
    leaf_paths,
    unflatten,
)

_NUMPY_NAMESPACES = frozenset({"numpy", "array_api_compat.numpy"})

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "MaskedState",
    "Prepared",
    "as_array",
    "chain",
    "check_transform",
    "masked",
    "namespace_of",
    "overwrite_updates",
    "prepare",
]


class GradientTransformation(NamedTuple):
    """A pair of pure functions ``(init, update)`` transforming gradients, as in optax.

    ``state = init(params)`` builds the initial state from the parameters;
    ``new_updates, new_state = update(updates, state, params=None)`` transforms a
    tree of updates (gradients). Neither function mutates its arguments. States
    are NamedTuples of arrays and ints (plain data: pickle them to checkpoint).

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import clip_by_global_norm
    >>> tx = clip_by_global_norm(max_norm=1.0)
    >>> grads = {"w": np.asarray([3.0, 4.0])}
    >>> state = tx.init(grads)
    >>> new_grads, state = tx.update(grads, state)
    >>> new_grads["w"]
    array([0.6, 0.8])
    """

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


class EmptyState(NamedTuple):
    """The state of a stateless transform."""


class MaskedState(NamedTuple):
    """State of :func:`masked`: the inner transform's state (over the selected leaves)."""

    inner_state: Any


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare` found: leaves, structure and namespace of one ``update`` call."""

    leaves: list[Any]
    param_leaves: list[Any] | None
    treedef: TreeDef
    xp: Any  # None for a tree without leaves
    inplace: bool = False  # inside overwrite_updates(): results may reuse the update arrays

    def scale(self, g: Any, factor: Any) -> Any:
        """``g · factor`` (written into ``g`` inside :func:`overwrite_updates`)."""
        if self.inplace:
            g *= factor
            return g
        return g * factor

    def add(self, g: Any, term: Any) -> Any:
        """``g + term`` (written into ``g`` inside :func:`overwrite_updates`)."""
        if self.inplace:
            g += term
            return g
        return g + term

    def rebuild(self, new_leaves: list[Any]) -> Any:
        """The updates tree with ``new_leaves`` in place of the old ones.

        numpy turns arithmetic on 0-d arrays into numpy scalars; those leaves are
        wrapped back into 0-d arrays (transforms never return numpy scalars).
        """
        if self.xp is not None and self.xp.__name__ in _NUMPY_NAMESPACES:
            new_leaves = [as_array(leaf, self.xp) for leaf in new_leaves]
        return unflatten(self.treedef, new_leaves)


_OVERWRITE: ContextVar[bool] = ContextVar("arraypenalties_overwrite_updates", default=False)


@contextmanager
def overwrite_updates() -> Iterator[None]:
    """Let the built-in transforms write their results into the ``updates`` arrays.

    For adapters that own the update buffers and replace them anyway (the torch
    adapter's ``p.grad``): in-place arithmetic avoids allocating a second set of
    gradient-sized arrays every step, which on the CPU costs more than the
    arithmetic itself (fresh pages are faulted in and zeroed by the kernel).
    Namespaces with immutable arrays (jax) fall back to new arrays by Python's
    rules for augmented assignment. Only inside this block may the inputs change;
    everywhere else every transform is pure.
    """
    token = _OVERWRITE.set(True)
    try:
        yield
    finally:
        _OVERWRITE.reset(token)


def as_array(value: Any, xp: Any) -> Any:
    """``value`` itself, or a 0-d array where numpy made a numpy scalar of it."""
    if xp.__name__ in _NUMPY_NAMESPACES:
        return sys.modules["numpy"].asarray(value)  # numpy's own: no compat wrapper cost
    return value


def _namespace(leaves: list[Any], param_leaves: list[Any], treedef: TreeDef) -> Any:
    try:
        return get_xp(*leaves, *param_leaves)
    except InvalidTypeError:  # again, with the leaf paths in the message
        paths = leaf_paths(treedef)
        names = [f"updates{path}" for path in paths] + [f"params{path}" for path in paths]
        return get_xp(*leaves, *param_leaves, names=names)


def namespace_of(leaves: list[Any], treedef: TreeDef, name: str) -> Any:
    """The namespace of a tree's leaves; errors name the leaf as ``name[path]``."""
    try:
        return get_xp(*leaves)
    except InvalidTypeError:
        return get_xp(*leaves, names=[f"{name}{path}" for path in leaf_paths(treedef)])


def _check_floating(leaves: list[Any], treedef: TreeDef, xp: Any, name: str) -> None:
    for index, leaf in enumerate(leaves):
        if not is_real_floating(leaf.dtype, xp):
            path = leaf_paths(treedef)[index]
            msg = f"`{name}{path}` must have a real floating dtype; got {leaf.dtype}"
            raise InvalidTypeError(msg)


def _check_shapes(leaves: list[Any], param_leaves: list[Any], treedef: TreeDef) -> None:
    for index, (g, w) in enumerate(zip(leaves, param_leaves, strict=True)):
        g_shape, w_shape = getattr(g, "shape", None), getattr(w, "shape", None)
        if g_shape is not None and w_shape is not None and tuple(g_shape) != tuple(w_shape):
            path = leaf_paths(treedef)[index]
            msg = (
                f"`updates{path}` and `params{path}` must have the same shape; got "
                f"{tuple(g_shape)} and {tuple(w_shape)}"
            )
            raise InvalidValueError(msg)


def prepare(updates: Any, params: Any, *, transform: str, needs_params: bool) -> Prepared:
    """Flatten ``updates`` (and ``params``), check them and find their namespace.

    Raises
    ------
    InvalidValueError
        ``params`` is None but the transform needs it, or the two trees differ
        in structure (the message shows both).
    InvalidTypeError
        A leaf is not an array, the leaves come from different namespaces, or a
        leaf is not real floating (integer gradients are never cast silently).
    """
    leaves, treedef = flatten(updates)
    param_leaves: list[Any] | None = None
    if params is None:
        if needs_params:
            msg = (
                f"`params` is required by {transform}: call `update(updates, state, params)` "
                "with the current parameters (a tree of the same structure as `updates`)"
            )
            raise InvalidValueError(msg)
    else:
        param_leaves, param_def = flatten(params)
        check_same_structure(treedef, param_def)
        _check_shapes(leaves, param_leaves, treedef)
    if not leaves:
        return Prepared(leaves, param_leaves, treedef, None, False)
    xp = _namespace(leaves, param_leaves or [], treedef)
    _check_floating(leaves, treedef, xp, "updates")
    if needs_params and param_leaves is not None:
        _check_floating(param_leaves, treedef, xp, "params")
    return Prepared(leaves, param_leaves, treedef, xp, _OVERWRITE.get())


def check_transform(value: object, name: str) -> GradientTransformation:
    if isinstance(value, GradientTransformation):
        return value
    init, update = getattr(value, "init", None), getattr(value, "update", None)
    if callable(init) and callable(update):  # optax's own, or another (init, update) pair
        return GradientTransformation(init, update)
    msg = f"`{name}` must be a GradientTransformation (init, update); got {describe_type(value)}"
    raise InvalidTypeError(msg)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply ``transforms`` one after the other, in reading order.

    ``chain(a, b)`` applies ``a`` first, then ``b`` to ``a``'s output (as
    ``optax.chain``; the original library composed in reverse). The state is a
    tuple of the inner states, in the same order. ``chain()`` is the identity.

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
        An argument is not an ``(init, update)`` pair.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import add_l2_decay, chain, clip_by_global_norm
    >>> params = {"w": np.asarray([3.0, 4.0])}
    >>> grads = {"w": np.asarray([0.0, 0.0])}
    >>> tx = chain(add_l2_decay(decay=1.0), clip_by_global_norm(max_norm=1.0))
    >>> new_grads, state = tx.update(grads, tx.init(params), params)
    >>> new_grads["w"]  # decay first (g + w = [3, 4]), then clipped to norm 1
    array([0.6, 0.8])
    """
    checked = tuple(check_transform(t, f"transforms[{i}]") for i, t in enumerate(transforms))

    def init(params: Any) -> tuple[Any, ...]:
        return tuple(transform.init(params) for transform in checked)

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, tuple[Any, ...]]:
        if len(state) != len(checked):
            msg = f"`state` must hold {len(checked)} inner states for this chain; got {len(state)}"
            raise InvalidValueError(msg)
        new_states = []
        for transform, inner_state in zip(checked, state, strict=True):
            updates, new_state = transform.update(updates, inner_state, params)
            new_states.append(new_state)
        return updates, tuple(new_states)

    return GradientTransformation(init, update)


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
        at structure, names and shapes, which the two share.

    Returns
    -------
    GradientTransformation
        Its state is a :class:`MaskedState` holding the inner state.

    Raises
    ------
    InvalidValueError
        The mask's structure differs from the updates' (both are shown).
    InvalidTypeError
        A mask leaf is not a Python bool.

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
    >>> no_bias = lambda tree: {name: name != "bias" for name in tree}
    >>> tx = masked(add_l2_decay(decay=0.5), no_bias)
    >>> new_grads, _ = tx.update(grads, tx.init(params), params)
    >>> new_grads["bias"], new_grads["weight"]
    (array([0.]), array([1.]))
    """
    inner = check_transform(transform, "transform")
    if not (callable(mask) or isinstance(mask, (dict, list, tuple, bool))):
        msg = f"`mask` must be a tree of bools or a callable; got {describe_type(mask)}"
        raise InvalidTypeError(msg)

    def init(params: Any) -> MaskedState:
        leaves, treedef = flatten(params)
        selected = _mask_leaves(mask, params, treedef)
        return MaskedState(
            inner.init([leaf for leaf, keep in zip(leaves, selected, strict=True) if keep])
        )

    def update(updates: Any, state: MaskedState, params: Any = None) -> tuple[Any, MaskedState]:
        prepared = prepare(updates, params, transform="masked", needs_params=False)
        leaves, treedef = prepared.leaves, prepared.treedef
        selected = _mask_leaves(mask, updates, treedef)
        inner_params = None
        if prepared.param_leaves is not None:
            pairs = zip(prepared.param_leaves, selected, strict=True)
            inner_params = [p for p, keep in pairs if keep]
        chosen = [leaf for leaf, keep in zip(leaves, selected, strict=True) if keep]
        new_chosen, inner_state = inner.update(chosen, state.inner_state, inner_params)
        replaced = iter(new_chosen)
        new_leaves = [
            next(replaced) if keep else leaf for leaf, keep in zip(leaves, selected, strict=True)
        ]
        return unflatten(treedef, new_leaves), MaskedState(inner_state)

    return GradientTransformation(init, update)
