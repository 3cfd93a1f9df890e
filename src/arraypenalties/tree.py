"""A penalty summed over every array of a pytree: :func:`tree_penalty`.

The walk is the one :mod:`arraypenalties.transforms` uses (dict / list / tuple /
NamedTuple containers, dict keys in sorted order, ``None`` an empty container),
so a mask built for a transform fits here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type, device_of, get_xp
from arraypenalties.backends.primitives import as_array
from arraypenalties.transforms._tree import TreeDef, check_same_structure, flatten

__all__ = ["key_paths", "tree_penalty"]

Array = Any
Path = tuple[Any, ...]


def _key_paths(treedef: TreeDef, prefix: Path, out: list[Path]) -> None:
    if treedef.kind == "leaf":
        out.append(prefix)
        return
    for index, child in enumerate(treedef.children):
        key = treedef.keys[index] if treedef.kind in ("dict", "namedtuple") else index
        _key_paths(child, (*prefix, key), out)


def key_paths(treedef: TreeDef) -> list[Path]:
    """The path of every leaf from the root: dict keys, list / tuple indices, field names.

    Examples
    --------
    >>> from arraypenalties.transforms._tree import flatten
    >>> from arraypenalties.tree import key_paths
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
    given: object = penalty  # checked at run time whatever the annotation says
    if not callable(given):
        msg = f"`penalty` must be callable, e.g. arraypenalties.l2; got {describe_type(penalty)}"
        raise InvalidTypeError(msg)
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
