"""The immutable collection of entries :class:`Pipeline` and :class:`MultiPipeline` share.

Adding, removing and updating return a new collection; ``to_config`` /
``from_config`` turn it into plain data and back (``from_config`` runs every check
``add`` runs). A collection pickles and deep-copies as its name and entries: the
per-pipeline cache of compiled functions is never copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError, UnknownNameError
from arraypenalties.pipelines._entry import (
    ENTRY_KEYS,
    Entry,
    changed,
    check_keys,
    entry_config,
    make_entry,
    metric_keys,
)
from arraypenalties.pipelines._names import check_name

__all__ = ["EntryCollection"]

_C = TypeVar("_C", bound="EntryCollection")


class EntryCollection:
    """An immutable, ordered set of uniquely named entries (the data half of a pipeline)."""

    __slots__ = ("_active", "_cache", "_entries", "_name")
    _multi: ClassVar[bool] = False

    def __init__(self, *, name: str = "pipeline") -> None:
        self._name = check_name(name)
        self._set_entries(())

    def _set_entries(self, entries: tuple[Entry, ...]) -> None:
        self._entries = entries
        self._active = tuple(entry for entry in entries if entry.enabled)
        # compiled functions and gradient closures of this pipeline (see _engine): reused
        # every step so jax compiles once; never pickled, copied or compared
        self._cache: dict[Any, Any] = {}

    def _with(self: _C, entries: tuple[Entry, ...]) -> _C:
        new = type(self).__new__(type(self))
        new._name = self._name
        new._set_entries(entries)
        return new

    # -------------------------------------------------------------- persistence
    def __getstate__(self) -> dict[str, Any]:
        return {"name": self._name, "entries": self._entries}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._name = state["name"]
        self._set_entries(tuple(state["entries"]))

    def __copy__(self: _C) -> _C:
        return self  # immutable

    # ------------------------------------------------------------------ reading
    @property
    def name(self) -> str:
        """The pipeline's name (telemetry metadata ``pipeline_name``)."""
        return self._name

    @property
    def entries(self) -> tuple[Entry, ...]:
        """The entries, in insertion order."""
        return self._entries

    @property
    def names(self) -> tuple[str, ...]:
        """The entry names, in insertion order."""
        return tuple(entry.name for entry in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def __contains__(self, name: object) -> bool:
        return any(entry.name == name for entry in self._entries)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, EntryCollection)
        return (self._name, self._entries) == (other._name, other._entries)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [
            f"{e.name}: {e.ref or getattr(e.fn, '__name__', e.fn)} (weight {e.weight:g}"
            + (")" if e.enabled else ", disabled)")
            for e in self._entries
        ]
        return f"{type(self).__name__}({self._name!r}, [{', '.join(parts)}])"

    def _index(self, name: object) -> int:
        for index, entry in enumerate(self._entries):
            if entry.name == name:
                return index
        msg = f"no entry named {name!r}; entries are {list(self.names)}"
        raise UnknownNameError(msg)

    def get(self, name: str) -> Entry:
        """The entry called ``name`` (``KeyError`` listing the names otherwise)."""
        return self._entries[self._index(name)]

    # ----------------------------------------------------------------- changing
    def _added(self: _C, entry: Entry) -> _C:
        if entry.name in self:
            msg = f"an entry named {entry.name!r} already exists; names are {list(self.names)}"
            raise InvalidValueError(msg)
        keys = metric_keys(entry.name)
        for other in self._entries:
            clash = sorted(keys & metric_keys(other.name))
            if clash:
                msg = (
                    f"`name` {entry.name!r} would share the metric key {clash[0]!r} with "
                    f"entry {other.name!r}; names are {list(self.names)}"
                )
                raise InvalidValueError(msg)
        return self._with((*self._entries, entry))

    def _new_entry(self, name: object, fn: object, **fields: Any) -> Entry:
        return make_entry(name, fn, multi=self._multi, **fields)

    def _replaced(self: _C, name: str, entry: Entry) -> _C:
        index = self._index(name)
        return self._with((*self._entries[:index], entry, *self._entries[index + 1 :]))

    def remove(self: _C, name: str) -> _C:
        """A pipeline without the entry called ``name``."""
        index = self._index(name)
        return self._with(self._entries[:index] + self._entries[index + 1 :])

    def update_weight(self: _C, name: str, weight: float) -> _C:
        """A pipeline where the entry ``name`` has weight ``weight``."""
        return self._replaced(name, changed(self.get(name), weight=weight))

    def set_enabled(self: _C, name: str, enabled: bool) -> _C:
        """A pipeline where the entry ``name`` is switched on or off."""
        return self._replaced(name, changed(self.get(name), enabled=enabled))

    # ------------------------------------------------------------------- config
    def to_config(self) -> dict[str, Any]:
        """Plain, JSON-serialisable data; :meth:`from_config` rebuilds the pipeline."""
        return {"name": self._name, "entries": [entry_config(e) for e in self._entries]}

    @classmethod
    def from_config(
        cls: type[_C],
        config: Mapping[str, Any] | object,
        *,
        registry: Mapping[str, Callable[..., Any]] | None = None,
    ) -> _C:
        """Rebuild a pipeline from :meth:`to_config` data, checking everything now.

        A config is data, never code: each entry's ``fn`` must be a built-in name,
        a name given to :func:`~arraypenalties.register_penalty`, or a key of
        ``registry``. Any other string (an import path included) raises
        :class:`~arraypenalties.UnknownNameError`; nothing is imported or called.
        Every entry is checked as :meth:`add` checks it (names, the number of
        arrays its function takes, option names against its signature); unknown
        keys raise.
        """
        if not isinstance(config, Mapping):
            msg = f"`config` must be a mapping; got {type(config).__name__}"
            raise InvalidTypeError(msg)
        check_keys(config, ("name", "entries"), "`config`")
        built = cls(name=config.get("name", "pipeline"))
        items = config.get("entries", ())
        if isinstance(items, (str, Mapping)) or not isinstance(items, (list, tuple)):
            msg = f"`config` 'entries' must be a list of mappings; got {type(items).__name__}"
            raise InvalidTypeError(msg)
        allowed = ENTRY_KEYS if cls._multi else tuple(k for k in ENTRY_KEYS if k != "inputs")
        for item in items:
            if not isinstance(item, Mapping):
                msg = f"each entry of `config` must be a mapping; got {item!r}"
                raise InvalidTypeError(msg)
            check_keys(item, allowed, f"entry {item.get('name')!r} of `config`")
            if "name" not in item or "fn" not in item:
                msg = f"each entry of `config` needs 'name' and 'fn'; got {dict(item)!r}"
                raise InvalidValueError(msg)
            fields = {k: v for k, v in item.items() if k not in ("name", "fn")}
            entry = built._new_entry(item["name"], item["fn"], registry=registry, **fields)
            built = built._added(entry)
        return built
