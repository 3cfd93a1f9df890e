"""Pytrees: the walk every tree-shaped API uses, and :func:`tree_penalty` over it.

A small pytree helper, enough of ``jax.tree_util`` for penalties over parameter
trees and for gradient transforms, without depending on jax: any array of any
namespace is a leaf, containers are walked recursively. Conventions follow jax so
trees round-trip through optax unchanged:

- dict keys are visited in sorted order (insertion order when the keys cannot
  be sorted), so two dicts with the same keys in a different insertion order
  have the same structure; rebuilt dicts keep the insertion order of the tree
  they came from;
- ``None`` is an empty container (no leaves), as in jax;
- a NamedTuple is rebuilt as its own class (optax's ``MaskedNode`` is an empty
  NamedTuple, so masked optax trees pass through);
- anything else is a leaf.

:mod:`arraypenalties.transforms` walks trees with the same functions, so a mask
built for a transform fits :func:`tree_penalty` too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from arraypenalties._lib.checks import check_callable
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type, device_of, get_xp
from arraypenalties.backends.primitives import as_array

__all__ = ["key_paths", "tree_penalty"]

Array = Any
Path = tuple[Any, ...]

_LEAF = "leaf"
_NONE = "none"
_DICT = "dict"
_LIST = "list"
_TUPLE = "tuple"
_NAMEDTUPLE = "namedtuple"


@dataclass(frozen=True)
class TreeDef:
    """The structure of a tree: container kinds, keys and child structures.

    Two trees have the same structure when their ``TreeDef`` compare equal.
    ``str(treedef)`` shows the structure with ``*`` for every leaf.
    """

    kind: str
    node_type: type | None = None
    keys: tuple[Any, ...] = ()
    children: tuple[TreeDef, ...] = ()
    num_leaves: int = 1
    order: tuple[Any, ...] = field(default=(), compare=False)  # dict insertion order

    def __str__(self) -> str:
        if self.kind == _LEAF:
            return "*"
        if self.kind == _NONE:
            return "None"
        inner = [str(child) for child in self.children]
        if self.kind == _DICT:
            items = ", ".join(
                f"{key!r}: {child}" for key, child in zip(self.keys, inner, strict=True)
            )
            return "{" + items + "}"
        if self.kind == _LIST:
            return "[" + ", ".join(inner) + "]"
        if self.kind == _NAMEDTUPLE:
            name = self.node_type.__name__ if self.node_type is not None else "NamedTuple"
            items = ", ".join(f"{key}={child}" for key, child in zip(self.keys, inner, strict=True))
            return f"{name}({items})"
        return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"


_LEAF_DEF = TreeDef(_LEAF)
_NONE_DEF = TreeDef(_NONE, num_leaves=0)


def _dict_keys(tree: dict[Any, Any]) -> tuple[Any, ...]:
    try:
        return tuple(sorted(tree))
    except TypeError:  # unorderable keys (mixed types): insertion order
        return tuple(tree)


def _flatten_into(tree: Any, leaves: list[Any]) -> TreeDef:
    if tree is None:
        return _NONE_DEF
    if isinstance(tree, dict):
        keys = _dict_keys(tree)
        children = tuple(_flatten_into(tree[key], leaves) for key in keys)
        count = sum(child.num_leaves for child in children)
        return TreeDef(_DICT, type(tree), keys, children, count, tuple(tree))
    if isinstance(tree, list):
        children = tuple(_flatten_into(item, leaves) for item in tree)
        return TreeDef(_LIST, type(tree), (), children, sum(c.num_leaves for c in children))
    if isinstance(tree, tuple):
        fields = getattr(tree, "_fields", None)
        children = tuple(_flatten_into(item, leaves) for item in tree)
        count = sum(child.num_leaves for child in children)
        if fields is not None:
            return TreeDef(_NAMEDTUPLE, type(tree), tuple(fields), children, count)
        return TreeDef(_TUPLE, type(tree), (), children, count)
    leaves.append(tree)
    return _LEAF_DEF


def flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """Return ``(leaves, treedef)``: the leaves in a fixed order and the structure.

    Examples
    --------
    >>> from arraypenalties.tree import flatten
    >>> leaves, treedef = flatten({"b": [1.0, 2.0], "a": 3.0})
    >>> leaves
    [3.0, 1.0, 2.0]
    >>> print(treedef)
    {'a': *, 'b': [*, *]}
    """
    leaves: list[Any] = []
    treedef = _flatten_into(tree, leaves)
    return leaves, treedef


def _build(treedef: TreeDef, leaves: Any) -> Any:
    if treedef.kind == _LEAF:
        return next(leaves)
    if treedef.kind == _NONE:
        return None
    children = [_build(child, leaves) for child in treedef.children]
    if treedef.kind == _DICT:
        by_key = dict(zip(treedef.keys, children, strict=True))
        items = {key: by_key[key] for key in (treedef.order or treedef.keys)}
        return items if treedef.node_type is dict else _rebuild_dict(treedef.node_type, items)
    if treedef.kind == _LIST:
        return children
    if treedef.kind == _NAMEDTUPLE:
        assert treedef.node_type is not None
        return treedef.node_type(*children)
    return tuple(children)


def _rebuild_dict(node_type: type | None, items: dict[Any, Any]) -> Any:
    try:
        return node_type(items) if node_type is not None else items
    except TypeError:  # a dict subclass whose constructor differs (defaultdict): plain dict
        return items


def unflatten(treedef: TreeDef, leaves: Sequence[Any]) -> Any:
    """Rebuild a tree of structure ``treedef`` from ``leaves`` (in :func:`flatten` order)."""
    if len(leaves) != treedef.num_leaves:
        msg = f"`leaves` must have {treedef.num_leaves} items for {treedef}; got {len(leaves)}"
        raise InvalidValueError(msg)
    return _build(treedef, iter(leaves))


def _paths(treedef: TreeDef, prefix: str, out: list[str]) -> None:
    if treedef.kind == _LEAF:
        out.append(prefix or "<root>")
        return
    for index, child in enumerate(treedef.children):
        if treedef.kind == _DICT:
            step = f"[{treedef.keys[index]!r}]"
        elif treedef.kind == _NAMEDTUPLE:
            step = f".{treedef.keys[index]}"
        else:
            step = f"[{index}]"
        _paths(child, prefix + step, out)


def leaf_paths(treedef: TreeDef) -> list[str]:
    """Path of every leaf, jax ``keystr`` style: ``['layer1']['weight']``, ``[0]``, ``.mu``."""
    out: list[str] = []
    _paths(treedef, "", out)
    return out


def check_same_structure(
    treedef: TreeDef, other: TreeDef, names: tuple[str, str] = ("updates", "params")
) -> None:
    """Raise ``InvalidValueError`` naming both structures unless they are equal."""
    if treedef != other:
        first, second = names
        msg = (
            f"`{first}` and `{second}` must have the same tree structure; got "
            f"`{first}` {treedef} and `{second}` {other}"
        )
        raise InvalidValueError(msg)


def _key_paths(treedef: TreeDef, prefix: Path, out: list[Path]) -> None:
    if treedef.kind == _LEAF:
        out.append(prefix)
        return
    for index, child in enumerate(treedef.children):
        key = treedef.keys[index] if treedef.kind in (_DICT, _NAMEDTUPLE) else index
        _key_paths(child, (*prefix, key), out)


def key_paths(treedef: TreeDef) -> list[Path]:
    """The path of every leaf from the root: dict keys, list / tuple indices, field names.

    Examples
    --------
    >>> from arraypenalties.tree import flatten, key_paths
    >>> key_paths(flatten({"b": [1.0, 2.0], "a": 3.0})[1])
    [('a',), ('b', 0), ('b', 1)]
    """
    out: list[Path] = []
    _key_paths(treedef, (), out)
    return out


def _is_pairs(items: list[Any] | tuple[Any, ...]) -> bool:
    return bool(items) and all(
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) for item in items
    )


def _pairs_as_dict(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    as_dict: dict[str, Any] = {}
    for name, array in pairs:
        if name in as_dict:
            msg = f"`tree` names {name!r} twice; (name, array) pairs need unique names"
            raise InvalidValueError(msg)
        as_dict[name] = array
    return as_dict


def _as_tree(tree: object) -> Any:
    """The pytree to walk: pairs (``named_parameters()``) become a dict by name."""
    if isinstance(tree, Iterator):  # a generator: parameters() or named_parameters()
        tree = list(tree)
    if isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields") and _is_pairs(tree):
        return _pairs_as_dict(tree)
    if tree is None or isinstance(tree, (dict, list, tuple)):
        return tree
    if hasattr(tree, "shape") and hasattr(tree, "dtype"):
        return tree  # one array: a tree with one leaf, as in jax
    msg = (
        "`tree` must be a dict / list / tuple / NamedTuple of arrays, an iterable of "
        "(name, array) pairs such as model.named_parameters(), or an array; got "
        f"{describe_type(tree)}"
    )
    raise InvalidTypeError(msg)


def _mask_flags(mask: object, treedef: TreeDef, paths: list[Path], leaves: list[Any]) -> list[bool]:
    if mask is None:
        return [True] * len(leaves)
    if callable(mask):
        flags = [mask(path, leaf) for path, leaf in zip(paths, leaves, strict=True)]
        where = [f"mask{path!r}" for path in paths]
    else:
        mask_leaves, mask_def = flatten(mask)
        check_same_structure(mask_def, treedef, ("mask", "tree"))
        flags, where = mask_leaves, [f"mask at {path!r}" for path in paths]
    for flag, name in zip(flags, where, strict=True):
        if not isinstance(flag, bool):
            msg = (
                f"`mask` must give a Python bool for every leaf; {name} is "
                f"{describe_type(flag)} (array masks cannot choose leaves under tracing)"
            )
            raise InvalidTypeError(msg)
    return flags


def tree_penalty(
    penalty: Callable[..., Array], tree: Any, /, *, mask: Any = None, **opts: Any
) -> Array:
    """``Σ penalty(leaf, **opts)`` over the arrays of a pytree, as one 0-d array.

    Parameters
    ----------
    penalty : callable
        ``penalty(array, **opts) -> 0-d array``, e.g. :func:`~arraypenalties.l2`.
    tree : pytree or iterable of (name, array) pairs
        A dict / list / tuple / NamedTuple of arrays (nested, ``None`` entries
        are empty), a single array, or an iterable of ``(name, array)`` pairs
        such as ``model.named_parameters()``, read as a dict by name (an
        iterable of plain arrays such as ``model.parameters()`` is read as a
        list). All leaves come from one namespace.
    mask : pytree of bool or callable, optional
        Which leaves to penalise: a tree of the same structure holding Python
        bools, or ``mask(path, leaf) -> bool`` where ``path`` is the tuple of
        dict keys / list indices / field names from the root (``(name,)`` for
        named pairs). ``None`` penalises every leaf.
    **opts
        Passed to every ``penalty`` call (``lam=``, ``reduction=``...).

    Returns
    -------
    array
        0-d, in the leaves' namespace and on their device; the dtype the sum of
        the per-leaf values promotes to. A fully masked tree gives a 0-d zero of
        the first leaf's dtype. Traceable under ``jax.jit``, ``jax.grad`` and
        ``torch.compile``: the walk and the mask are resolved from the tree's
        structure, never from array values.

    Raises
    ------
    InvalidValueError
        ``tree`` has no leaves; ``mask`` has another structure; a pair name
        repeats; ``penalty`` returns a non-0-d value for a leaf (the message
        names its path).
    InvalidTypeError
        ``tree`` is neither a pytree nor pairs; a leaf is not an array; leaves
        come from several namespaces; a mask entry is not a Python bool.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties import l2, tree_penalty
    >>> params = {"w": np.array([1.0, 2.0]), "b": np.array([3.0])}
    >>> tree_penalty(l2, params, lam=0.5)
    array(7.)
    >>> tree_penalty(l2, params, mask=lambda path, leaf: path[-1] != "b")
    array(5.)
    >>> tree_penalty(l2, [("layer.weight", np.array([1.0])), ("layer.bias", np.array([2.0]))])
    array(5.)
    """
    check_callable(penalty, "penalty", what="callable, e.g. arraypenalties.l2")
    tree = _as_tree(tree)
    leaves, treedef = flatten(tree)
    if not leaves:
        msg = f"`tree` must hold at least one array; got the empty structure {treedef}"
        raise InvalidValueError(msg)
    paths = key_paths(treedef)
    xp = get_xp(*leaves, names=tuple(f"tree leaf {path!r}" for path in paths))
    flags = _mask_flags(mask, treedef, paths, leaves)
    total = None
    for path, leaf, keep in zip(paths, leaves, flags, strict=True):
        if not keep:
            continue
        value = penalty(leaf, **opts)
        shape = getattr(value, "shape", None)
        if shape is None or tuple(shape) != ():
            got = f"shape {tuple(shape)}" if shape is not None else describe_type(value)
            msg = f"`penalty` must return a 0-d array; for the leaf at {path!r} it gave {got}"
            raise InvalidValueError(msg)
        total = value if total is None else total + value
    if total is None:
        return xp.zeros((), dtype=leaves[0].dtype, device=device_of(leaves[0]))
    return as_array(total, xp)
