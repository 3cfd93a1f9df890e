"""Fused torch kernels for eager mode: the KL rows (with a hand-written backward) and
the entropy rows.

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

from typing import Any

import torch


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
        if torch.is_grad_enabled():  # create_graph: a gradient that is differentiable again
            p = torch.exp(lp)
            ratio = torch.where(p > 0, lp - lq, 0.0)
            grad_lp = (p + p * ratio) * grad if ctx.needs_input_grad[0] else None
            grad_lq = -p * grad if ctx.needs_input_grad[1] else None
            return grad_lp, grad_lq, None
        grad_lp = torch.addcmul(p, p, ratio).mul_(grad) if ctx.needs_input_grad[0] else None
        grad_lq = torch.mul(p, grad.neg()) if ctx.needs_input_grad[1] else None
        return grad_lp, grad_lq, None

    @staticmethod
    def jvp(ctx: Any, tangent_lp: Any, tangent_lq: Any, _axis: Any) -> tuple[Any, None, None]:
        p, ratio = ctx.saved_tensors
        change = torch.zeros_like(p)
        if tangent_lp is not None:
            change = change + torch.addcmul(p, p, ratio) * tangent_lp
        if tangent_lq is not None:
            change = change - p * tangent_lq
        return torch.sum(change, dim=ctx.axis), None, None


def kl_rows(lp: torch.Tensor, lq: torch.Tensor, axis: int) -> torch.Tensor:
    """Per-row ``Σ p·(log p − log q)``, ``p = exp(log p)``: 0 where ``p`` is 0, ``+inf``
    where ``p > 0 = q``. Without autograd the temporary is reused in place."""
    if torch.is_grad_enabled() and (lp.requires_grad or lq.requires_grad):
        rows: torch.Tensor = _KLRows.apply(lp, lq, axis)[0]  # type: ignore[no-untyped-call]
        return rows
    p = torch.exp(lp)
    return _masked_log_ratio(lp, lq, p).mul_(p).sum(dim=axis)


# Above ~32 MB glibc serves each temporary with fresh mmap'd pages, and the page faults of
# a full-size product temporary cost more than the arithmetic: measured on torch CPU
# (float32), the matmul row sum is faster from [512, 32000] (99 vs 121 ms) on, slower up to
# [256, 32000] (22 vs 17 ms) and at [256, 1024] (588 vs 313 µs).
MATMUL_MIN_ELEMENTS = (1 << 23) + 1


def neg_entropy_rows(lp: torch.Tensor, axis: int) -> torch.Tensor:
    """Per-row ``Σ p·log p``, 0 where ``p`` is 0 (``log p`` floored at the lowest finite
    value: a no-op wherever ``p > 0``, and ``0·(-inf)`` becomes ``0·finite``)."""
    p = torch.exp(lp)
    floored = torch.clamp(lp, min=torch.finfo(lp.dtype).min)
    if not (torch.is_grad_enabled() and lp.requires_grad):
        return p.mul_(floored).sum(dim=axis)
    if axis == lp.ndim - 1 and lp.numel() >= MATMUL_MIN_ELEMENTS:
        # a batched matmul multiplies and sums in one kernel, without a full-size
        # product temporary (see MATMUL_MIN_ELEMENTS for when that pays)
        return torch.matmul(p.unsqueeze(-2), floored.unsqueeze(-1))[..., 0, 0]
    return torch.sum(p * floored, dim=axis)
