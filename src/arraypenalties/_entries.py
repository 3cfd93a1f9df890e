"""Pipeline entries, the penalty names a config may use, and the plain-data (config) form.

A config is data, never code: an entry's ``fn`` in a config is a built-in name
(``"l1"``), a name given to :func:`register_penalty`, or a key of the ``registry``
mapping passed to ``from_config``. Nothing named in a config is imported or called
while it is loaded; any other string raises :class:`UnknownNameError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from arraypenalties._checks import check_real
from arraypenalties._errors import InvalidTypeError, InvalidValueError, UnknownNameError

__all__ = ["Entry", "builtin_penalties", "make_entry", "reference", "register_penalty", "resolve"]

# name -> (function, number of array inputs), filled by `register_penalty`
_REGISTERED: dict[str, tuple[Callable[..., Any], int]] = {}
ENTRY_KEYS = ("name", "fn", "weight", "opts", "enabled", "differentiable", "inputs")


def builtin_penalties() -> dict[str, tuple[Callable[..., Any], int]]:
    """The built-in names: name -> (function, number of array inputs).

    Import statements, not a lookup driven by data: a config can only pick among
    these functions, never name a module.
    """
    from arraypenalties.constraints import consistency, orthogonality
    from arraypenalties.divergences import entropy, js_divergence, kl_divergence, kl_estimate
    from arraypenalties.gradient_penalty import output_magnitude_penalty
    from arraypenalties.penalties import elastic_net, l1, l2

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


def _known(registry: Mapping[str, object] | None) -> dict[str, object]:
    known: dict[str, object] = {name: fn for name, (fn, _) in builtin_penalties().items()}
    known.update((name, fn) for name, (fn, _) in _REGISTERED.items())
    if registry is not None:
        known.update(registry)
    return known


def resolve(ref: str, *, param: str = "fn", registry: object = None) -> Callable[..., Any]:
    """The function a built-in, registered or ``registry`` name refers to.

    Nothing is imported: a string that is not one of those names (an import
    path such as ``"os:system"`` included) raises :class:`UnknownNameError`.
    """
    if registry is not None and not isinstance(registry, Mapping):
        msg = f"`registry` must be a mapping of names to functions; got {type(registry).__name__}"
        raise InvalidTypeError(msg)
    known = _known(registry)
    target = known.get(ref)
    if target is None:
        msg = (
            f"`{param}` {ref!r} is not a built-in penalty or a registered name; built-ins are "
            f"{sorted(builtin_penalties())}, registered names {sorted(_REGISTERED)}, plus "
            "the keys of `registry`; nothing named in a config is imported"
        )
        raise UnknownNameError(msg)
    if not callable(target):
        msg = f"`registry` entry {ref!r} must be callable; got {target!r}"
        raise InvalidTypeError(msg)
    return target


def reference(fn: Callable[..., Any]) -> str | None:
    """The built-in or registered name of ``fn``, else None."""
    for name, (known, _) in builtin_penalties().items():
        if known is fn:
            return name
    for name, (known, _) in _REGISTERED.items():
        if known is fn:
            return name
    return None


def input_count(ref: str | None) -> int | None:
    """Number of array inputs of a built-in or registered name (None otherwise)."""
    known = {**builtin_penalties(), **_REGISTERED}
    return known[ref][1] if ref in known else None


@dataclass(frozen=True)
class Entry:
    """One weighted penalty of a pipeline (read-only; pipelines return new entries).

    ``ref`` is the built-in name or import path the function was given as (None for
    a callable given directly); ``inputs`` names the arrays a
    :class:`~arraypenalties.MultiPipeline` entry takes, in call order.
    """

    name: str
    fn: Callable[..., Any]
    weight: float = 1.0
    opts: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    enabled: bool = True
    differentiable: bool = True
    inputs: tuple[str, ...] | None = None
    ref: str | None = None
    # the dict behind the read-only `opts` view, for calls: torch.compile graph-breaks on
    # reading a mappingproxy once any dict was mutated during tracing
    kwargs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def call_opts(self, extra_args: Mapping[str, Any] | None) -> dict[str, Any]:
        """The keyword arguments of one call: ``opts`` overridden by ``extra_args``."""
        return {**self.kwargs, **extra_args} if extra_args else self.kwargs


def _check_bool(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        msg = f"`{param}` must be a bool; got {value!r}"
        raise InvalidTypeError(msg)
    return value


def check_name(name: object, param: str = "name") -> str:
    if not isinstance(name, str) or not name:
        msg = f"`{param}` must be a non-empty str; got {name!r}"
        raise InvalidTypeError(msg)
    return name


def make_entry(
    name: object,
    fn: object,
    *,
    weight: object = 1.0,
    opts: object = None,
    enabled: object = True,
    differentiable: object = True,
    inputs: object = None,
    registry: Mapping[str, Any] | None = None,
) -> Entry:
    """Validate the arguments of ``Pipeline.add`` and build the entry."""
    name = check_name(name)
    ref: str | None = None
    if isinstance(fn, str):
        ref, fn = fn, resolve(fn, registry=registry)
    elif not callable(fn):
        msg = f"`fn` of entry {name!r} must be callable or a built-in name; got {fn!r}"
        raise InvalidTypeError(msg)
    if opts is None:
        opts = {}
    if not isinstance(opts, Mapping) or not all(isinstance(key, str) for key in opts):
        msg = f"`opts` of entry {name!r} must be a mapping with str keys; got {opts!r}"
        raise InvalidTypeError(msg)
    checked_inputs = None
    if inputs is not None:
        if isinstance(inputs, str) or not isinstance(inputs, (tuple, list)) or not inputs:
            msg = f"`inputs` of entry {name!r} must be a non-empty tuple of names; got {inputs!r}"
            raise InvalidTypeError(msg)
        checked_inputs = tuple(check_name(item, "inputs") for item in inputs)
    kwargs = dict(opts)
    return Entry(
        name=name,
        fn=fn,
        weight=check_real(weight, "weight"),
        opts=MappingProxyType(kwargs),
        enabled=_check_bool(enabled, "enabled"),
        differentiable=_check_bool(differentiable, "differentiable"),
        inputs=checked_inputs,
        ref=ref,
        kwargs=kwargs,
    )


def entry_config(entry: Entry) -> dict[str, Any]:
    """Plain, JSON-friendly data for one entry (raises for functions without a reference)."""
    ref = entry.ref or reference(entry.fn)
    if ref is None:
        msg = (
            f"entry {entry.name!r} cannot be written to a config: its function {entry.fn!r} "
            "is neither a built-in penalty nor registered (use `register_penalty(name, fn)`)"
        )
        raise InvalidValueError(msg)
    config: dict[str, Any] = {
        "name": entry.name,
        "fn": ref,
        "weight": entry.weight,
        "opts": dict(entry.opts),
        "enabled": entry.enabled,
        "differentiable": entry.differentiable,
    }
    if entry.inputs is not None:
        config["inputs"] = list(entry.inputs)
    return config


def check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """Raise naming the unknown keys of ``data`` (no key is silently dropped)."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        msg = f"{where} has unknown keys {unknown}; allowed keys are {list(allowed)}"
        raise InvalidValueError(msg)
