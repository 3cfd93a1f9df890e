"""How a call's arrays reach the entries: one array ``x``, or named arrays.

:data:`SINGLE` serves :class:`~arraypenalties.Pipeline` (``fn(x, **opts)``),
:data:`NAMED` serves :class:`~arraypenalties.MultiPipeline`
(``fn(*(inputs[n] for n in entry.inputs), **opts)``). Each checks the call's
arrays and, for gradient tracking, lays the arrays the tracked entries use out as
one flat array (norms are over all of them together).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from arraypenalties._lib.checks import check_real_floating, is_real_floating
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError, UnknownNameError
from arraypenalties._lib.namespace import get_xp
from arraypenalties.pipelines._entry import Entry

__all__ = ["NAMED", "SINGLE", "Inputs"]

Array = Any
Arrays = dict[str, Array]


class Inputs:
    """The arrays of one call, as the entries see them."""

    def arrays(self, x: Any, entries: Sequence[Entry]) -> tuple[Any, Arrays]:
        """The namespace and the named arrays of one call, checked."""
        raise NotImplementedError

    def args(self, entry: Entry, arrays: Mapping[str, Array]) -> tuple[Array, ...]:
        """The positional arrays ``entry.fn`` is called with."""
        raise NotImplementedError

    def flat(
        self, xp: Any, arrays: Mapping[str, Array], entries: Sequence[Entry]
    ) -> tuple[Any, Array, Callable[[Array], Arrays]]:
        """``(key, flat, unflatten)``: one array holding every input ``entries`` use.

        ``key`` is hashable and identifies ``unflatten`` (same key, same function),
        so the gradient closures built on it can be cached.
        """
        raise NotImplementedError


def reference(xp: Any, arrays: Mapping[str, Array]) -> Array:
    """The first real floating input: it sets the dtype and device of an empty total."""
    for array in arrays.values():
        if is_real_floating(array.dtype, xp):
            return array
    msg = f"at least one input must have a real floating dtype; got {list(arrays)}"
    raise InvalidTypeError(msg)


class _Single(Inputs):
    def arrays(self, x: Any, entries: Sequence[Entry]) -> tuple[Any, Arrays]:
        xp = get_xp(x, names=("x",))
        check_real_floating(x, "x", xp)
        return xp, {"x": x}

    def args(self, entry: Entry, arrays: Mapping[str, Array]) -> tuple[Array, ...]:
        return (arrays["x"],)

    def flat(
        self, xp: Any, arrays: Mapping[str, Array], entries: Sequence[Entry]
    ) -> tuple[Any, Array, Callable[[Array], Arrays]]:
        return ("x", xp.__name__), arrays["x"], _as_x


def _as_x(flat: Array) -> Arrays:
    return {"x": flat}


class _Named(Inputs):
    def arrays(self, x: Any, entries: Sequence[Entry]) -> tuple[Any, Arrays]:
        if not isinstance(x, Mapping):
            msg = f"`inputs` must be a mapping of names to arrays; got {type(x).__name__}"
            raise InvalidTypeError(msg)
        arrays = dict(x)
        for entry in entries:
            for needed in entry.inputs or ():
                if needed not in arrays:
                    msg = (
                        f"entry {entry.name!r} needs input {needed!r}, which is missing; "
                        f"inputs given are {sorted(arrays)}"
                    )
                    raise UnknownNameError(msg)
        if not arrays:
            msg = "`inputs` must contain at least one array"
            raise InvalidValueError(msg)
        xp = get_xp(*arrays.values(), names=tuple(f"inputs[{k!r}]" for k in arrays))
        return xp, arrays

    def args(self, entry: Entry, arrays: Mapping[str, Array]) -> tuple[Array, ...]:
        return tuple(arrays[name] for name in entry.inputs or ())

    def flat(
        self, xp: Any, arrays: Mapping[str, Array], entries: Sequence[Entry]
    ) -> tuple[Any, Array, Callable[[Array], Arrays]]:
        used = tuple(dict.fromkeys(n for e in entries for n in e.inputs or ()))
        for name in used:
            check_real_floating(arrays[name], f"inputs[{name!r}]", xp)
        layout = tuple((n, tuple(arrays[n].shape), arrays[n].dtype) for n in used)
        dtype = xp.result_type(*(arrays[n] for n in used)) if used else None

        def unflatten(flat: Array) -> Arrays:
            out, offset = {}, 0
            for name, shape, array_dtype in layout:
                size = math.prod(shape)
                part = xp.reshape(flat[offset : offset + size], shape)
                out[name] = part if array_dtype == dtype else xp.astype(part, array_dtype)
                offset += size
            return out

        parts = [xp.reshape(xp.astype(arrays[n], dtype), (-1,)) for n in used]
        flat = xp.concat(parts) if parts else None
        return (layout, xp.__name__), flat, unflatten


SINGLE: Inputs = _Single()
NAMED: Inputs = _Named()
