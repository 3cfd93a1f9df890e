"""arraypenalties: composable regularisation penalties for any Array API array.

The same call works on numpy, PyTorch, JAX, CuPy, array-api-strict and dask
arrays; :mod:`arraypenalties.backends` plugs in each framework's autodiff.
Importing this package imports no array framework.
"""

from arraypenalties import backends
from arraypenalties._errors import (
    ArrayPenaltiesError,
    BackendError,
    FiniteDifferenceWarning,
    InvalidTypeError,
    InvalidValueError,
    NonFiniteError,
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
from arraypenalties.penalties import elastic_net, l1, l2
from arraypenalties.validation import is_finite, validate

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)

__all__ = [
    "ArrayPenaltiesError",
    "BackendError",
    "FiniteDifferenceWarning",
    "InvalidTypeError",
    "InvalidValueError",
    "NonFiniteError",
    "__version__",
    "available_backends",
    "backends",
    "consistency",
    "elastic_net",
    "entropy",
    "entropy_value",
    "get_backend",
    "is_finite",
    "js_divergence",
    "kl_divergence",
    "kl_estimate",
    "l1",
    "l2",
    "orthogonality",
    "register_backend",
    "validate",
]
