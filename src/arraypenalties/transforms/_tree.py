"""A small pytree helper: dict / list / tuple / NamedTuple / None containers of arrays.

Enough of ``jax.tree_util`` for gradient transforms, without depending on jax:
any array of any namespace is a leaf, containers are walked recursively.
Conventions follow jax so trees round-trip through optax unchanged:

- dict keys are visited in sorted order (insertion order when the keys cannot
  be sorted), so two dicts with the same keys in a different insertion order
  have the same structure; rebuilt dicts keep the insertion order of the tree
  they came from;
- ``None`` is an empty container (no leaves), as in jax;
- a NamedTuple is rebuilt as its own class (optax's ``MaskedNode`` is an empty
  NamedTuple, so masked optax trees pass through);
- anything else is a leaf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from arraypenalties._lib.errors import InvalidValueError

__all__ = [
    "TreeDef",
    "check_same_structure",
    "flatten",
    "leaf_paths",
    "unflatten",
]

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
    >>> from arraypenalties.transforms._tree import flatten
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
