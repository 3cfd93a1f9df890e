"""Repo-level pytest setup: the backend matrix and its fixtures.

``ARRAYPENALTIES_TEST_BACKENDS`` (comma list) selects backends; by default every
installed one runs (cupy only with a GPU). A backend that was asked for and
cannot be imported makes the run fail at start-up instead of skipping.

Fixtures
--------
``case`` / ``xp``
    every selected backend (values);
``ad_case`` / ``ad_xp``
    backends with exact autodiff (torch, jax);
``fd_case`` / ``fd_xp``
    finite-difference backends (numpy, array-api-strict, cupy);
``grad_case`` / ``grad_xp``
    every backend that has gradients;
``device_case`` / ``device``
    backends with a non-default device, and that device (array-api-strict
    ``Device("device1")``, torch ``"meta"``: shapes, dtypes, devices, no values);
``dtype_name``
    "float32" and "float64".
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import settings

from arraypenalties.testing import ENV_VAR, BackendCase, select_backends

SELECTED = select_backends(os.environ.get(ENV_VAR))

if any(case.name == "jax" for case in SELECTED):
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 tests need it; float32 stays float32

settings.register_profile("ci", deadline=None, derandomize=True, max_examples=40)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _params(cases: list[BackendCase]) -> list[Any]:
    return [pytest.param(case, id=case.name) for case in cases]


ALL = SELECTED
EXACT = [case for case in SELECTED if case.exact_grad]
FINITE_DIFF = [case for case in SELECTED if case.has_gradients and not case.exact_grad]
WITH_GRADIENTS = [case for case in SELECTED if case.has_gradients]


@pytest.fixture(params=_params(ALL))
def case(request: pytest.FixtureRequest) -> BackendCase:
    return request.param


@pytest.fixture
def xp(case: BackendCase) -> Any:
    return case.xp


@pytest.fixture(params=_params(EXACT))
def ad_case(request: pytest.FixtureRequest) -> BackendCase:
    return request.param


@pytest.fixture
def ad_xp(ad_case: BackendCase) -> Any:
    return ad_case.xp


@pytest.fixture(params=_params(FINITE_DIFF))
def fd_case(request: pytest.FixtureRequest) -> BackendCase:
    return request.param


@pytest.fixture
def fd_xp(fd_case: BackendCase) -> Any:
    return fd_case.xp


@pytest.fixture(params=_params(WITH_GRADIENTS))
def grad_case(request: pytest.FixtureRequest) -> BackendCase:
    return request.param


@pytest.fixture
def grad_xp(grad_case: BackendCase) -> Any:
    return grad_case.xp


@pytest.fixture(params=_params([case for case in SELECTED if case.other_device is not None]))
def device_case(request: pytest.FixtureRequest) -> BackendCase:
    return request.param


@pytest.fixture
def device(device_case: BackendCase) -> Any:
    assert device_case.other_device is not None
    return device_case.other_device(device_case.xp)


@pytest.fixture(params=["float32", "float64"])
def dtype_name(request: pytest.FixtureRequest) -> str:
    return request.param


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backend(name): runs once, needs that backend in the selected matrix"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    selected = {case.name for case in SELECTED}
    for marker in item.iter_markers(name="backend"):
        name = marker.args[0]
        if name not in selected:
            pytest.skip(f"{name} is not in the selected backends ({ENV_VAR})")
