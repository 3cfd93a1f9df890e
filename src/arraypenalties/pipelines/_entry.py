"""The entry record of a pipeline: one weighted penalty, checked when it is made.

Everything an entry says is checked when the entry is made (by ``add`` and by
``from_config`` alike): its name, the number of arrays its function takes and the
names of its options, against the function's signature.
"""

from __future__ import annotations

import copy
import inspect
import pickle
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from arraypenalties._lib.checks import check_bool, check_real
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties.pipelines._names import check_name, reference, resolve

__all__ = [
    "ENTRY_KEYS",
    "Entry",
    "Options",
    "check_keys",
    "entry_config",
    "make_entry",
    "metric_keys",
]

ENTRY_KEYS = ("name", "fn", "weight", "opts", "enabled", "differentiable", "inputs")
# metric keys of the whole pipeline, which no entry's keys may take
RESERVED_KEYS = frozenset({"total", "total_grad_norm"})
_METRIC_SUFFIXES = ("", "_weighted", "_grad_norm", "_grad_norm_error")


def metric_keys(name: str) -> frozenset[str]:
    """The metric keys an entry called ``name`` may write."""
    return frozenset(name + suffix for suffix in _METRIC_SUFFIXES)


def check_entry_name(name: object) -> str:
    """A non-empty str without ``:`` whose metric keys are not the pipeline's own."""
    name = check_name(name)
    if ":" in name:
        msg = f"`name` must not contain ':'; got {name!r}"
        raise InvalidValueError(msg)
    taken = sorted(metric_keys(name) & RESERVED_KEYS)
    if taken:
        msg = (
            f"`name` {name!r} would write the pipeline's own metric key {taken[0]!r}; "
            f"entry names must not produce the keys {sorted(RESERVED_KEYS)}"
        )
        raise InvalidValueError(msg)
    return name


class Options(Mapping[str, Any]):
    """An entry's options: a read-only mapping (a pipeline is immutable in fact).

    Examples
    --------
    >>> from arraypenalties.pipelines._entry import Options
    >>> opts = Options({"lam": 0.5})
    >>> opts["lam"], dict(opts)
    (0.5, {'lam': 0.5})
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[type[Options], tuple[dict[str, Any]]]:
        return (Options, (self._data,))


def _findable(fn: Any) -> bool:
    """True when pickle can store ``fn`` by reference: importable by module and qualified name."""
    qualname = getattr(fn, "__qualname__", "")
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    if module is None or not qualname or "<" in qualname:  # <lambda>, <locals>
        return False
    found: object = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is fn


@dataclass(frozen=True)
class Entry:
    """One weighted penalty of a pipeline (read-only; pipelines return new entries).

    ``ref`` is the built-in or registered name the function was given as (None for
    a callable given directly); ``inputs`` names the arrays a
    :class:`~arraypenalties.MultiPipeline` entry takes, in call order;
    ``accepts`` holds the option names ``fn`` accepts (None: any, ``**kwargs``).
    """

    name: str
    fn: Callable[..., Any]
    weight: float = 1.0
    opts: Options = field(default_factory=Options)
    enabled: bool = True
    differentiable: bool = True
    inputs: tuple[str, ...] | None = None
    ref: str | None = field(default=None, compare=False)
    accepts: frozenset[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the plain dict each call unpacks: torch.compile traces a dict without graph breaks
        object.__setattr__(self, "_kwargs", dict(self.opts))

    def call_opts(self, extra_args: Mapping[str, Any] | None) -> dict[str, Any]:
        """The keyword arguments of one call: ``opts``, then the ``extra_args`` it accepts."""
        kwargs: dict[str, Any] = self._kwargs  # type: ignore[attr-defined]
        if not extra_args:
            return kwargs
        if self.accepts is None:
            return {**kwargs, **extra_args}
        return {**kwargs, **{k: v for k, v in extra_args.items() if k in self.accepts}}

    def __copy__(self) -> Entry:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Entry:
        fn = copy.deepcopy(self.fn, memo)
        opts = Options(copy.deepcopy(self._kwargs, memo))  # type: ignore[attr-defined]
        fields = (self.weight, opts, self.enabled, self.differentiable, self.inputs, self.ref)
        return Entry(self.name, fn, *fields, accepts=self.accepts)

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        fn = self.fn
        reason = ""
        if isinstance(fn, (types.FunctionType, types.BuiltinFunctionType)):
            picklable = _findable(fn)
        else:  # a callable object pickles by value: try it, to name the entry if it fails
            try:
                pickle.dumps(fn, protocol)
                picklable = True
            except Exception as exc:
                picklable, reason = False, f" ({type(exc).__name__}: {exc})"
        if not picklable:
            msg = (
                f"entry {self.name!r} cannot be pickled: its function {fn!r} is a lambda, a "
                f"closure or otherwise not importable by name{reason}; pickle stores "
                "functions by reference (module and name): use a module-level function"
            )
            raise InvalidTypeError(msg)
        fields = (self.weight, self.opts, self.enabled, self.differentiable, self.inputs)
        return (Entry, (self.name, fn, *fields, self.ref, self.accepts))


def _accepted_options(
    name: str, fn: Callable[..., Any], arrays: int, opts: Mapping[str, Any]
) -> frozenset[str] | None:
    """The option names ``fn`` takes after ``arrays`` positional arrays (None: any).

    Raises when ``fn`` cannot take ``arrays`` arrays, or needs more positional
    arguments than that which ``opts`` does not give (a two-array function in a
    single-input pipeline). A callable without a signature (some C functions)
    accepts anything: nothing can be checked.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    kinds = inspect.Parameter
    params = list(signature.parameters.values())
    positional = [
        p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
    ]
    variadic = any(p.kind is kinds.VAR_POSITIONAL for p in params)
    missing = [
        p.name
        for p in positional[arrays:]
        if p.default is inspect.Parameter.empty
        and (p.kind is kinds.POSITIONAL_ONLY or p.name not in opts)
    ]
    if (len(positional) < arrays and not variadic) or missing:
        takes = len(positional) if not missing else arrays + len(missing)
        msg = (
            f"entry {name!r}: its `fn` {getattr(fn, '__name__', fn)!r} takes {takes} "
            f"array(s) but the entry gives it {arrays}"
        )
        if arrays == 1 and missing:
            msg += "; use MultiPipeline with `inputs=(...)`"
        raise InvalidValueError(msg)
    if any(p.kind is kinds.VAR_KEYWORD for p in params):
        return None
    slots = {p.name for p in positional[:arrays]}
    keyword = (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
    return frozenset(p.name for p in params if p.kind in keyword and p.name not in slots)


def check_options(entry_name: str, fn: Any, keys: Mapping[str, Any], accepts: Any) -> None:
    """Raise naming the entry and the first option ``fn`` does not take."""
    if accepts is None:
        return
    for key in keys:
        if key not in accepts:
            msg = (
                f"entry {entry_name!r}: option {key!r} is not a parameter of its `fn` "
                f"{getattr(fn, '__name__', fn)!r}; its options are {sorted(accepts)}"
            )
            raise InvalidValueError(msg)


def _check_inputs(name: str, inputs: object, multi: bool) -> tuple[str, ...] | None:
    if not multi:
        if inputs is not None:
            msg = f"entry {name!r}: a Pipeline entry takes no `inputs`; got {inputs!r}"
            raise InvalidValueError(msg)
        return None
    if inputs is None:
        msg = f"entry {name!r} of a MultiPipeline needs `inputs`, the names of its arrays"
        raise InvalidValueError(msg)
    if isinstance(inputs, str) or not isinstance(inputs, (tuple, list)) or not inputs:
        msg = f"`inputs` of entry {name!r} must be a non-empty tuple of names; got {inputs!r}"
        raise InvalidTypeError(msg)
    return tuple(check_name(item, "inputs") for item in inputs)


def make_entry(
    name: object,
    fn: object,
    *,
    weight: object = 1.0,
    opts: object = None,
    enabled: object = True,
    differentiable: object = True,
    inputs: object = None,
    multi: bool = False,
    registry: Mapping[str, Any] | None = None,
) -> Entry:
    """Check the arguments of ``add`` (or one config entry) and build the entry."""
    name = check_name(name)
    ref: str | None = None
    if isinstance(fn, str):  # resolved first: an unknown name is the error to report
        ref = fn
        fn, count = resolve(fn, registry)
    elif callable(fn):
        count = reference(fn)[1]
    else:
        msg = f"`fn` of entry {name!r} must be callable or a built-in name; got {fn!r}"
        raise InvalidTypeError(msg)
    check_entry_name(name)
    checked_inputs = _check_inputs(name, inputs, multi)
    arrays = 1 if checked_inputs is None else len(checked_inputs)
    if count is not None and count != arrays:
        if not multi:
            msg = (
                f"{ref or name!r} compares two arrays and cannot be an entry of a single-input "
                "Pipeline; use MultiPipeline with `inputs=(...)`"
            )
        else:
            msg = (
                f"entry {name!r}: {ref or fn!r} takes {count} array(s); `inputs` names "
                f"{arrays}: {list(checked_inputs or ())}"
            )
        raise InvalidValueError(msg)
    if opts is None:
        opts = {}
    if not isinstance(opts, Mapping) or not all(isinstance(key, str) for key in opts):
        msg = f"`opts` of entry {name!r} must be a mapping with str keys; got {opts!r}"
        raise InvalidTypeError(msg)
    accepts = _accepted_options(name, fn, arrays, opts)
    check_options(name, fn, opts, accepts)
    return Entry(
        name=name,
        fn=fn,
        weight=check_real(weight, "weight"),
        opts=Options(opts),
        enabled=check_bool(enabled, "enabled"),
        differentiable=check_bool(differentiable, "differentiable"),
        inputs=checked_inputs,
        ref=ref,
        accepts=accepts,
    )


def changed(entry: Entry, *, weight: object = None, enabled: object = None) -> Entry:
    """``entry`` with a new weight or enabled flag (checked; the rest is unchanged)."""
    new_weight = entry.weight if weight is None else check_real(weight, "weight")
    new_enabled = entry.enabled if enabled is None else check_bool(enabled, "enabled")
    fields = (entry.opts, new_enabled, entry.differentiable, entry.inputs, entry.ref)
    return Entry(entry.name, entry.fn, new_weight, *fields, accepts=entry.accepts)


def entry_config(entry: Entry) -> dict[str, Any]:
    """Plain, JSON-friendly data for one entry (raises for functions without a name)."""
    ref = entry.ref or reference(entry.fn)[0]
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
