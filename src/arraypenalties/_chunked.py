"""Rows of a large input in chunks: bounded memory for the divergences.

A divergence over ``[N, V]`` inputs is one value per row. Computed on the whole
input at once, eager frameworks make several full-size temporaries, and
autodiff keeps full-size intermediates for the backward. Above
:data:`SETTINGS`'s ``threshold_bytes`` (one input's size) the rows are instead
processed ``chunk_bytes`` at a time: the backend's ``chunked_rows`` kernel (torch:
an autograd Function, jax: a ``custom_vjp``) keeps only the inputs for the
backward and recomputes each chunk there, so the memory beyond the inputs and
their gradients is a few chunks whatever ``N``. Namespaces without autodiff
loop over the chunks in Array API calls. The values are those of the whole-input
form (the same operations on fewer rows), gradients included.

Chunks run along the leading axes, so only a last-axis distribution is chunked
(the LLM layout ``[..., vocabulary]``); dask arrays are left to dask's own chunks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from arraypenalties._lib.checks import check_int
from arraypenalties.backends import get_backend
from arraypenalties.backends._base import CPU_CHUNK_BYTES
from arraypenalties.backends.primitives import fused_kernel, has_autodiff


@dataclass
class ChunkSettings:
    """When and how finely the divergences chunk their rows (process-wide)."""

    threshold_bytes: int = 32 << 20  # an input larger than this is processed in chunks
    # of about this many bytes of one input each on the CPU (None: the backend's choice)
    chunk_bytes: int | None = None
    accelerator_chunks: int = 16  # on an accelerator: this many chunks of equal rows


SETTINGS = ChunkSettings()


@dataclass(frozen=True)
class RowFn:
    """A per-row function with its options, hashable by value (jax caches one compiled
    chunked function per distinct ``RowFn``).

    ``closed_form`` names a gradient a backend may compute in closed form for each
    chunk instead of recomputing the chunk under autodiff: ``"kl"``, rows
    ``Σ e^a·(a − b)`` of the arrays ``(a, b)`` along the last axis; ``"kl_logits"``, the
    same of ``log_softmax(a)`` and ``log_softmax(b)``; a ``"_reverse"`` suffix swaps the
    arrays' roles. None: no closed form.
    """

    fn: Callable[..., Any]
    options: tuple[tuple[str, Any], ...]
    closed_form: str | None = None

    def __call__(self, *arrays: Any) -> Any:
        return self.fn(*arrays, **dict(self.options))


def row_fn(fn: Callable[..., Any], /, *, closed_form: str | None = None, **options: Any) -> RowFn:
    """``fn`` with keyword ``options`` bound, as a hashable :class:`RowFn` (each call site
    passes its options in one fixed order, so equal calls give equal keys)."""
    return RowFn(fn, tuple(options.items()), closed_form)


@contextlib.contextmanager
def chunking(
    *,
    threshold_bytes: int | None = None,
    chunk_bytes: int | None = None,
    accelerator_chunks: int | None = None,
) -> Iterator[ChunkSettings]:
    """Change when the divergences process rows in chunks, inside a ``with`` block.

    Parameters
    ----------
    threshold_bytes : int, optional
        Inputs larger than this (bytes of one input in the working dtype) are
        processed in chunks of rows. Default 32 MiB.
    chunk_bytes : int, optional
        About how many bytes of one input each chunk holds (at least one row), on
        the CPU. Default: the backend's, sized so that a chunk's temporaries stay in
        the cache: 512 KiB per torch intra-op thread (``torch.get_num_threads()``) up to
        2 MiB on torch, 2 MiB elsewhere.
    accelerator_chunks : int, optional
        On an accelerator (a GPU: CUDA torch, jax on a GPU, cupy) the rows are
        split into this many chunks of equal size instead. Default 16: a kernel
        launch costs microseconds there, so cache-sized chunks would spend their
        time launching; 16 chunks keep the temporaries a small share of one input.

    Yields
    ------
    ChunkSettings
        The settings in force inside the block.

    Raises
    ------
    InvalidTypeError, InvalidValueError
        A setting that is not an int ``>= 1``.

    Notes
    -----
    The settings are process-wide and read when a divergence is called (under
    ``jax.jit``: when it is traced). Chunking never changes a value beyond
    rounding, so this is a memory / speed knob only.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties import kl_divergence
    >>> from arraypenalties.divergences import chunking
    >>> p = np.log(np.full((6, 4), 0.25))
    >>> q = np.log(np.tile([0.4, 0.3, 0.2, 0.1], (6, 1)))
    >>> with chunking(threshold_bytes=1, chunk_bytes=64):  # two rows a chunk
    ...     chunked = kl_divergence(p, q)
    >>> bool(np.isclose(chunked, kl_divergence(p, q), rtol=1e-15))
    True
    """
    given = {
        "threshold_bytes": threshold_bytes,
        "chunk_bytes": chunk_bytes,
        "accelerator_chunks": accelerator_chunks,
    }
    old = dataclasses.replace(SETTINGS)
    new = dataclasses.replace(
        SETTINGS,
        **{name: check_int(v, name, low=1) for name, v in given.items() if v is not None},
    )
    _assign(new)
    try:
        yield new
    finally:
        _assign(old)


def _assign(settings: ChunkSettings) -> None:
    for field in dataclasses.fields(ChunkSettings):
        setattr(SETTINGS, field.name, getattr(settings, field.name))


def rows_per_chunk(
    shape: tuple[Any, ...],
    axis: int,
    dtype: Any,
    xp: Any,
    *,
    lazy: bool = False,
    on_accelerator: Callable[[], bool] | None = None,
    cpu_chunk_bytes: Callable[[], int] | None = None,
) -> int | None:
    """Rows per chunk for an input of ``shape``, or None where it is not chunked
    (``lazy`` arrays, dask, are left to the framework's own chunks). Above the
    threshold ``on_accelerator()`` is asked (it costs ~3 µs on torch): on an
    accelerator the rows split into ``accelerator_chunks`` equal chunks (the last may
    be smaller) instead of chunks of ``chunk_bytes``, which when unset is
    ``cpu_chunk_bytes()`` (the backend's; without one, :data:`CPU_CHUNK_BYTES`)."""
    if len(shape) < 2 or axis != len(shape) - 1 or lazy:
        return None
    if math.prod(shape) * 8 <= SETTINGS.threshold_bytes:  # small at any dtype: no finfo
        return None
    row_bytes = int(shape[-1]) * (int(xp.finfo(dtype).bits) // 8)
    if math.prod(shape) // shape[-1] * row_bytes <= SETTINGS.threshold_bytes:
        return None
    if on_accelerator is not None and on_accelerator():
        rows = int(math.prod(shape)) // int(shape[-1])
        return -(-rows // SETTINGS.accelerator_chunks)  # ceil
    chunk_bytes = SETTINGS.chunk_bytes
    if chunk_bytes is None:
        chunk_bytes = CPU_CHUNK_BYTES if cpu_chunk_bytes is None else cpu_chunk_bytes()
    return max(1, chunk_bytes // max(row_bytes, 1))  # at least one row


def rows_in_chunks(fn: RowFn, arrays: tuple[Any, ...], axis: int, xp: Any) -> Any:
    """``fn(*arrays)`` (one value per row along ``axis``), chunked above the threshold.

    ``fn`` must accept the arrays flattened to 2-D (it is built with ``axis=-1``
    wherever chunking can apply).
    """
    first = arrays[0]
    backend = get_backend(first)
    shape = tuple(first.shape)
    size = rows_per_chunk(
        shape,
        axis,
        first.dtype,
        xp,
        lazy=backend.lazy,
        on_accelerator=lambda: backend.on_accelerator(first),
        cpu_chunk_bytes=backend.cpu_chunk_bytes,
    )
    if size is None:
        return fn(*arrays)
    lead, width = tuple(first.shape[:-1]), first.shape[-1]
    flat = tuple(xp.reshape(a, (-1, width)) for a in arrays)
    kernel = fused_kernel("chunked_rows", first)
    if kernel is not None:
        rows = kernel(fn, flat, rows_per_chunk=size)
        if rows is None:  # declined (torch.func, forward-mode AD): the whole input
            return fn(*arrays)
    elif has_autodiff(first):  # without the kernel (torch.compile fuses the whole input)
        return fn(*arrays)
    else:
        total = flat[0].shape[0]
        spans = [(s, min(s + size, total)) for s in range(0, total, size)]
        pieces = [fn(*(a[s:e, ...] for a in flat)) for s, e in spans]
        rows = xp.concat(pieces)
    return xp.reshape(rows, lead)
