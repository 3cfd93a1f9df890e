"""The transform type, the stateless helper and the checks every ``update`` starts with.

Every transform is built from module-level callables (classes with ``init`` /
``update`` methods, or :func:`stateless` over a module-level function object),
never local closures, so transforms pickle and ``copy.deepcopy`` like their states.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from arraypenalties._lib.checks import check_callable, is_real_floating
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type, get_xp
from arraypenalties.backends import get_backend, primitives
from arraypenalties.tree import (
    TreeDef,
    check_same_structure,
    flatten,
    leaf_paths,
    unflatten,
)

S = TypeVar("S")

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "Prepared",
    "as_array",
    "check_state",
    "check_transform",
    "init_empty_state",
    "namespace_of",
    "overwrite_updates",
    "prepare",
    "stateless",
]


class GradientTransformation(NamedTuple):
    """A pair of pure functions ``(init, update)`` transforming gradients, as in optax.

    ``state = init(params)`` builds the initial state from the parameters;
    ``new_updates, new_state = update(updates, state, params=None)`` transforms a
    tree of updates (gradients). Neither function mutates its arguments. States
    are NamedTuples of arrays and ints (plain data: pickle them to checkpoint).
    ``update`` raises ``InvalidTypeError`` naming ``state`` when it is given a
    state its ``init`` does not return (a string, None, another transform's).
    The built-in transforms pickle and ``copy.deepcopy`` (their functions are
    methods of module-level objects, not closures).

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
    """The state of a stateless transform (``optax.EmptyState``)."""


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
        if new_leaves and get_backend(new_leaves[0]).returns_scalars:
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
    return primitives.as_array(value, xp)


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
    """``value`` as a :class:`GradientTransformation`; anything else raises naming ``name``."""
    if isinstance(value, GradientTransformation):
        return value
    init, update = getattr(value, "init", None), getattr(value, "update", None)
    if callable(init) and callable(update):  # optax's own, or another (init, update) pair
        return GradientTransformation(init, update)
    msg = f"`{name}` must be a GradientTransformation (init, update); got {describe_type(value)}"
    raise InvalidTypeError(msg)


def describe_state(state: object) -> str:
    """``builtins.str 'abc'``: the type and a short repr of a state, for error messages."""
    text = repr(state)
    return f"{describe_type(state)} {text if len(text) <= 60 else text[:57] + '...'}"


def check_state(state: object, expected: type[S], transform: str) -> S:
    """``state`` itself when it is an ``expected`` (what ``transform``'s ``init`` returns).

    Raises
    ------
    InvalidTypeError
        Anything else: a string, None, the state of another transform.
    """
    if isinstance(state, expected):
        return state
    msg = (
        f"`state` must be the {expected.__name__} that {transform}'s `init` returns; "
        f"got {describe_state(state)}"
    )
    raise InvalidTypeError(msg)


def init_empty_state(params: Any) -> EmptyState:
    """The ``init`` of every stateless transform: ``EmptyState()`` (``optax.init_empty_state``).

    Examples
    --------
    >>> from arraypenalties.transforms import init_empty_state
    >>> init_empty_state({"w": 1.0})
    EmptyState()
    """
    del params
    return EmptyState()


@dataclass(frozen=True)
class _StatelessUpdate:
    """``update`` of :func:`stateless`: checks the state, then ``fn(updates, params)``."""

    fn: Callable[[Any, Any], Any]
    name: str

    def __call__(self, updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        # any empty tuple is an empty state: ours, optax's EmptyState(), or () from a restore
        if not (isinstance(state, tuple) and len(state) == 0):
            msg = (
                f"`state` must be the EmptyState that {self.name}'s `init` returns; "
                f"got {describe_state(state)}"
            )
            raise InvalidTypeError(msg)
        return self.fn(updates, params), state


def stateless(fn: Callable[[Any, Any], Any], /) -> GradientTransformation:
    """A transform without state from ``fn(updates, params) -> new_updates`` (``optax.stateless``).

    ``init`` is :func:`init_empty_state`; ``update`` checks that the state is
    empty and calls ``fn``. The transform pickles when ``fn`` does (a
    module-level function, a ``functools.partial`` of one, or an instance of a
    module-level class; not a lambda or a local function).

    Parameters
    ----------
    fn : callable
        ``fn(updates, params)``; ``params`` is None when the caller gives none.

    Returns
    -------
    GradientTransformation

    Raises
    ------
    InvalidTypeError
        ``fn`` is not callable; at update: a state that is not empty.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import stateless
    >>> def halve(updates, params):
    ...     return [g / 2 for g in updates]
    >>> tx = stateless(halve)
    >>> tx.update([np.asarray([2.0, 4.0])], tx.init(None))
    ([array([1., 2.])], EmptyState())
    """
    check_callable(fn, "fn", what="a callable fn(updates, params)")  # callers may pass anything
    name = getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return GradientTransformation(init_empty_state, _StatelessUpdate(fn, str(name)))
