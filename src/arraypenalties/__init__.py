"""arraypenalties: composable regularisation penalties for any Array API array.

The same call works on numpy, PyTorch, JAX, CuPy, array-api-strict and dask
arrays; :mod:`arraypenalties.backends` plugs in each framework's autodiff;
:mod:`arraypenalties.transforms` and :mod:`arraypenalties.schedules` act on
gradients and penalty weights during training.
Importing this package imports no array framework.
"""

from arraypenalties import backends
from arraypenalties import schedules as schedules  # reachable, but modules stay out of __all__
from arraypenalties import transforms as transforms
from arraypenalties._errors import (
    ArrayPenaltiesError,
    BackendError,
    FiniteDifferenceWarning,
    InvalidTypeError,
    InvalidValueError,
)
from arraypenalties.backends import available_backends, get_backend, register_backend
from arraypenalties.gradient_penalty import (
    gradient_penalty,
    interpolated_gradient_penalty,
    output_magnitude_penalty,
)
from arraypenalties.penalties import elastic_net, l1, l2

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)

__all__ = [
    "ArrayPenaltiesError",
    "BackendError",
    "FiniteDifferenceWarning",
    "InvalidTypeError",
    "InvalidValueError",
    "__version__",
    "available_backends",
    "backends",
    "elastic_net",
    "get_backend",
    "gradient_penalty",
    "interpolated_gradient_penalty",
    "l1",
    "l2",
    "output_magnitude_penalty",
    "register_backend",
]
