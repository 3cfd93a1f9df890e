"""The output penalties of a train step: a Pipeline's terms on the model output, as tensors.

The train step needs each entry's value, weighted value and (on tracked steps) the
gradient norms as tensors, to stack them with the rest of its metrics for one
host transfer, and it weights the entries itself so that scheduled weights do
not rebuild the pipeline every step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type
from arraypenalties.pipelines import Entry, Pipeline
from arraypenalties.tracking import GradPlan, tracked_gradients

__all__ = ["OutputPenalties", "OutputTerms", "add_all"]


@dataclass
class OutputTerms:
    """One step's output penalties: tensors, and which gradient norms exist."""

    total: torch.Tensor
    values: list[torch.Tensor]
    weighted: list[torch.Tensor]
    norms: list[torch.Tensor] = field(default_factory=list)
    present: tuple[bool, ...] = ()  # per tracked entry: has a norm
    total_norm: bool = False
    failures: dict[str, str] = field(default_factory=dict)
    tracked: bool = False

    def keys(self, names: Sequence[str], tracked_names: Sequence[str]) -> list[str]:
        """The metric keys of :meth:`parts`, in order (as ``Pipeline.compute`` orders them)."""
        keys = [key for name in names for key in (name, f"{name}_weighted")]
        keys.append("total")
        if self.tracked:
            keys += [
                f"{name}_grad_norm"
                for name, present in zip(tracked_names, self.present, strict=True)
                if present
            ]
            if self.total_norm:
                keys.append("total_grad_norm")
        return keys

    def parts(self) -> list[torch.Tensor]:
        """Value and weighted value of each entry, the total, then the gradient norms."""
        pairs = zip(self.values, self.weighted, strict=True)
        return [*(part for pair in pairs for part in pair), self.total, *self.norms]


def _bind(entry: Entry) -> Callable[[torch.Tensor], torch.Tensor]:
    kwargs = entry.call_opts(None)
    return lambda x: entry.fn(x, **kwargs)


class OutputPenalties:
    """The enabled entries of a :class:`~arraypenalties.Pipeline`, ready for every step."""

    def __init__(self, pipeline: object) -> None:
        if not isinstance(pipeline, Pipeline):
            msg = (
                "`penalties` must be an arraypenalties.Pipeline (of the model output) or None; "
                f"got {describe_type(pipeline)}"
            )
            raise InvalidTypeError(msg)
        self.entries = tuple(entry for entry in pipeline.entries if entry.enabled)
        self.names = tuple(entry.name for entry in self.entries)
        self.all_names = pipeline.names
        self._fns = [_bind(entry) for entry in self.entries]
        tracked = [i for i, entry in enumerate(self.entries) if entry.differentiable]
        self._tracked = tuple(tracked)
        self.tracked_names = tuple(self.names[i] for i in tracked)

    def _checked(self, index: int, value: Any, out: torch.Tensor) -> torch.Tensor:
        if not isinstance(value, torch.Tensor) or value.ndim != 0:
            got = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else value
            msg = f"entry {self.names[index]!r} must return a 0-d tensor; got {got}"
            raise InvalidValueError(msg)
        return value if value.is_floating_point() else value.to(out.dtype)

    def terms(self, out: object, weights: Sequence[float], *, track: bool) -> OutputTerms:
        """Values, weighted values and total at ``out``; gradient norms w.r.t. ``out`` if ``track``.

        Tracking is one forward pass of each penalty and one backward pass each
        (``retain_graph``: the values stay differentiable through the model).
        """
        if not isinstance(out, torch.Tensor):
            msg = f"output penalties need the model output to be a tensor; got {describe_type(out)}"
            raise InvalidTypeError(msg)
        values: list[Any] = [None] * len(self.entries)
        result = OutputTerms(out, [], [], tracked=track)  # the total is set below
        if track and self._tracked:
            plan = GradPlan(
                self.tracked_names,
                tuple(self._fns[i] for i in self._tracked),
                tuple(weights[i] for i in self._tracked),
                out,
            )
            tracked = tracked_gradients(plan, keep_graph=True)
            for index, value in zip(self._tracked, tracked.values, strict=True):
                values[index] = value
            result.norms = [norm for norm in tracked.norms if norm is not None]
            result.present = tuple(norm is not None for norm in tracked.norms)
            result.failures = tracked.failures
            if tracked.total_norm is not None:
                result.norms.append(tracked.total_norm)
                result.total_norm = True
        for index, fn in enumerate(self._fns):
            value = values[index] if values[index] is not None else fn(out)
            result.values.append(self._checked(index, value, out))
        result.weighted = [w * v for w, v in zip(weights, result.values, strict=True)]
        result.total = add_all(result.weighted, out)
        return result


def add_all(terms: Sequence[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """``Σ terms`` without a leading zero (one addition fewer), or a 0-d zero of ``like``."""
    if not terms:
        return like.new_zeros(())
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
