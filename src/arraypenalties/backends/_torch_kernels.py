"""Fused torch kernels for eager mode: the KL rows (with a hand-written backward), the
entropy rows, the log-softmax, and rows of large inputs in chunks (:func:`chunked_rows`:
an autograd Function that recomputes each chunk in its backward, for bounded memory).

Eager torch runs one kernel per operation and, on the CPU, maps fresh pages for
every large temporary; an exact KL written in Array API calls (exp, compare,
subtract, where, multiply, sum) pays for six passes and four full-size
allocations. Here the masking is done in place on the one temporary, and the
backward is the closed form (``∂/∂log p = p·(r + 1)``, ``∂/∂log q = −p`` with
``r`` the masked log-ratio) instead of autograd's chain through every step.
``torch.compile`` gets the Array API form instead (see ``_logspace.kl_rows``): it
fuses that into one loop and decides for itself what to keep for the backward.
Without autograd, both kernels reuse their one temporary in place.
"""

from __future__ import annotations

import contextvars
import functools
import math
from collections.abc import Callable
from typing import Any

import torch

# True while a chunked backward recomputes one chunk: the kernels below then run on
# chunks of any size (their closed-form backward beats autograd's chain there too;
# what they decline is small whole inputs, where the Python overhead dominates)
_RECOMPUTING = contextvars.ContextVar("_RECOMPUTING", default=False)


def _masked_log_ratio(lp: torch.Tensor, lq: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """A fresh ``log p − log q`` that is exactly 0 where ``p`` is 0 (``-inf − -inf`` included)."""
    ratio = torch.sub(lp, lq)
    return ratio.masked_fill_(p == 0, 0.0)


class _KLRows(torch.autograd.Function):
    """``Σ p·(log p − log q)`` along ``axis``; returns ``(rows, p, ratio)``, the last two
    non-differentiable (they are the forward's intermediates, saved for the backward)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        lp: torch.Tensor, lq: torch.Tensor, axis: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = torch.exp(lp)
        ratio = _masked_log_ratio(lp, lq, p)
        return torch.sum(ratio * p, dim=axis), p, ratio

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
        lp, lq, axis = inputs
        _, p, ratio = output
        ctx.axis = axis
        ctx.mark_non_differentiable(p, ratio)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(lp, lq, p, ratio)
        ctx.save_for_forward(p, ratio)

    @staticmethod
    def backward(
        ctx: Any, grad_rows: torch.Tensor | None, *_: Any
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        if grad_rows is None:
            return None, None, None
        lp, lq, p, ratio = ctx.saved_tensors
        grad = grad_rows.unsqueeze(ctx.axis)
        create_graph = torch.is_grad_enabled()
        if create_graph:  # rebuilt from the inputs: a gradient that is differentiable again
            p = torch.exp(lp)
            ratio = _masked_log_ratio(lp, lq, p)
        grad_lp = grad_lq = None
        if ctx.needs_input_grad[0]:
            grad_lp = torch.addcmul(p, p, ratio)
            grad_lp = grad_lp * grad if create_graph else grad_lp.mul_(grad)
        if ctx.needs_input_grad[1]:
            grad_lq = p * grad.neg()
        return grad_lp, grad_lq, None

    @staticmethod
    def jvp(ctx: Any, tangent_lp: Any, tangent_lq: Any, _axis: Any) -> tuple[Any, None, None]:
        p, ratio = ctx.saved_tensors
        change: Any = 0.0  # only a tangent of log q: 0 − Σ p·t
        if tangent_lp is not None:
            change = torch.sum(torch.addcmul(p, p, ratio) * tangent_lp, dim=ctx.axis)
        if tangent_lq is not None:
            change = change - torch.sum(p * tangent_lq, dim=ctx.axis)
        return change, None, None


# Above 32 MiB glibc serves every allocation with fresh mmap'd pages (below it, with
# its default dynamic threshold, freed memory is usually reused), and the page faults
# of a full-size temporary cost about as much as the arithmetic. That is where
# avoiding temporaries pays: measured on torch CPU (float32) with autograd, the
# Function below is 0.63x the Array API form at [1024, 8192] (32 MiB) and 0.65x at
# [1024, 32000], but 1.36x at [8, 32] and 1.28x at [256, 1024], where its Python
# overhead (about 40 µs) and its unfused backward lose. The entropy's matmul row
# sum: 99 vs 121 ms at [512, 32000], 22 vs 17 ms at [256, 32000].
LARGE_BYTES = 32 << 20


def _large(x: torch.Tensor) -> bool:
    return x.numel() * x.element_size() > LARGE_BYTES or _RECOMPUTING.get()


def kl_rows(lp: torch.Tensor, lq: torch.Tensor, axis: int) -> torch.Tensor | None:
    """Per-row ``Σ p·(log p − log q)``, ``p = exp(log p)``: 0 where ``p`` is 0, ``+inf``
    where ``p > 0 = q``. Without autograd the temporary is reused in place; with
    autograd, inputs up to :data:`LARGE_BYTES` are declined (None: the caller's
    Array API form is faster there)."""
    if torch.is_grad_enabled() and (lp.requires_grad or lq.requires_grad):
        if not _large(lp):
            return None
        rows: torch.Tensor = _KLRows.apply(lp, lq, axis)[0]  # type: ignore[no-untyped-call]
        return rows
    p = torch.exp(lp)
    return _masked_log_ratio(lp, lq, p).mul_(p).sum(dim=axis)


def neg_entropy_rows(lp: torch.Tensor, axis: int) -> torch.Tensor | None:
    """Per-row ``Σ p·log p``, 0 where ``p`` is 0 (``log p`` floored at the lowest finite
    value: a no-op wherever ``p > 0``, and ``0·(-inf)`` becomes ``0·finite``).

    Without autograd the product is taken in place; with autograd, a batched matmul
    multiplies and sums large last-axis rows in one kernel, without a full-size
    product temporary, and anything else is declined (None)."""
    grad = torch.is_grad_enabled() and lp.requires_grad
    if grad and not (axis == lp.ndim - 1 and _large(lp)):
        return None
    p = torch.exp(lp)
    floored = torch.clamp(lp, min=torch.finfo(lp.dtype).min)
    if not grad:
        return p.mul_(floored).sum(dim=axis)
    return torch.matmul(p.unsqueeze(-2), floored.unsqueeze(-1))[..., 0, 0]


def neg_entropy_of_logits_rows(
    x: torch.Tensor, axis: int, temperature: float
) -> torch.Tensor | None:
    """Per-row ``Σ p·log p`` of ``p = softmax(x / T)`` without autograd, in place on the
    one log-softmax temporary: ``exp``, then ``log p`` floored at the lowest finite
    value (``0·(-inf)`` becomes ``0·finite``; NaN stays NaN), the product and the sum,
    what a hand-written ``log_softmax``-``exp``-product-sum takes plus the floor. A row
    that is all ``-inf`` (log-softmax NaN) gives 0; on the CPU only NaN rows are checked
    for it. Declined (None) when a gradient is recorded: the guarded whole form then
    keeps every gradient finite."""
    if (torch.is_grad_enabled() and x.requires_grad) or _transformed(x):
        return None
    scaled = x if temperature == 1.0 else x / temperature
    lp = torch.log_softmax(scaled, dim=axis)
    p = torch.exp(lp)
    rows = p.mul_(lp.clamp_(min=torch.finfo(lp.dtype).min)).sum(dim=axis)
    if scaled.device.type != "cpu":  # no host sync on an accelerator: one more pass instead
        return rows.masked_fill_(torch.amax(scaled, dim=axis) == -math.inf, 0.0)
    # on the CPU only the NaN rows are looked at again (a dead row, or a NaN logit): a
    # pass over the whole input for the row max cost a fifth of the time
    nan = torch.isnan(rows)
    if bool(nan.any()):
        where = nan.nonzero(as_tuple=True)
        dead = torch.amax(scaled.movedim(axis, -1)[where], dim=-1) == -math.inf
        rows[where] = rows[where].masked_fill_(dead, 0.0)
    return rows


def log_softmax(x: torch.Tensor, axis: int) -> torch.Tensor:
    """``torch.log_softmax`` along ``axis`` (one fused kernel, forward and backward)."""
    return torch.log_softmax(x, dim=axis)


def _spans(total: int, size: int) -> range:
    return range(0, total, size)


class _ChunkedRows(torch.autograd.Function):
    """``row_fn(*arrays)`` over chunks of rows that keeps only its inputs for the backward,
    which recomputes each chunk under autograd and writes its gradient in place: the
    memory beyond the inputs and their gradients is a few chunks, whatever the size.
    Under ``create_graph`` the backward is the whole input's graph instead (differentiable
    again, without the memory bound)."""

    @staticmethod
    def forward(ctx: Any, row_fn: Any, size: int, *arrays: torch.Tensor) -> torch.Tensor:
        ctx.row_fn, ctx.size = row_fn, size
        ctx.save_for_backward(*arrays)
        total = arrays[0].shape[0]
        return torch.cat([row_fn(*(a[s : s + size] for a in arrays)) for s in _spans(total, size)])

    @staticmethod
    def backward(ctx: Any, grad_rows: torch.Tensor) -> tuple[Any, ...]:
        arrays = ctx.saved_tensors
        wanted = [i for i, need in enumerate(ctx.needs_input_grad[2:]) if need]
        grads: list[torch.Tensor | None] = [None] * len(arrays)
        if torch.is_grad_enabled():  # create_graph
            rows = ctx.row_fn(*arrays)
            found = torch.autograd.grad(
                rows, [arrays[i] for i in wanted], grad_rows, create_graph=True, allow_unused=True
            )
            for i, grad in zip(wanted, found, strict=True):
                grads[i] = torch.zeros_like(arrays[i]) if grad is None else grad
            return (None, None, *grads)
        for i in wanted:
            grads[i] = torch.empty_like(arrays[i])  # every chunk writes its rows
        size = ctx.size
        token = _RECOMPUTING.set(True)
        try:
            _chunk_grads(ctx.row_fn, size, arrays, wanted, grads, grad_rows)
        finally:
            _RECOMPUTING.reset(token)
        return (None, None, *grads)


def _chunk_grads(
    row_fn: Any,
    size: int,
    arrays: tuple[torch.Tensor, ...],
    wanted: list[int],
    grads: list[Any],
    grad_rows: torch.Tensor,
) -> None:
    """Each chunk's gradient written into ``grads``: in closed form where ``row_fn`` names
    one (no autograd graph, no copy), else its forward again under autograd."""
    closed = getattr(row_fn, "closed_form", None)
    if closed in _CLOSED_FORMS:
        order = (1, 0) if closed.endswith("_reverse") else (0, 1)  # (weighted side, other)
        for s in _spans(arrays[0].shape[0], size):
            outs = [grads[i][s : s + size] if i in wanted else None for i in order]
            a, b = (arrays[i][s : s + size] for i in order)
            _CLOSED_FORMS[closed](a, b, grad_rows[s : s + size], outs[0], outs[1])
        return
    for s in _spans(arrays[0].shape[0], size):
        with torch.enable_grad():
            leaves = [
                a[s : s + size].detach().requires_grad_(i in wanted) for i, a in enumerate(arrays)
            ]
            rows = row_fn(*leaves)
        found = torch.autograd.grad(
            rows, [leaves[i] for i in wanted], grad_rows[s : s + size], allow_unused=True
        )
        for i, grad in zip(wanted, found, strict=True):
            grads[i][s : s + size] = 0.0 if grad is None else grad


def _kl_chunk_grads(
    a: torch.Tensor,
    b: torch.Tensor,
    grad_rows: torch.Tensor,
    out_a: torch.Tensor | None,
    out_b: torch.Tensor | None,
    *,
    logits: bool = False,
) -> None:
    """The gradients of rows ``KL = Σ p·(log p − log q)`` written into ``out_a`` / ``out_b``
    (``r`` the masked log-ratio, ``g`` the rows' cotangent). Of log-probabilities
    ``(a, b)``: ``g·p·(r + 1)`` and ``−g·p``, as :class:`_KLRows`; of logits (``logits``):
    ``g·p·(r − KL)`` and ``g·(q − p)``."""
    if logits:
        a, b = torch.log_softmax(a, dim=-1), torch.log_softmax(b, dim=-1)
    p = torch.exp(a)
    ratio = _masked_log_ratio(a, b, p)
    grad = grad_rows.unsqueeze(-1)
    if out_a is not None and logits:
        ratio.sub_(torch.sum(p * ratio, dim=-1, keepdim=True))
        torch.mul(ratio, p, out=out_a).mul_(grad)
    elif out_a is not None:
        torch.addcmul(p, p, ratio, out=out_a).mul_(grad)
    if out_b is not None and logits:
        torch.sub(b.exp_(), p, out=out_b).mul_(grad)  # b: this chunk's own log-softmax
    elif out_b is not None:
        torch.mul(p, grad, out=out_b).neg_()


_KL_LOGITS_CHUNK_GRADS = functools.partial(_kl_chunk_grads, logits=True)
# RowFn.closed_form -> the function that writes a chunk's gradients in place
_CLOSED_FORMS: dict[str, Callable[..., None]] = {
    "kl": _kl_chunk_grads,
    "kl_reverse": _kl_chunk_grads,
    "kl_logits": _KL_LOGITS_CHUNK_GRADS,
    "kl_logits_reverse": _KL_LOGITS_CHUNK_GRADS,
}


def _transformed(x: torch.Tensor) -> bool:
    """True for a tensor under torch.func (grad, vmap) or carrying a forward-mode tangent."""
    if torch._C._functorch.is_functorch_wrapped_tensor(x):
        return True
    dual = torch.autograd.forward_ad.unpack_dual(x)  # type: ignore[no-untyped-call]
    return dual.tangent is not None


def chunked_rows(row_fn: Any, arrays: tuple[torch.Tensor, ...], rows_per_chunk: int) -> Any:
    """``row_fn(*arrays)`` for 2-D ``arrays`` (rows on axis 0), ``rows_per_chunk`` rows at a
    time. None (declined) under torch.func and forward-mode AD: the caller then runs
    ``row_fn`` on the whole input."""
    if any(_transformed(a) for a in arrays):
        return None
    if torch.is_grad_enabled() and any(a.requires_grad for a in arrays):
        return _ChunkedRows.apply(row_fn, rows_per_chunk, *arrays)  # type: ignore[no-untyped-call]
    total = arrays[0].shape[0]
    pieces = [
        row_fn(*(a[s : s + rows_per_chunk] for a in arrays)) for s in _spans(total, rows_per_chunk)
    ]
    return torch.cat(pieces)
