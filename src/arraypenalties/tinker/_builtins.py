"""Built-in data-aware regularizers on the log-probs themselves (the Tinkex adapters).

Each returns a :class:`RegularizerSpec`; its options are those of the core
function of the same name, checked when the spec is built. Masks come from each
datum's ``weights`` field (``mask="weights"``): per-position multipliers, 0 on
prompt positions; ``"mean"`` divides by the sum of the weights over the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

import arraypenalties as ap
from arraypenalties import InvalidValueError
from arraypenalties.tinker._data import MaskOption, check_mask
from arraypenalties.tinker._gather import elements, need_rows, reduce, selected
from arraypenalties.tinker._reference import consistency, entropy, gradient_penalty, kl_to_reference
from arraypenalties.tinker._specs import RegularizerSpec, whole_batch_spec

__all__ = [
    "consistency",
    "elastic_net",
    "entropy",
    "gradient_penalty",
    "kl_to_reference",
    "l1",
    "l2",
    "orthogonality",
    "output_magnitude",
]

Fn = Callable[[Sequence[Any], Sequence[torch.Tensor]], torch.Tensor]
_PROBE = torch.tensor([0.25, -0.5], dtype=torch.float64)


def _choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        msg = f"`{name}` must be one of {list(allowed)}; got {value!r}"
        raise InvalidValueError(msg)
    return value


def _elementwise(
    core: Callable[..., torch.Tensor],
    options: dict[str, Any],
    *,
    weight: float,
    name: str,
    mask: MaskOption,
    reduction: str,
    target: str,
) -> RegularizerSpec:
    reduction = _choice(reduction, "reduction", ("sum", "mean"))
    target = _choice(target, "target", ("logprobs", "probs"))
    mask = check_mask(mask)
    core(_PROBE, **options, reduction="none")  # the core function checks its options now

    def fn(data: Sequence[Any], logprobs_list: Sequence[torch.Tensor]) -> Any:
        x, w, _ = elements(data, logprobs_list, mask)
        if target == "probs":
            x = torch.exp(x)
        return reduce(core(x, **options, reduction="none"), w, reduction)

    return whole_batch_spec(fn, weight, name)


def l1(
    *,
    weight: float,
    name: str = "l1_sparsity",
    mask: MaskOption = "weights",
    lam: float = 1.0,
    reduction: str = "sum",
    target: str = "logprobs",
) -> RegularizerSpec:
    """``lam · Σ w·|x|`` (or its weighted mean); x the log-probs, or their exp (``"probs"``).

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import l1
    >>> spec = l1(weight=0.1)
    >>> spec.name, spec.fn(None, [torch.tensor([1.0, -2.0]), torch.tensor([3.0])]).item()
    ('l1_sparsity', 6.0)
    """
    options = {"lam": lam}
    return _elementwise(
        ap.l1, options, weight=weight, name=name, mask=mask, reduction=reduction, target=target
    )


def l2(
    *,
    weight: float,
    name: str = "l2_weight_decay",
    mask: MaskOption = "weights",
    lam: float = 1.0,
    reduction: str = "sum",
    center: str | float | None = None,
    clip: float | None = None,
    target: str = "logprobs",
) -> RegularizerSpec:
    """``lam · Σ w·(x − c)²`` with the core ``l2``'s ``center`` / ``clip``.

    ``center="mean"`` is the weighted mean over the unmasked elements of the batch.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import l2
    >>> l2(weight=0.5).fn(None, [torch.tensor([1.0, 2.0, 3.0])]).item()
    14.0
    """
    reduction = _choice(reduction, "reduction", ("sum", "mean"))
    target = _choice(target, "target", ("logprobs", "probs"))
    mask = check_mask(mask)
    by_mean = isinstance(center, str) and center == "mean"
    options: dict[str, Any] = {"lam": lam, "clip": clip, "center": None if by_mean else center}
    ap.l2(_PROBE, **options, reduction="none")
    if not by_mean:
        return _elementwise(
            ap.l2, options, weight=weight, name=name, mask=mask, reduction=reduction, target=target
        )

    def fn(data: Sequence[Any], logprobs_list: Sequence[torch.Tensor]) -> Any:
        x, w, _ = elements(data, logprobs_list, mask)
        if target == "probs":
            x = torch.exp(x)
        c = reduce(x, w, "mean")
        return reduce(ap.l2(x - c, **options, reduction="none"), w, reduction)

    return whole_batch_spec(fn, weight, name)


def elastic_net(
    *,
    weight: float,
    name: str = "elastic_net",
    mask: MaskOption = "weights",
    lam: float = 1.0,
    l1_ratio: float = 0.5,
    reduction: str = "sum",
    target: str = "logprobs",
) -> RegularizerSpec:
    """``lam · Σ w·(α|x| + (1 − α)x²)``, α = ``l1_ratio`` (the core ``elastic_net``, no ½).

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import elastic_net
    >>> elastic_net(weight=1.0).fn(None, [torch.tensor([1.0, 2.0])]).item()
    4.0
    """
    options = {"lam": lam, "l1_ratio": l1_ratio}
    return _elementwise(
        ap.elastic_net,
        options,
        weight=weight,
        name=name,
        mask=mask,
        reduction=reduction,
        target=target,
    )


def output_magnitude(
    *,
    weight: float,
    name: str = "output_magnitude",
    mask: MaskOption = "weights",
    target: float = 1.0,
    reduction: str = "mean",
) -> RegularizerSpec:
    """``(m − target)²`` with m the RMS (``"mean"``) or 2-norm (``"sum"``) of the kept log-probs.

    Positions whose weight is 0 are left out (weights select here, they do not scale).

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import output_magnitude
    >>> output_magnitude(weight=1.0).fn(None, [torch.tensor([-2.0, -2.0])]).item()
    1.0
    """
    mask = check_mask(mask)
    ap.output_magnitude_penalty(_PROBE, target=target, reduction=reduction)

    def fn(data: Sequence[Any], logprobs_list: Sequence[torch.Tensor]) -> Any:
        kept = selected(data, logprobs_list, mask, "output_magnitude")
        x = torch.cat([t.reshape(-1) for t in kept])
        return ap.output_magnitude_penalty(x, target=target, reduction=reduction)

    return whole_batch_spec(fn, weight, name)


def orthogonality(
    *,
    weight: float,
    name: str = "orthogonality",
    mask: MaskOption = "weights",
    mode: str = "soft",
    normalize: bool = True,
) -> RegularizerSpec:
    """Core ``orthogonality`` of the kept rows of every ``[T, K]`` datum, stacked ``[N, K]``.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.tinker import orthogonality
    >>> rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    >>> round(orthogonality(weight=1.0).fn(None, [rows]).item(), 5)
    2.0
    """
    mask = check_mask(mask)
    ap.orthogonality(torch.eye(2, dtype=torch.float64), mode=mode, normalize=normalize)

    def fn(data: Sequence[Any], logprobs_list: Sequence[torch.Tensor]) -> Any:
        need_rows(logprobs_list, "orthogonality")
        kept = selected(data, logprobs_list, mask, "orthogonality")
        return ap.orthogonality(torch.cat(kept), mode=mode, normalize=normalize)

    return whole_batch_spec(fn, weight, name)
