"""Batch layouts the built-ins share: masked elements or rows of every datum, concatenated.

Elements (or rows) whose weight is 0 are replaced by 0 before any math, so a
prompt position holding ``-inf`` or NaN reaches neither the value nor the
gradient (the "double where"); their weight then removes them from the sums.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from arraypenalties import InvalidValueError
from arraypenalties.tinker._data import MaskOption, mask_weights

__all__ = ["elements", "need_rows", "per_row", "reduce", "rows", "selected"]


def _datums(data: Sequence[Any] | None, count: int) -> Sequence[Any]:
    return [None] * count if data is None else data


def _cat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(list(tensors))


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Every tensor flattened, concatenated."""
    return _cat([t if t.ndim == 1 else t.reshape(-1) for t in tensors])


def elements(
    data: Sequence[Any] | None,
    logprobs_list: Sequence[torch.Tensor],
    mask: MaskOption,
    extra: Sequence[Sequence[torch.Tensor]] = (),
) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
    """Every element of every datum, flattened: ``(x, weights or None, extras)``.

    ``extra`` are per-datum tensors shaped like the log-probs (references),
    flattened and masked the same way.
    """
    data = _datums(data, len(logprobs_list))
    weights = [
        mask_weights(d, i, lp, mask)
        for i, (d, lp) in enumerate(zip(data, logprobs_list, strict=True))
    ]
    x = _flat(logprobs_list)
    others = [_flat(tensors) for tensors in extra]
    if all(w is None for w in weights):
        return x, None, others
    full = []
    for w, lp in zip(weights, logprobs_list, strict=True):
        if w is None:
            w = torch.ones_like(lp, requires_grad=False)
        elif w.shape != lp.shape:
            w = w[:, None].expand(lp.shape)
        full.append(w)
    w = _flat(full)
    keep = w != 0
    return torch.where(keep, x, 0.0), w, [torch.where(keep, o, 0.0) for o in others]


def need_rows(logprobs_list: Sequence[torch.Tensor], what: str) -> None:
    for index, logprobs in enumerate(logprobs_list):
        if logprobs.ndim != 2:
            msg = (
                f"{what} needs [T, K] log-probs (K candidates per position, 2-D target tokens); "
                f"datum {index} has shape {tuple(logprobs.shape)}"
            )
            raise InvalidValueError(msg)


def rows(
    data: Sequence[Any] | None,
    logprobs_list: Sequence[torch.Tensor],
    mask: MaskOption,
    extra: Sequence[Sequence[torch.Tensor]] = (),
) -> tuple[list[torch.Tensor], torch.Tensor | None, list[list[torch.Tensor]]]:
    """Per-datum ``[T, K]`` tensors with masked rows zeroed, and one weight per row (or None)."""
    data = _datums(data, len(logprobs_list))
    found = [
        mask_weights(d, i, lp, mask)
        for i, (d, lp) in enumerate(zip(data, logprobs_list, strict=True))
    ]
    if all(w is None for w in found):
        return list(logprobs_list), None, [list(t) for t in extra]
    weights = []
    for w, lp in zip(found, logprobs_list, strict=True):
        if w is None:
            w = torch.ones(lp.shape[:1], dtype=lp.dtype, device=lp.device)
        elif w.ndim == 2:
            w = w.mean(dim=-1)
        weights.append(w)

    def masked(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.where(w[:, None] != 0, t, 0.0) for w, t in zip(weights, tensors, strict=True)]

    return masked(logprobs_list), _cat(weights), [masked(t) for t in extra]


def per_row(fn: Callable[..., torch.Tensor], *groups: Sequence[torch.Tensor]) -> torch.Tensor:
    """``fn`` on the rows of every datum: one call when every datum has the same K."""
    if len({t.shape[-1] for t in groups[0]}) == 1:
        return fn(*(_cat(group) for group in groups))
    return _cat([fn(*items) for items in zip(*groups, strict=True)])


def selected(
    data: Sequence[Any] | None, logprobs_list: Sequence[torch.Tensor], mask: MaskOption, what: str
) -> list[torch.Tensor]:
    """Per datum, only the positions (rows of ``[T, K]``) whose weight is not 0."""
    out = []
    data = _datums(data, len(logprobs_list))
    for index, (datum, lp) in enumerate(zip(data, logprobs_list, strict=True)):
        w = mask_weights(datum, index, lp, mask)
        if w is None:
            out.append(lp)
            continue
        if lp.ndim == 2 and w.ndim == 2:
            w = w.mean(dim=-1)
        out.append(lp[w != 0])
    if len({t.shape[1:] for t in out}) > 1:
        shapes = [tuple(t.shape) for t in out]
        msg = f"{what} needs every datum to have the same K; got shapes {shapes}"
        raise InvalidValueError(msg)
    return out


def reduce(values: torch.Tensor, weights: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """Weighted ``"sum"``, or ``"mean"`` over the weight of the batch (0 when nothing is kept)."""
    if weights is None:
        return torch.sum(values) if reduction == "sum" else torch.mean(values)
    total = torch.sum(values * weights)
    if reduction == "sum":
        return total
    count = torch.sum(weights)
    return torch.where(count != 0, total / torch.where(count != 0, count, 1.0), 0.0)
