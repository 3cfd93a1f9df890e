"""The report of one custom-loss call: the Tinkex JSON shape and flat metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from arraypenalties import InvalidTypeError, InvalidValueError

__all__ = ["BaseLossOutput", "CustomLossOutput", "RegularizerOutput"]


@dataclass(frozen=True)
class BaseLossOutput:
    """The base loss: its value, gradient norm (None when not tracked or failed), metrics."""

    value: float
    grad_norm: float | None = None
    custom: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "grad_norm": self.grad_norm, "custom": dict(self.custom)}


@dataclass(frozen=True)
class RegularizerOutput:
    """One regularizer: raw ``value``, ``weight``, ``contribution = weight · value``.

    ``grad_norm`` is ‖∂value/∂logprobs‖ (unweighted), ``grad_norm_weighted`` is
    ``weight · grad_norm``; both None when not tracked or when the norm failed.
    """

    name: str
    value: float
    weight: float
    contribution: float
    grad_norm: float | None = None
    grad_norm_weighted: float | None = None
    custom: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "weight": self.weight,
            "contribution": self.contribution,
            "grad_norm": self.grad_norm,
            "grad_norm_weighted": self.grad_norm_weighted,
            "custom": dict(self.custom),
        }


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        msg = f"`prefix` must be a str; got {type(prefix).__name__}"
        raise InvalidTypeError(msg)
    if ":" in prefix:
        msg = f"`prefix` must not contain ':' (Tinker reads it as a reduction); got {prefix!r}"
        raise InvalidValueError(msg)
    return prefix


@dataclass(frozen=True)
class CustomLossOutput:
    """What :func:`~arraypenalties.tinker.compose` reports (the Tinkex ``CustomLossOutput``).

    Attributes
    ----------
    loss_total : float
        ``base_loss.value + regularizer_total``.
    base_loss : BaseLossOutput
    regularizers : mapping of str to RegularizerOutput
        Insertion-ordered, enabled regularizers only.
    regularizer_total : float
        Sum of the contributions.
    total_grad_norm : float or None
        ‖∂loss_total/∂logprobs‖ over every datum; None when not tracked or when a
        term's norm failed.
    tracked : bool
        Whether gradient norms were asked for (tells "failed" from "not tracked").

    Examples
    --------
    >>> from arraypenalties.tinker import BaseLossOutput, CustomLossOutput, RegularizerOutput
    >>> reg = RegularizerOutput("l1", value=10.0, weight=0.1, contribution=1.0)
    >>> report = CustomLossOutput(2.0, BaseLossOutput(1.0), {"l1": reg}, 1.0, None)
    >>> report.to_metrics(prefix="train/")
    {'train/loss_total': 2.0, 'train/base_loss': 1.0, 'train/regularizer_total': 1.0,
     'train/reg/l1/value': 10.0, 'train/reg/l1/weight': 0.1, 'train/reg/l1/contribution': 1.0}
    >>> sorted(report.to_dict())
    ['base_loss', 'loss_total', 'regularizer_total', 'regularizers']
    """

    loss_total: float
    base_loss: BaseLossOutput
    regularizers: Mapping[str, RegularizerOutput]
    regularizer_total: float
    total_grad_norm: float | None = None
    tracked: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "regularizers", MappingProxyType(dict(self.regularizers)))

    def to_dict(self) -> dict[str, Any]:
        """The Tinkex JSON shape; ``total_grad_norm`` only when gradient norms were tracked."""
        out: dict[str, Any] = {
            "loss_total": self.loss_total,
            "base_loss": self.base_loss.to_dict(),
            "regularizers": {name: reg.to_dict() for name, reg in self.regularizers.items()},
            "regularizer_total": self.regularizer_total,
        }
        if self.tracked:
            out["total_grad_norm"] = self.total_grad_norm
        return out

    def to_metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat ``dict[str, float]`` for Tinker's metrics (keys without ``:``).

        Keys: ``loss_total``, ``base_loss``, ``regularizer_total``, ``base/<custom>``,
        ``reg/<name>/value|weight|contribution|<custom>``; with tracking also
        ``total_grad_norm``, ``base/grad_norm`` and ``reg/<name>/grad_norm|grad_norm_weighted``,
        where a failed norm is ``.../grad_norm_error = 1.0`` instead.
        """
        prefix = check_prefix(prefix)
        metrics: dict[str, float] = {
            "loss_total": self.loss_total,
            "base_loss": self.base_loss.value,
            "regularizer_total": self.regularizer_total,
        }
        if self.tracked:
            _norm(metrics, "total_grad_norm", self.total_grad_norm)
            _norm(metrics, "base/grad_norm", self.base_loss.grad_norm)
        for key, value in self.base_loss.custom.items():
            metrics[f"base/{key}"] = value
        for name, reg in self.regularizers.items():
            head = f"reg/{name}/"
            metrics[head + "value"] = reg.value
            metrics[head + "weight"] = reg.weight
            metrics[head + "contribution"] = reg.contribution
            if self.tracked:
                _norm(metrics, head + "grad_norm", reg.grad_norm)
                if reg.grad_norm is not None:
                    weighted = reg.grad_norm_weighted
                    metrics[head + "grad_norm_weighted"] = (
                        reg.weight * reg.grad_norm if weighted is None else weighted
                    )
            for key, value in reg.custom.items():
                metrics[head + key] = value
        return {prefix + key: value for key, value in metrics.items()}


def _norm(metrics: dict[str, float], key: str, norm: float | None) -> None:
    if norm is None:
        metrics[key + "_error"] = 1.0
    else:
        metrics[key] = norm
