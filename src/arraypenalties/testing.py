"""Helpers for test suites that run the same test on every array backend.

Public so that downstream libraries can reuse them: a catalogue of the array
backends arraypenalties supports (:data:`BACKENDS`), :func:`select_backends`
(honouring ``ARRAYPENALTIES_TEST_BACKENDS``), :func:`to_numpy` and
:func:`assert_close`, which checks namespace, dtype, shape and device before
it compares values. This module needs numpy; ``import arraypenalties`` does
not import it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from arraypenalties._lib.errors import InvalidValueError, UnknownNameError
from arraypenalties._lib.namespace import get_xp

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "BackendCase",
    "as_array",
    "assert_close",
    "default_rtol",
    "finite_difference_warnings",
    "float16_namespace",
    "gradient_rtol",
    "select_backends",
    "to_numpy",
    "value_rtol",
]

ENV_VAR = "ARRAYPENALTIES_TEST_BACKENDS"


def _cupy_has_gpu() -> bool:
    try:
        cupy = importlib.import_module("cupy")
        return bool(cupy.cuda.runtime.getDeviceCount() > 0)
    except Exception:  # no driver, no device, broken install: not usable here
        return False


@dataclass(frozen=True)
class BackendCase:
    """One array backend of the test matrix.

    Attributes
    ----------
    name : str
        Test id and ``ARRAYPENALTIES_TEST_BACKENDS`` name.
    module : str
        The module that must import for the backend to run.
    namespace_module : str
        The module that is the Array API namespace (``array_api_compat.torch``...).
    exact_grad : bool
        Gradients come from autodiff (torch, jax).
    has_gradients : bool
        False for value-only backends (dask).
    """

    name: str
    module: str
    namespace_module: str
    exact_grad: bool
    has_gradients: bool
    usable: Callable[[], bool] = field(default=lambda: True, compare=False, repr=False)
    other_device: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)
    """``xp -> device``: a device other than the default (None where there is none)."""

    def installed(self) -> bool:
        """Whether the framework can be imported here (checked without importing it)."""
        return importlib.util.find_spec(self.module) is not None

    @property
    def xp(self) -> Any:
        """The backend's Array API namespace (imports the framework)."""
        return importlib.import_module(self.namespace_module)


BACKENDS: tuple[BackendCase, ...] = (
    BackendCase("numpy", "numpy", "array_api_compat.numpy", False, True),
    BackendCase(
        "array_api_strict",
        "array_api_strict",
        "array_api_strict",
        False,
        True,
        other_device=lambda xp: xp.Device("device1"),
    ),
    # "meta" tensors carry shapes, dtypes and devices but no values
    BackendCase(
        "torch", "torch", "array_api_compat.torch", True, True, other_device=lambda xp: "meta"
    ),
    BackendCase("jax", "jax", "jax.numpy", True, True),
    BackendCase("dask", "dask", "array_api_compat.dask.array", False, False),
    BackendCase("cupy", "cupy", "array_api_compat.cupy", False, True, usable=_cupy_has_gpu),
)


def select_backends(requested: str | None = None) -> list[BackendCase]:
    """The backends to test: a comma list, or every installed and usable one.

    Parameters
    ----------
    requested : str, optional
        Comma-separated names (the value of ``ARRAYPENALTIES_TEST_BACKENDS``).
        ``None`` or empty selects every backend that imports here (cupy only
        with a GPU).

    Raises
    ------
    UnknownNameError
        A requested name is unknown.
    InvalidValueError
        A requested backend cannot be imported or used: asked-for coverage
        never silently shrinks to a skip.
    """
    if not requested:
        return [case for case in BACKENDS if case.installed() and case.usable()]
    by_name = {case.name: case for case in BACKENDS}
    selected = []
    for name in (part.strip() for part in requested.split(",") if part.strip()):
        case = by_name.get(name)
        if case is None:
            msg = f"`{ENV_VAR}` names unknown backend {name!r}; known: {', '.join(by_name)}"
            raise UnknownNameError(msg)
        if not (case.installed() and case.usable()):
            msg = f"`{ENV_VAR}` asks for {name!r}, which cannot be imported or used here"
            raise InvalidValueError(msg)
        selected.append(case)
    return selected


def to_numpy(x: Any) -> Any:
    """Copy an array of any supported backend to a host numpy array."""
    if array_api_compat.is_torch_array(x):
        x = x.detach().cpu()
        return (x.float() if str(x.dtype) == "torch.bfloat16" else x).numpy()  # numpy has no bf16
    if array_api_compat.is_dask_array(x):
        return np.asarray(x.compute())
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_array_api_strict_namespace(get_xp(x)):
        return np.from_dlpack(x)
    return np.asarray(x)


def as_array(xp: Any, values: Any, dtype_name: str = "float64", *, device: Any = None) -> Any:
    """``values`` (nested lists or a numpy array) as an array of ``xp`` with dtype ``dtype_name``.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.testing import as_array
    >>> as_array(np, [1, 2], "float32")
    array([1., 2.], dtype=float32)
    """
    if device is None:
        return xp.asarray(values, dtype=getattr(xp, dtype_name))
    return xp.asarray(values, dtype=getattr(xp, dtype_name), device=device)


def float16_namespace(case: BackendCase) -> Any:
    """``case.xp`` if it has float16; otherwise skip the calling test, saying why."""
    xp = case.xp
    if not hasattr(xp, "float16"):
        import pytest

        pytest.skip(f"the {case.name} namespace exposes no float16 (the Array API has none)")
    return xp


def value_rtol(dtype_name: str) -> float:
    """The tolerance of a value against its float64 reference: 2e-6 in float32, 1e-12 in float64.

    >>> from arraypenalties.testing import value_rtol
    >>> value_rtol("float32"), value_rtol("float64")
    (2e-06, 1e-12)
    """
    return 2e-6 if dtype_name == "float32" else 1e-12


def gradient_rtol(case: BackendCase, dtype_name: str) -> float:
    """The tolerance of a gradient against its closed form: 2e-5 in float32; in float64
    1e-12 for autodiff and 1e-8 for finite differences (about 1e-10 relative)."""
    if dtype_name == "float32":
        return 2e-5
    return 1e-12 if case.exact_grad else 1e-8


def finite_difference_warnings(case: BackendCase) -> Any:
    """A context that expects a ``FiniteDifferenceWarning`` where ``case`` approximates
    gradients, and expects nothing where it has autodiff."""
    import contextlib

    import pytest

    from arraypenalties._lib.errors import FiniteDifferenceWarning

    if case.exact_grad or not case.has_gradients:
        return contextlib.nullcontext()
    return pytest.warns(FiniteDifferenceWarning, match="finite differences")


def default_rtol(dtype: Any) -> float:
    """``64 · eps`` of ``dtype`` (float32: 7.6e-6, float64: 1.4e-14)."""
    name = str(dtype).rsplit(".", 1)[-1]
    eps = {"float16": 9.77e-4, "bfloat16": 7.81e-3, "float32": 1.19e-7}.get(name, 2.22e-16)
    return 64 * eps


def assert_close(
    actual: Any, desired: Any, *, rtol: float | None = None, atol: float = 0.0
) -> None:
    """Assert ``actual`` matches ``desired`` in namespace, dtype, shape, device, then values.

    Parameters
    ----------
    actual, desired : array
        ``desired`` is built by the test in the namespace, dtype and device the
        result must have (e.g. ``xp.asarray(6.0, dtype=xp.float32)``).
    rtol : float, optional
        Relative tolerance; :func:`default_rtol` of the dtype when omitted.
    atol : float, default 0.0
        Absolute tolerance.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.testing import assert_close
    >>> assert_close(np.asarray(1.0), np.asarray(1.0 + 1e-15))
    """
    xp_actual, xp_desired = get_xp(actual), get_xp(desired)
    assert xp_actual is xp_desired, (
        f"namespace: got {xp_actual.__name__}, expected {xp_desired.__name__}"
    )
    assert actual.dtype == desired.dtype, f"dtype: got {actual.dtype}, expected {desired.dtype}"
    assert tuple(actual.shape) == tuple(desired.shape), (
        f"shape: got {tuple(actual.shape)}, expected {tuple(desired.shape)}"
    )
    device_actual = array_api_compat.device(actual)
    device_desired = array_api_compat.device(desired)
    assert device_actual == device_desired, (
        f"device: got {device_actual}, expected {device_desired}"
    )
    np.testing.assert_allclose(
        to_numpy(actual),
        to_numpy(desired),
        rtol=default_rtol(actual.dtype) if rtol is None else rtol,
        atol=atol,
    )
