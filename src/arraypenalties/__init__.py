"""arraypenalties: composable regularisation penalties for any Array API array.

The same call works on numpy, PyTorch, JAX, CuPy, array-api-strict and dask
arrays; :mod:`arraypenalties.backends` plugs in each framework's autodiff.
Importing this package imports no array framework.
"""

from arraypenalties import backends, telemetry
from arraypenalties._errors import (
    ArrayPenaltiesError,
    BackendError,
    FiniteDifferenceWarning,
    GradientTrackingWarning,
    InvalidTypeError,
    InvalidValueError,
    NonFiniteError,
    UnknownNameError,
)
from arraypenalties._pipeline import MultiPipeline, Pipeline, compute, compute_total, pipeline
from arraypenalties.backends import available_backends, get_backend, register_backend
from arraypenalties.penalties import elastic_net, l1, l2
from arraypenalties.tracking import grad_norm, pipeline_grad_norms, total_grad_norm

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
    "elastic_net",
    "get_backend",
    "grad_norm",
    "l1",
    "l2",
    "pipeline",
    "pipeline_grad_norms",
    "register_backend",
    "telemetry",
    "total_grad_norm",
]
