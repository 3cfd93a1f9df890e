"""arraypenalties: composable regularisation penalties for any Array API array.

The same call works on numpy, PyTorch, JAX, CuPy, array-api-strict and dask
arrays; :mod:`arraypenalties.backends` plugs in each framework's autodiff;
:mod:`arraypenalties.transforms` and :mod:`arraypenalties.schedules` act on
gradients and penalty weights during training.
Importing this package imports no array framework.
"""

from arraypenalties import backends, schedules, telemetry, transforms
from arraypenalties._lib.errors import (
    ArrayPenaltiesError,
    BackendError,
    FiniteDifferenceWarning,
    GradientTrackingWarning,
    InvalidTypeError,
    InvalidValueError,
    NonFiniteError,
    UnknownNameError,
)
from arraypenalties.backends import available_backends, get_backend, register_backend
from arraypenalties.constraints import consistency, orthogonality
from arraypenalties.divergences import (
    entropy,
    entropy_value,
    js_divergence,
    kl_divergence,
    kl_estimate,
)
from arraypenalties.gradient_penalty import gradient_penalty, interpolated_gradient_penalty
from arraypenalties.penalties import elastic_net, l1, l2, output_magnitude_penalty
from arraypenalties.pipelines import (
    MultiPipeline,
    Pipeline,
    compute,
    compute_total,
    pipeline,
    pipeline_grad_norms,
    register_penalty,
    total_grad_norm,
)
from arraypenalties.tracking import grad_norm
from arraypenalties.tree import tree_penalty
from arraypenalties.validation import is_finite, validate

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)

__all__ = [
    "ArrayPenaltiesError",
    "BackendError",
    "FiniteDifferenceWarning",
    "GradientTrackingWarning",
    "InvalidTypeError",
    "InvalidValueError",
    "MultiPipeline",
    "NonFiniteError",
    "Pipeline",
    "UnknownNameError",
    "__version__",
    "available_backends",
    "backends",
    "compute",
    "compute_total",
    "consistency",
    "elastic_net",
    "entropy",
    "entropy_value",
    "get_backend",
    "grad_norm",
    "gradient_penalty",
    "interpolated_gradient_penalty",
    "is_finite",
    "js_divergence",
    "kl_divergence",
    "kl_estimate",
    "l1",
    "l2",
    "orthogonality",
    "output_magnitude_penalty",
    "pipeline",
    "pipeline_grad_norms",
    "register_backend",
    "register_penalty",
    "schedules",
    "telemetry",
    "total_grad_norm",
    "transforms",
    "tree_penalty",
    "validate",
]
