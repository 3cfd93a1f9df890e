"""Shared core of the divergences and constraints: working dtypes and stable KL rows.

Everything here works on log-probabilities along one ``axis`` and uses only
``xp.*`` calls, so it traces under ``jax.jit`` / ``torch.compile`` and stays lazy
on dask. The "double where" pattern used throughout: a term that must vanish
(probability 0) is selected away with ``where`` AND the value fed to the
arithmetic that could produce ``inf`` / ``NaN`` is replaced first, so that
neither the value nor the gradient ever sees ``0 · inf``.
"""

from __future__ import annotations

from typing import Any

from arraypenalties.backends.primitives import (
    fuses_elementwise,
    numpy_backed,
    reduce,
    run_fused,
    stop_gradient,
)

# (dtype type, dtype) -> the dtype computations run in (float16 / bfloat16 -> float32)
_WORKING: dict[tuple[type, Any], Any] = {}
# (dtype type, dtype, finfo attribute) -> its value as a Python float
_FINFO: dict[tuple[type, Any, str], float] = {}


def working_dtype(dtype: Any, xp: Any) -> Any:
    """``float32`` for floating dtypes narrower than 32 bits, else ``dtype`` (cached)."""
    key = (type(dtype), dtype)
    found = _WORKING.get(key)
    if found is None:
        found = _WORKING[key] = xp.float32 if xp.finfo(dtype).bits < 32 else dtype
    return found


def lowest(dtype: Any, xp: Any) -> float:
    """The most negative finite value of ``dtype`` (cached)."""
    return _finfo(dtype, "min", xp)


def _finfo(dtype: Any, name: str, xp: Any) -> float:
    """``xp.finfo(dtype).<name>`` as a Python float (cached)."""
    key = (type(dtype), dtype, name)
    found = _FINFO.get(key)
    if found is None:
        found = _FINFO[key] = float(getattr(xp.finfo(dtype), name))
    return found


def to_working(x: Any, work: Any, xp: Any) -> Any:
    """``x`` in the working dtype (no copy when it already is)."""
    return x if x.dtype == work else xp.astype(x, work)


def finish(per_sample: Any, reduction: str, out_dtype: Any, xp: Any, *, scale: float = 1.0) -> Any:
    """Reduce the per-sample values and return them in ``out_dtype``."""
    result = reduce(per_sample, reduction, xp=xp, scale=scale)
    return result if result.dtype == out_dtype else xp.astype(result, out_dtype)


def row_dot(a: Any, b: Any, axis: int, xp: Any) -> Any:
    """``Σ a·b`` along ``axis``."""
    return xp.sum(a * b, axis=axis)


# Namespaces that compute with numpy underneath (a backend trait): their ``inf − inf``
# emits a RuntimeWarning even in a branch that ``where`` then discards (dask: at
# compute time), so they get finite stand-ins before the subtraction (one more
# pass); torch, jax and cupy never warn and take the leaner form.


def masked_difference(a: Any, b: Any, keep: Any, xp: Any) -> Any:
    """``a − b`` where ``keep``, exactly 0 elsewhere, without evaluating ``-inf − -inf``
    on namespaces that would warn about it."""
    if numpy_backed(a):
        return xp.where(keep, a, 0.0) - xp.where(keep, b, 0.0)
    return xp.where(keep, a - b, 0.0)


def floor_at(x: Any, low: float, xp: Any) -> Any:
    """``max(x, low)``: ``maximum`` on numpy-backed namespaces (array-api-compat's
    ``clip`` is a slow Python routine there), ``clip`` elsewhere (torch.compile
    breaks the graph on array-api-compat's ``maximum`` with a Python scalar)."""
    if numpy_backed(x):
        return xp.maximum(x, low)
    return xp.clip(x, min=low)


def cap_at(x: Any, high: float, xp: Any) -> Any:
    """``min(x, high)``, as :func:`floor_at`."""
    if numpy_backed(x):
        return xp.minimum(x, high)
    return xp.clip(x, max=high)


def _clamp(x: Any, limit: float | None, xp: Any) -> Any:
    """``x`` clipped to ``[-limit, limit]``."""
    if limit is None:
        return x
    return cap_at(floor_at(x, -limit, xp), limit, xp)


# XLA fuses a whole elementwise chain into one loop, but on the CPU a compare or a
# select inside it does not vectorise (measured 3-6x slower than the plain KL), and
# every further operation in the loop costs a few percent: jax gets a short form
# built from max / multiply / add only (the backend trait ``fuses_elementwise``).


def _kl_terms_without_select(p: Any, lp: Any, lq: Any, limit: float | None, xp: Any) -> Any:
    """``p·(log p − log q)`` per element from arithmetic alone (no compare, no ``where``).

    ``log p`` is floored at the lowest finite value ``low``, and ``log q`` at a
    floor that depends on ``p``: ``low·(1 + p/tiny)`` (``tiny`` the smallest
    normal number) is ``low`` where ``p = 0`` and overflows to ``-inf`` for every
    ``p > 0``, down to the smallest subnormal (``p/tiny >= eps``, and
    ``low·(1 + eps)`` rounds past the largest finite value). So where ``p = 0``
    the difference is finite and the term exactly ``0·finite = 0`` (gradient 0),
    and where ``p > 0`` both floors are no-ops: the term is the plain
    ``p·(log p − log q)``, ``+inf`` where ``q = 0``. The floor carries no
    gradient, and every ``max`` has a derivative of 0 or 1, so gradients are exact.
    """
    low = lowest(lp.dtype, xp)
    if limit is not None:  # the clipped log-ratio is finite even where q = 0
        return p * _clamp(floor_at(lp, low, xp) - floor_at(lq, low, xp), limit, xp)
    inverse_tiny = 1.0 / _finfo(lp.dtype, "smallest_normal", xp)  # 2^126 for float32
    floor_q = stop_gradient(low * (1.0 + p * inverse_tiny))
    return p * (floor_at(lp, low, xp) - xp.maximum(lq, floor_q))


def kl_terms(p: Any, lp: Any, lq: Any, limit: float | None, xp: Any) -> Any:
    """Elementwise ``p·(log p − log q)`` with ``p = exp(log p)``, exact at zero probabilities.

    Where ``p`` is 0 (``log p = -inf``, or so negative that ``exp`` underflows)
    the term is exactly 0 with gradient 0, also where ``log q = -inf``
    (``0 · inf`` never occurs: the log-ratio is replaced by 0 first). Where
    ``p > 0`` and ``q = 0`` the term is ``+inf``, the true value, unless ``limit``
    clips the log-ratio to ``[-limit, limit]``.
    """
    if fuses_elementwise(p):
        return _kl_terms_without_select(p, lp, lq, limit, xp)
    return _clamp(masked_difference(lp, lq, p > 0, xp), limit, xp) * p  # temporary first


def kl_rows(lp: Any, lq: Any, axis: int, max_log_ratio: float | None, xp: Any) -> Any:
    """Per-sample ``Σ p·(log p − log q)`` along ``axis`` (see :func:`kl_terms`).

    The backend's fused kernel where it has one (torch eager), this Array API form elsewhere.
    """
    rows = None if max_log_ratio is not None else run_fused("kl_rows", lp, lq, axis=axis)
    if rows is not None:
        return rows
    return xp.sum(kl_terms(xp.exp(lp), lp, lq, max_log_ratio, xp), axis=axis)


def symmetric_kl_rows(lp: Any, lq: Any, axis: int, max_log_ratio: float | None, xp: Any) -> Any:
    """Per-sample ``½(KL(P‖Q) + KL(Q‖P)) = ½ Σ (p − q)·(log p − log q)`` along ``axis``.

    One log-ratio and one mask serve both directions (fewer passes in eager
    mode); terms where both probabilities are 0 are exactly 0 with gradient 0.
    """
    p, q = xp.exp(lp), xp.exp(lq)
    if fuses_elementwise(lp):
        both = kl_terms(p, lp, lq, max_log_ratio, xp) + kl_terms(q, lq, lp, max_log_ratio, xp)
        return 0.5 * xp.sum(both, axis=axis)
    ratio = _clamp(masked_difference(lp, lq, (p > 0) | (q > 0), xp), max_log_ratio, xp)
    return 0.5 * xp.sum(ratio * (p - q), axis=axis)


def neg_entropy_rows(lp: Any, axis: int, xp: Any) -> Any:
    """Per-sample ``Σ p·log p`` along ``axis`` (``−H``), 0 where ``p`` is 0.

    The backend's fused kernel where it has one (torch eager). Otherwise
    ``log p`` is floored at the dtype's lowest finite value first: a no-op
    wherever ``p > 0``, and it turns ``0 · (-inf)`` into ``0 · finite = 0``
    with a zero gradient, in one elementwise pass (a mask and a ``where`` take two).
    """
    rows = run_fused("neg_entropy_rows", lp, axis=axis)
    if rows is not None:
        return rows
    # one expression: numpy reuses the buffers of temporaries (fresh allocations of
    # large arrays are the dominant cost on small machines, page faults included)
    return xp.sum(xp.exp(lp) * floor_at(lp, lowest(lp.dtype, xp), xp), axis=axis)
