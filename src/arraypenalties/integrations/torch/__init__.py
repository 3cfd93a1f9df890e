"""PyTorch training-loop integrations (imports torch).

- :func:`wrap_loss`, :func:`wrap_loss_with_pipeline`: a loss function plus penalties;
- :func:`parameter_penalty`: a penalty over a model's parameters, chosen by name;
- :class:`ActivityRegularizer`: penalties on submodule outputs, by forward hooks;
- :func:`make_train_step`: forward, losses, penalties, backward, transforms,
  optimizer step, weight schedules and metrics from one host transfer;
- :func:`apply_transforms`: arraypenalties gradient transforms as an optimizer hook.

Nothing else in arraypenalties imports this package.
"""

from arraypenalties.integrations.torch._activity import ActivityRegularizer
from arraypenalties.integrations.torch._loss import (
    parameter_penalty,
    select_parameters,
    wrap_loss,
    wrap_loss_with_pipeline,
)
from arraypenalties.integrations.torch._train_step import TrainStep, make_train_step
from arraypenalties.integrations.torch._transforms import (
    TransformHook,
    TransformRunner,
    apply_transforms,
)

__all__ = [
    "ActivityRegularizer",
    "TrainStep",
    "TransformHook",
    "TransformRunner",
    "apply_transforms",
    "make_train_step",
    "parameter_penalty",
    "select_parameters",
    "wrap_loss",
    "wrap_loss_with_pipeline",
]
