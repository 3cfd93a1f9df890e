"""The Tinker adapter: data-aware regularizers for ``TrainingClient.forward_backward_custom``.

The Python form of the Tinkex regularizer pipeline. :func:`compose` adds weighted
:class:`RegularizerSpec` terms to a base loss over a batch of Tinker datums and
their per-datum log-prob tensors, and reports values, contributions, custom
metrics and (optionally) gradient norms with respect to the log-probs;
:func:`as_custom_loss_fn` wraps it for ``forward_backward_custom``. The built-ins
(:func:`l1`, :func:`kl_to_reference`, :func:`entropy`, ...) read masks and
references from each datum's ``loss_fn_inputs``.

Imports torch; the ``tinker`` package itself is optional: a datum is anything with
a ``loss_fn_inputs`` mapping whose values are ``TensorData``-like (``.to_torch()``),
torch tensors or arrays.

Examples
--------
>>> import torch
>>> from arraypenalties import tinker as apt
>>> loss_fn = apt.as_custom_loss_fn(
...     lambda data, lps: -torch.cat(lps).mean(),
...     [apt.l2(weight=0.1, reduction="mean")],
... )
>>> loss, metrics = loss_fn(None, [torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)])
>>> round(loss.item(), 4), round(metrics["reg/l2_weight_decay/value"], 4)
(2.4667, 4.6667)
"""

from arraypenalties.tinker._builtins import (
    consistency,
    elastic_net,
    entropy,
    gradient_penalty,
    kl_to_reference,
    l1,
    l2,
    orthogonality,
    output_magnitude,
)
from arraypenalties.tinker._compose import EVENTS, as_custom_loss_fn, compose
from arraypenalties.tinker._report import BaseLossOutput, CustomLossOutput, RegularizerOutput
from arraypenalties.tinker._specs import RegularizerError, RegularizerSpec
from arraypenalties.tinker._tracker import (
    compute_grad_norm,
    grad_norm_for_regularizer,
    total_grad_norm,
)

__all__ = [
    "EVENTS",
    "BaseLossOutput",
    "CustomLossOutput",
    "RegularizerError",
    "RegularizerOutput",
    "RegularizerSpec",
    "as_custom_loss_fn",
    "compose",
    "compute_grad_norm",
    "consistency",
    "elastic_net",
    "entropy",
    "grad_norm_for_regularizer",
    "gradient_penalty",
    "kl_to_reference",
    "l1",
    "l2",
    "orthogonality",
    "output_magnitude",
    "total_grad_norm",
]
