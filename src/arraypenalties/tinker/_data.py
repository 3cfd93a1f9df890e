"""Reading Tinker data: duck-typed datums, their fields, masks and the log-prob list.

A datum is anything with a ``loss_fn_inputs`` mapping (``tinker.Datum`` or a
stand-in); a field value is a ``TensorData``-like object with ``.to_torch()``,
a torch tensor, or an array torch can read (numpy). ``tinker`` is never imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from arraypenalties import InvalidTypeError, InvalidValueError

__all__ = [
    "as_tensor",
    "check_batch",
    "check_mask",
    "field",
    "mask_weights",
    "references",
]

MaskOption = str | None


def as_tensor(value: object, what: str) -> torch.Tensor:
    """A torch tensor from a ``TensorData``-like value, a tensor or an array."""
    if isinstance(value, torch.Tensor):
        return value
    to_torch = getattr(value, "to_torch", None)
    if callable(to_torch):
        tensor = to_torch()
        if isinstance(tensor, torch.Tensor):
            return tensor
    elif hasattr(value, "__array__") or hasattr(value, "__dlpack__"):
        return torch.as_tensor(value)
    msg = (
        f"{what} must be a TensorData (with .to_torch()), a torch tensor or an array; "
        f"got {type(value).__name__}"
    )
    raise InvalidTypeError(msg)


def _inputs(datum: object, index: int) -> Mapping[str, Any]:
    inputs = getattr(datum, "loss_fn_inputs", None)
    if not isinstance(inputs, Mapping):
        msg = (
            f"datum {index} must have a `loss_fn_inputs` mapping (a tinker.Datum); "
            f"got {type(datum).__name__}"
        )
        raise InvalidTypeError(msg)
    return inputs


def field(datum: object, index: int, name: str, *, required: bool = True) -> torch.Tensor | None:
    """The field ``name`` of datum ``index`` as a tensor (None when absent and not required)."""
    inputs = _inputs(datum, index)
    if name not in inputs:
        if not required:
            return None
        msg = f"datum {index} has no `loss_fn_inputs` field {name!r}; it has {sorted(inputs)}"
        raise InvalidValueError(msg)
    return as_tensor(inputs[name], f"field {name!r} of datum {index}")


def check_batch(data: object, logprobs_list: object) -> tuple[Sequence[Any], list[torch.Tensor]]:
    """``data`` and ``logprobs_list`` as sequences of equal length; log-probs floating tensors."""
    if isinstance(logprobs_list, torch.Tensor) or not isinstance(logprobs_list, Sequence):
        msg = (
            "`logprobs_list` must be a list with one log-prob tensor per datum; "
            f"got {type(logprobs_list).__name__}"
        )
        raise InvalidTypeError(msg)
    if data is None:
        data = [None] * len(logprobs_list)
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        msg = f"`data` must be a list of datums; got {type(data).__name__}"
        raise InvalidTypeError(msg)
    if len(data) != len(logprobs_list):
        msg = (
            f"`data` and `logprobs_list` must have one entry per datum; got {len(data)} "
            f"datums and {len(logprobs_list)} log-prob tensors"
        )
        raise InvalidValueError(msg)
    for index, logprobs in enumerate(logprobs_list):
        if not isinstance(logprobs, torch.Tensor) or not logprobs.is_floating_point():
            got = logprobs.dtype if isinstance(logprobs, torch.Tensor) else type(logprobs).__name__
            msg = f"`logprobs_list[{index}]` must be a floating torch tensor; got {got}"
            raise InvalidTypeError(msg)
        if logprobs.ndim not in (1, 2):
            msg = (
                f"`logprobs_list[{index}]` must have shape [T] or [T, K]; "
                f"got {tuple(logprobs.shape)}"
            )
            raise InvalidValueError(msg)
    return data, list(logprobs_list)


def check_mask(mask: object) -> MaskOption:
    if mask is None or isinstance(mask, str):
        return mask
    msg = f"`mask` must be a field name (default 'weights') or None; got {mask!r}"
    raise InvalidTypeError(msg)


def mask_weights(
    datum: object, index: int, logprobs: torch.Tensor, mask: MaskOption
) -> torch.Tensor | None:
    """The datum's mask field (``[T]`` or the log-probs' shape), or None when it has none."""
    if mask is None or datum is None:
        return None
    weights = field(datum, index, mask, required=False)
    if weights is None:
        return None
    if weights.dtype != logprobs.dtype or weights.device != logprobs.device:
        weights = weights.to(dtype=logprobs.dtype, device=logprobs.device)
    shape, rows = tuple(weights.shape), tuple(logprobs.shape[:1])
    if shape != tuple(logprobs.shape) and shape != rows:
        msg = (
            f"mask field {mask!r} of datum {index} has shape {shape}; it must match the "
            f"log-probs' shape {tuple(logprobs.shape)} or their rows {rows}"
        )
        raise InvalidValueError(msg)
    return weights


def references(
    reference: object, data: Sequence[Any], logprobs_list: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """One reference tensor per datum, detached, in the log-probs' dtype and shape."""
    if isinstance(reference, str):
        items: Sequence[Any] = [field(datum, index, reference) for index, datum in enumerate(data)]
    elif callable(reference):
        items = _call_reference(reference, data)
    elif isinstance(reference, Sequence):
        items = reference
    else:
        msg = (
            "`reference` must be a loss_fn_inputs field name, a per-datum list or a callable "
            f"reference(data) -> list; got {type(reference).__name__}"
        )
        raise InvalidTypeError(msg)
    if len(items) != len(logprobs_list):
        msg = f"`reference` must give one item per datum ({len(logprobs_list)}); got {len(items)}"
        raise InvalidValueError(msg)
    out = []
    for index, (item, logprobs) in enumerate(zip(items, logprobs_list, strict=True)):
        tensor = as_tensor(item, f"reference {index}")
        if tuple(tensor.shape) != tuple(logprobs.shape):
            msg = (
                f"reference {index} has shape {tuple(tensor.shape)}; datum {index}'s log-probs "
                f"have shape {tuple(logprobs.shape)} (each datum is aligned with its own reference)"
            )
            raise InvalidValueError(msg)
        if tensor.dtype != logprobs.dtype or tensor.device != logprobs.device:
            tensor = tensor.to(dtype=logprobs.dtype, device=logprobs.device)
        out.append(tensor.detach())
    return out


def _call_reference(reference: Callable[[Any], Any], data: Sequence[Any]) -> Sequence[Any]:
    items = reference(data)
    if isinstance(items, torch.Tensor) or not isinstance(items, Sequence):
        msg = f"`reference(data)` must return a list; got {type(items).__name__}"
        raise InvalidTypeError(msg)
    return items
