"""Pipeline entries, the built-in penalty names, and their plain-data (config) form.

A function is referred to in a config by a built-in name (``"l1"``) or by an
import path ``"package.module:function"``; lambdas and closures have neither and
cannot be written to a config.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from arraypenalties._checks import check_real
from arraypenalties._errors import InvalidTypeError, InvalidValueError, UnknownNameError

__all__ = ["BUILTINS", "Entry", "make_entry", "reference", "resolve"]

# built-in name -> (import path, number of array inputs)
BUILTINS: dict[str, tuple[str, int]] = {
    "l1": ("arraypenalties.penalties:l1", 1),
    "l2": ("arraypenalties.penalties:l2", 1),
    "elastic_net": ("arraypenalties.penalties:elastic_net", 1),
    "entropy": ("arraypenalties.divergences:entropy", 1),
    "orthogonality": ("arraypenalties.constraints:orthogonality", 1),
    "output_magnitude": ("arraypenalties.gradient_penalty:output_magnitude_penalty", 1),
    "kl": ("arraypenalties.divergences:kl_divergence", 2),
    "js": ("arraypenalties.divergences:js_divergence", 2),
    "kl_estimate": ("arraypenalties.divergences:kl_estimate", 2),
    "consistency": ("arraypenalties.constraints:consistency", 2),
}
ENTRY_KEYS = ("name", "fn", "weight", "opts", "enabled", "differentiable", "inputs")


def _import(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for attribute in qualname.split("."):
        target = getattr(target, attribute)
    return target


def resolve(ref: str, *, param: str = "fn") -> Callable[..., Any]:
    """The function a built-in name or a ``"module:function"`` path refers to."""
    if ":" not in ref:
        if ref not in BUILTINS:
            msg = f"`{param}` {ref!r} is not a built-in penalty; built-ins are {sorted(BUILTINS)}"
            raise UnknownNameError(msg)
        ref = BUILTINS[ref][0]
    try:
        target = _import(ref)
    except (ImportError, AttributeError) as exc:
        msg = f"`{param}` {ref!r} cannot be imported: {exc}"
        raise InvalidValueError(msg) from exc
    if not callable(target):
        msg = f"`{param}` {ref!r} is not callable"
        raise InvalidTypeError(msg)
    return target  # type: ignore[no-any-return]


def reference(fn: Callable[..., Any]) -> str | None:
    """A config reference to ``fn``: its built-in name, else its import path, else None."""
    for name, (path, _) in BUILTINS.items():
        try:
            if _import(path) is fn:
                return name
        except (ImportError, AttributeError):  # a module of a later release
            continue
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not (module and qualname) or "<" in qualname:  # lambdas, closures, partials
        return None
    path = f"{module}:{qualname}"
    try:
        return path if _import(path) is fn else None
    except (ImportError, AttributeError):
        return None


def input_count(ref: str | None) -> int | None:
    """Number of array inputs of a built-in (None for other functions)."""
    return BUILTINS[ref][1] if ref in BUILTINS else None


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
) -> Entry:
    """Validate the arguments of ``Pipeline.add`` and build the entry."""
    name = check_name(name)
    ref: str | None = None
    if isinstance(fn, str):
        ref, fn = fn, resolve(fn)
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
            "has no built-in name or import path (use a module-level function)"
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
