"""Values sown by a model, found by module path, and activity penalties over them (imports jax).

Shared by :mod:`arraypenalties.integrations.jax` (``activity=`` of the train
step) and :mod:`arraypenalties.integrations.flax` (``activity_penalty``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

import jax

from arraypenalties import InvalidTypeError, InvalidValueError, UnknownNameError

__all__ = ["activity_terms", "check_spec", "sown_values", "zero_d"]

Array = Any


def _sown_paths(node: Any, prefix: str, out: list[str]) -> None:
    if isinstance(node, Mapping):
        for key, child in node.items():
            _sown_paths(child, f"{prefix}/{key}" if prefix else str(key), out)
    elif prefix:
        out.append(prefix)


def sown_values(intermediates: Any, path: str) -> list[Array]:
    """Every array sown under ``path`` (module names joined with ``/``).

    ``intermediates`` is a nested mapping such as flax linen's
    ``state["intermediates"]`` (the whole ``state`` with its single
    ``"intermediates"`` key works too) or a flax nnx ``State`` of
    ``Intermediate`` values. ``path`` names a module (every value sown in it
    and below) or one sown name (``"block/act"``: each call's value).

    Raises
    ------
    UnknownNameError
        No such path; the message lists the sown paths closest to it.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from arraypenalties.integrations.jax import sown_values
    >>> state = {"intermediates": {"block": {"act": (jnp.ones(2), jnp.zeros(2))}}}
    >>> len(sown_values(state, "block")), len(sown_values(state, "block/act"))
    (2, 2)
    """
    if not isinstance(path, str) or not path:
        msg = f"an activity path must be a non-empty str like 'block/act'; got {path!r}"
        raise InvalidTypeError(msg)
    root = intermediates  # an nnx State is a Mapping whose leaves are Variable pytrees
    linen_state = isinstance(root, Mapping) and list(root) == ["intermediates"]
    if linen_state and not path.startswith("intermediates"):
        root = root["intermediates"]
    node = root
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            known: list[str] = []
            _sown_paths(root, "", known)
            close = difflib.get_close_matches(path, known, n=5, cutoff=0.4)
            msg = (
                f"activity path {path!r} names nothing that was sown; closest: {close}; "
                f"sown paths are {known}"
            )
            raise UnknownNameError(msg)
        node = node[part]
    return list(jax.tree_util.tree_leaves(node))


def check_spec(value: object, what: str) -> tuple[Callable[..., Array], float, dict[str, Any]]:
    """``(penalty, weight)`` or ``(penalty, weight, options)``, checked."""
    if not isinstance(value, tuple) or len(value) not in (2, 3):
        msg = f"{what} must be (penalty, weight) or (penalty, weight, options); got {value!r}"
        raise InvalidTypeError(msg)
    penalty, weight, *rest = value
    options = rest[0] if rest else {}
    if not callable(penalty):
        msg = f"the penalty of {what} must be callable (e.g. arraypenalties.l2); got {penalty!r}"
        raise InvalidTypeError(msg)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        msg = f"the weight of {what} must be a real number; got {weight!r}"
        raise InvalidTypeError(msg)
    if not isinstance(options, Mapping):
        msg = f"the options of {what} must be a mapping; got {options!r}"
        raise InvalidTypeError(msg)
    return penalty, float(weight), dict(options)


def zero_d(value: Any, what: str) -> Array:
    if tuple(getattr(value, "shape", (None,))) != ():
        msg = f"{what} must return a 0-d array; got {getattr(value, 'shape', type(value))}"
        raise InvalidValueError(msg)
    return value


def activity_terms(
    intermediates: Any, specs: Mapping[str, tuple[Callable[..., Array], float, dict[str, Any]]]
) -> dict[str, Array]:
    """Raw ``Σ penalty(value, **opts)`` over the values sown under each path."""
    raw = {}
    for path, (penalty, _, opts) in specs.items():
        values = sown_values(intermediates, path)
        if not values:
            msg = f"activity path {path!r} holds no sown array"
            raise InvalidValueError(msg)
        terms = [zero_d(penalty(v, **opts), f"the activity penalty of {path!r}") for v in values]
        raw[path] = sum(terms[1:], terms[0])
    return raw
