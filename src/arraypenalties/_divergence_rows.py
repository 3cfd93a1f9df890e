"""What one row of each divergence computes, from log-probabilities or from logits.

These are the functions :mod:`arraypenalties._chunked` applies to the whole
input or to chunks of rows; each takes working-dtype arrays and keyword options
(``axis``, ``logits``, ``xp``, ...) and returns one value per row.
"""

from __future__ import annotations

import math
from typing import Any

from arraypenalties._logspace import (
    kl_rows,
    neg_entropy_rows,
    row_dot,
    symmetric_kl_rows,
)
from arraypenalties.backends.primitives import fused_kernel, logsumexp, numpy_backed

_LN2 = math.log(2.0)


def log_softmax(x: Any, axis: int, xp: Any) -> Any:
    """``x − log Σ exp(x)`` along ``axis``: the backend's fused kernel (torch, jax),
    else the max-shifted Array API form. A row that is all ``-inf`` gives NaN
    (it holds no distribution); see :func:`neg_entropy_values` for the entropy's rule."""
    kernel = fused_kernel("log_softmax", x)
    if kernel is not None:
        return kernel(x, axis=axis)
    total = logsumexp(x, axis=axis, keepdims=True, xp=xp)
    if numpy_backed(x):  # -inf − -inf would warn: NaN by hand
        dead = total == -math.inf
        return xp.where(dead, math.nan, x - xp.where(dead, 0.0, total))
    return x - total


def kl_values(
    lp: Any, lq: Any, *, axis: int, form: str, limit: float | None, logits: bool, xp: Any
) -> Any:
    """Per-row KL: ``form`` is ``"forward"``, ``"reverse"`` or ``"symmetric"``."""
    if logits:
        lp, lq = log_softmax(lp, axis, xp), log_softmax(lq, axis, xp)
    if form == "symmetric":
        return symmetric_kl_rows(lp, lq, axis, limit, xp)
    if form == "reverse":
        lp, lq = lq, lp
    return kl_rows(lp, lq, axis, limit, xp)


def js_values(lp: Any, lq: Any, *, axis: int, logits: bool, xp: Any) -> Any:
    """Per-row ``½KL(P‖M) + ½KL(Q‖M)`` with ``log M = logaddexp(log p, log q) − ln 2``."""
    if logits:
        lp, lq = log_softmax(lp, axis, xp), log_softmax(lq, axis, xp)
    # the double where: logaddexp(-inf, -inf) has a NaN gradient, so positions where
    # both probabilities are 0 get finite stand-ins first and are selected away later
    both_zero = (lp == -math.inf) & (lq == -math.inf)
    log_m = xp.logaddexp(xp.where(both_zero, 0.0, lp), xp.where(both_zero, 0.0, lq)) - _LN2
    p, q = xp.exp(lp), xp.exp(lq)
    to_p = row_dot(p, xp.where(p > 0, lp - log_m, 0.0), axis, xp)
    to_q = row_dot(q, xp.where(q > 0, lq - log_m, 0.0), axis, xp)
    return 0.5 * (to_p + to_q)


def neg_entropy_values(x: Any, *, axis: int, temperature: float, logits: bool, xp: Any) -> Any:
    """Per-row ``Σ p·log p`` (``−H``) of ``log_softmax(x / T)``, or of ``x`` itself when it
    holds log-probabilities at ``T = 1``.

    A row that is all ``-inf`` has no outcome with positive probability: its
    entropy is 0 at every temperature, with a zero gradient (the renormalisation
    sees a row of zeros instead, whose value is then replaced).
    """
    if temperature == 1.0 and not logits:
        return neg_entropy_rows(x, axis, xp)
    kernel = fused_kernel("neg_entropy_of_logits_rows", x)
    rows = None if kernel is None else kernel(x, axis=axis, temperature=temperature)
    if rows is not None:
        return rows
    scaled = x if temperature == 1.0 else x / temperature
    row_max = xp.max(scaled, axis=axis, keepdims=True)
    dead = row_max == -math.inf
    # a maximum with a per-row floor (0 for dead rows, -inf elsewhere: a no-op there),
    # not a full-size select: XLA:CPU does not vectorise a select inside a fused loop
    floor = xp.where(dead, 0.0, xp.full_like(row_max, -math.inf))
    lp = log_softmax(xp.maximum(scaled, floor), axis, xp)
    return xp.where(xp.squeeze(dead, axis=axis), 0.0, neg_entropy_rows(lp, axis, xp))
