"""Activity regularisation: penalties on the outputs of named submodules, by forward hooks."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

import torch

from arraypenalties._lib.checks import check_bool
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError, UnknownNameError
from arraypenalties._lib.namespace import describe_type
from arraypenalties.backends import primitives
from arraypenalties.integrations.torch._common import (
    check_penalty,
    check_weight,
    inner_module,
    zero_like_module,
)
from arraypenalties.pipelines import Pipeline

__all__ = ["ActivityRegularizer"]


def _unknown_path(path: object, paths: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(str(path), paths, n=5, cutoff=0.5)
    hint = f"close names: {close}" if close else f"submodule paths are {paths[:12]}"
    if not close and len(paths) > 12:
        hint = hint[:-1] + ", ...]"
    msg = f"`activity` path {path!r} is not a submodule of the model (named_modules()); {hint}"
    return UnknownNameError(msg)


def _output_tensor(output: Any, path: str) -> torch.Tensor:
    # recurrent layers return (output, state): the first element is the activity
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        msg = (
            f"the output of submodule {path!r} must be a tensor (or a tuple whose first "
            f"element is one) to be penalised; got {describe_type(output)}"
        )
        raise InvalidTypeError(msg)
    return output


class ActivityRegularizer:
    """Penalise the outputs of named submodules, as Keras' ``activity_regularizer``.

    Registers a forward hook on each named submodule. Every forward call of a
    hooked module adds its weighted penalty (a module called twice adds twice);
    :meth:`loss` returns the sum since the last :meth:`loss` / :meth:`clear`,
    then forgets the captured values and so releases their autograd graphs.

    Parameters
    ----------
    model : torch.nn.Module
        The model (a ``DistributedDataParallel`` or ``torch.compile`` wrapper is
        looked through: paths are those of ``model.named_modules()`` of the
        model you built).
    penalties : mapping of str to (penalty, weight) or Pipeline
        Per submodule path (``"encoder.2"``; ``""`` is the model itself): a
        ``(penalty, weight)`` pair (``penalty`` a callable or a one-input
        built-in name) or a :class:`~arraypenalties.Pipeline` (its
        ``compute_total``, weight 1).
    per_sample : bool, default False
        Divide every term by the batch size (the output's first dimension), as
        Keras does.

    Raises
    ------
    UnknownNameError
        A path is not a submodule; the message lists close names.
    InvalidTypeError, InvalidValueError
        A bad penalty spec or weight.

    Notes
    -----
    Captured values are held until :meth:`loss` or :meth:`clear`: in an
    evaluation loop that does not call :meth:`loss`, call :meth:`clear` (or
    :meth:`remove` the hooks). A module's output that is a tuple (recurrent
    layers' ``(output, state)``) is penalised through its first element.

    Examples
    --------
    >>> import torch
    >>> from arraypenalties.integrations.torch import ActivityRegularizer
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    >>> with ActivityRegularizer(model, {"1": ("l1", 0.01)}) as activity:
    ...     out = model(torch.ones(4, 2))
    ...     metrics = activity.metrics()
    ...     penalty = activity.loss()  # add it to the loss
    >>> sorted(metrics)
    ['1', '1_weighted']
    >>> activity.loss()  # reset by the first call
    tensor(0.)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        penalties: Mapping[str, tuple[Callable[..., Any] | str, float] | Pipeline],
        *,
        per_sample: bool = False,
    ) -> None:
        module = inner_module(model)
        if not isinstance(penalties, Mapping) or not penalties:
            msg = (
                "`penalties` must be a non-empty mapping of submodule paths to (penalty, "
                f"weight) or Pipeline; got {penalties!r}"
            )
            raise InvalidTypeError(msg)
        check_bool(per_sample, "per_sample")
        modules = dict(module.named_modules())
        self.per_sample = per_sample
        self.paths: tuple[str, ...] = tuple(penalties)
        self._fns: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        self._weights: dict[str, float] = {}
        for path, spec in penalties.items():
            if path not in modules:
                raise _unknown_path(path, list(modules))
            self._fns[path], self._weights[path] = self._parse(path, spec)
        self._module = module
        self._raw: dict[str, list[torch.Tensor]] = {path: [] for path in self.paths}
        self._handles = [
            modules[path].register_forward_hook(self._hook(path)) for path in self.paths
        ]

    @staticmethod
    def _parse(path: str, spec: object) -> tuple[Callable[[torch.Tensor], torch.Tensor], float]:
        if isinstance(spec, Pipeline):
            return spec.compute_total, 1.0
        if not (isinstance(spec, tuple) and len(spec) == 2):
            msg = (
                f"`penalties[{path!r}]` must be a (penalty, weight) pair or a Pipeline; "
                f"got {spec!r}"
            )
            raise InvalidTypeError(msg)
        return check_penalty(spec[0], f"penalties[{path!r}]"), check_weight(
            spec[1], f"penalties[{path!r}] weight"
        )

    def _hook(self, path: str) -> Callable[..., None]:
        fn, store = self._fns[path], self._raw[path]

        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            activity = _output_tensor(output, path)
            value = fn(activity)
            if self.per_sample:
                if activity.ndim == 0:
                    msg = f"`per_sample=True` needs a batch axis; submodule {path!r} returned 0-d"
                    raise InvalidValueError(msg)
                value = value / activity.shape[0]
            store.append(value)

        return hook

    @property
    def weights(self) -> dict[str, float]:
        """The weight of every path (1.0 for pipelines); :meth:`set_weight` changes one."""
        return dict(self._weights)

    def set_weight(self, path: str, weight: float) -> None:
        """Use ``weight`` for the terms of ``path`` from now on (weight schedules)."""
        if path not in self._weights:
            raise _unknown_path(path, list(self.paths))
        self._weights[path] = check_weight(weight, "weight")

    def _sums(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per path: the raw sum and the weighted sum of the captured values (with graphs)."""
        raws, weighted = [], []
        for path in self.paths:
            values = self._raw[path]
            raw = values[0] if values else zero_like_module(self._module)
            for value in values[1:]:
                raw = raw + value
            raws.append(raw)
            weighted.append(self._weights[path] * raw)
        return raws, weighted

    def collect(self) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """``(loss, raw per path, weighted per path)`` as tensors, then reset (no host transfer)."""
        raws, weighted = self._sums()
        total = weighted[0]
        for term in weighted[1:]:
            total = total + term
        self.clear()
        return total, raws, weighted

    def loss(self) -> torch.Tensor:
        """The weighted sum since the last reset (a 0-d zero if nothing was captured); resets."""
        return self.collect()[0]

    def metrics(self) -> dict[str, float]:
        """``{"<path>": raw, "<path>_weighted": weighted}`` since the last reset, one transfer.

        Does not reset. Paths not called since the reset report 0.0.
        """
        raws, weighted = self._sums()
        parts = [value.detach() for value in (*raws, *weighted)]
        dtype = torch.float64 if any(p.dtype == torch.float64 for p in parts) else torch.float32
        stacked = torch.stack([part.to(dtype) for part in parts])
        floats = primitives.to_floats(stacked)
        count = len(self.paths)
        out: dict[str, float] = {}
        for index, path in enumerate(self.paths):
            out[path] = floats[index]
            out[f"{path}_weighted"] = floats[count + index]
        return out

    def clear(self) -> None:
        """Forget every captured value (and the autograd graphs they hold)."""
        for values in self._raw.values():
            values.clear()

    def remove(self) -> None:
        """Detach every hook and forget the captured values."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.clear()

    def __enter__(self) -> ActivityRegularizer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
