"""The penalty names a pipeline (and a config) may use: built-ins and registered names.

A config is data, never code: an entry's ``fn`` in a config is a built-in name
(``"l1"``), a name given to :func:`register_penalty`, or a key of the ``registry``
mapping passed to ``from_config``. Nothing named in a config is imported or called
while it is loaded; any other string raises :class:`UnknownNameError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError, UnknownNameError

__all__ = [
    "builtin_penalties",
    "check_name",
    "known_penalties",
    "reference",
    "register_penalty",
    "resolve",
]

# name -> (function, number of array inputs), filled by `register_penalty`
_REGISTERED: dict[str, tuple[Callable[..., Any], int]] = {}


def builtin_penalties() -> dict[str, tuple[Callable[..., Any], int]]:
    """The built-in names: name -> (function, number of array inputs).

    Import statements, not a lookup driven by data: a config can only pick among
    these functions, never name a module.
    """
    from arraypenalties.constraints import consistency, orthogonality
    from arraypenalties.divergences import entropy, js_divergence, kl_divergence, kl_estimate
    from arraypenalties.penalties import elastic_net, l1, l2, output_magnitude_penalty

    return {
        "l1": (l1, 1),
        "l2": (l2, 1),
        "elastic_net": (elastic_net, 1),
        "entropy": (entropy, 1),
        "orthogonality": (orthogonality, 1),
        "output_magnitude": (output_magnitude_penalty, 1),
        "kl": (kl_divergence, 2),
        "js": (js_divergence, 2),
        "kl_estimate": (kl_estimate, 2),
        "consistency": (consistency, 2),
    }


def check_name(name: object, param: str = "name") -> str:
    """A non-empty str (the type error names ``param``)."""
    if not isinstance(name, str) or not name:
        msg = f"`{param}` must be a non-empty str; got {name!r}"
        raise InvalidTypeError(msg)
    return name


def register_penalty(name: str, fn: Callable[..., Any] | object, /, *, inputs: int = 1) -> None:
    """Make ``fn`` usable by ``name`` in :meth:`Pipeline.add` and in configs.

    Parameters
    ----------
    name : str
        A non-empty name without ``:``, not a built-in name. Registering the same
        function under the same name again is allowed; another function raises.
    fn : callable
        ``fn(x, **opts)`` (``inputs=1``) or ``fn(*arrays, **opts)``, returning a 0-d array.
    inputs : int
        The number of arrays ``fn`` takes (2 for divergences and consistency terms).

    Raises
    ------
    InvalidValueError
        For a built-in name, a name with ``:``, a name already taken by another
        function, or ``inputs`` < 1.
    InvalidTypeError
        For a ``fn`` that is not callable or a ``name`` that is not a str.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties import Pipeline, register_penalty
    >>> def total_variation(x):
    ...     return np.sum(np.abs(np.diff(x)))
    >>> register_penalty("total_variation", total_variation)
    >>> config = Pipeline().add("tv", "total_variation", weight=0.5).to_config()
    >>> config["entries"][0]["fn"]
    'total_variation'
    >>> Pipeline.from_config(config).compute_total(np.array([0.0, 1.0, 3.0]))
    array(1.5)
    """
    name = check_name(name)
    if ":" in name or name in builtin_penalties():
        msg = (
            f"`name` {name!r} cannot be registered: names must not contain ':' and must "
            f"not be built-in names {sorted(builtin_penalties())}"
        )
        raise InvalidValueError(msg)
    if not callable(fn):
        msg = f"`fn` registered as {name!r} must be callable; got {fn!r}"
        raise InvalidTypeError(msg)
    count: object = inputs
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        msg = f"`inputs` must be an int >= 1; got {inputs!r}"
        raise InvalidValueError(msg)
    known = _REGISTERED.get(name)
    if known is not None and known[0] is not fn:
        msg = f"`name` {name!r} is already registered for {known[0]!r}"
        raise InvalidValueError(msg)
    _REGISTERED[name] = (fn, count)


def known_penalties() -> Mapping[str, tuple[Callable[..., Any], int]]:
    """Every name a config may use: name -> (function, number of array inputs).

    The built-in names and those given to :func:`register_penalty`, as a read-only
    snapshot. Integrations (Keras regularizers, torch parameter penalties) resolve
    names through it, so they accept exactly what a pipeline config accepts.

    Examples
    --------
    >>> from arraypenalties.pipelines import known_penalties
    >>> fn, inputs = known_penalties()["l2"]
    >>> fn.__name__, inputs
    ('l2', 1)
    """
    return MappingProxyType({**builtin_penalties(), **_REGISTERED})


def resolve(ref: str, registry: object) -> tuple[Callable[..., Any], int | None]:
    """The function a built-in, registered or ``registry`` name refers to, and its arity.

    Nothing is imported: a string that is not one of those names (an import
    path such as ``"os:system"`` included) raises :class:`UnknownNameError`.
    """
    if registry is not None and not isinstance(registry, Mapping):
        msg = f"`registry` must be a mapping of names to functions; got {type(registry).__name__}"
        raise InvalidTypeError(msg)
    if registry is not None and ref in registry:
        target = registry[ref]
        if not callable(target):
            msg = f"`registry` entry {ref!r} must be callable; got {target!r}"
            raise InvalidTypeError(msg)
        return target, None
    known = {**builtin_penalties(), **_REGISTERED}
    if ref not in known:
        msg = (
            f"`fn` {ref!r} is not a built-in penalty or a registered name; built-ins are "
            f"{sorted(builtin_penalties())}, registered names {sorted(_REGISTERED)}, plus "
            "the keys of `registry`; nothing named in a config is imported"
        )
        raise UnknownNameError(msg)
    return known[ref]


def reference(fn: Callable[..., Any]) -> tuple[str | None, int | None]:
    """The built-in or registered name of ``fn`` and its arity, else ``(None, None)``."""
    for name, (known, count) in {**builtin_penalties(), **_REGISTERED}.items():
        if known is fn:
            return name, count
    return None, None
