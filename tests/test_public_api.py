"""The public surface: exports, error hierarchy, packaging, and no framework imports."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import inspect
import pathlib
import subprocess
import sys
import types

import arraypenalties
from arraypenalties import (
    ArrayPenaltiesError,
    BackendError,
    FiniteDifferenceWarning,
    InvalidTypeError,
    InvalidValueError,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
# submodules that are part of the public surface (others, like `penalties`, are re-exported)
PUBLIC_MODULES = {"backends", "schedules", "telemetry", "transforms"}


def test_all_is_sorted_and_matches_public_names() -> None:
    assert arraypenalties.__all__ == sorted(arraypenalties.__all__)
    public = {
        name
        for name, value in vars(arraypenalties).items()
        if not name.startswith("_")
        and not (isinstance(value, types.ModuleType) and name not in PUBLIC_MODULES)
    }
    assert set(arraypenalties.__all__) - {"__version__"} == public


def test_every_export_has_a_docstring() -> None:
    for name in arraypenalties.__all__:
        value = getattr(arraypenalties, name)
        if callable(value) or isinstance(value, types.ModuleType):
            assert inspect.getdoc(value), name


def test_error_hierarchy() -> None:
    assert issubclass(InvalidValueError, ArrayPenaltiesError) and issubclass(
        InvalidValueError, ValueError
    )
    assert issubclass(InvalidTypeError, ArrayPenaltiesError) and issubclass(
        InvalidTypeError, TypeError
    )
    assert issubclass(BackendError, ArrayPenaltiesError) and issubclass(BackendError, RuntimeError)
    assert issubclass(FiniteDifferenceWarning, UserWarning)


def test_version_matches_metadata_and_package_is_typed() -> None:
    assert importlib.metadata.version("arraypenalties") == arraypenalties.__version__
    assert importlib.resources.files("arraypenalties").joinpath("py.typed").is_file()


NO_FRAMEWORK_SCRIPT = """
import sys
import arraypenalties
FRAMEWORKS = ("torch", "jax", "dask", "array_api_strict", "cupy")
loaded_on_import = sorted(m for m in FRAMEWORKS if m in sys.modules)
import warnings
import numpy as np
from arraypenalties import l1, l2, elastic_net, get_backend, available_backends
x = np.asarray([1.0, -2.0, 3.0])
assert float(l2(x, lam=0.1)) > 0 and float(l1(x)) == 6.0 and float(elastic_net(x)) > 0
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    get_backend(x).grad(lambda v: l2(v), x)
available_backends()
print(loaded_on_import, sorted(m for m in FRAMEWORKS if m in sys.modules))
"""


def test_import_and_numpy_use_import_no_framework() -> None:
    result = subprocess.run(
        [sys.executable, "-c", NO_FRAMEWORK_SCRIPT], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[] []"
