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
    "float32" and "float64";
``traced``
    one mechanism for every trace test: ``traced(fn, host_arrays)`` runs ``fn`` under
    ``torch.compile(fullgraph=True, backend="eager")`` (no graph break, one graph),
    ``jax.jit`` (no host callback) and lazily on dask (nothing computed before
    ``.compute()``), and compares with ``fn`` of the numpy arrays.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

from arraypenalties import FiniteDifferenceWarning
from arraypenalties.testing import ENV_VAR, BackendCase, select_backends

SELECTED = select_backends(os.environ.get(ENV_VAR))
# keras reads its backend at import (the doctests import integrations/keras.py); its own
# default, tensorflow, is not a test dependency
os.environ.setdefault("KERAS_BACKEND", "jax")

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


@pytest.fixture
def quiet_fd() -> Iterator[None]:
    """Silence FiniteDifferenceWarning in a test that checks something else."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FiniteDifferenceWarning)
        yield


@pytest.fixture(params=["float32", "float64"])
def dtype_name(request: pytest.FixtureRequest) -> str:
    return request.param


def _torch_compile(fn: Callable[..., Any], arrays: Sequence[np.ndarray]) -> Any:
    import torch
    import torch._dynamo

    torch._dynamo.reset()
    tensors = [torch.asarray(np.ascontiguousarray(a)) for a in arrays]
    explanation = torch._dynamo.explain(fn)(*tensors)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    return torch.compile(fn, fullgraph=True, backend="eager")(*tensors).numpy()


def _jax_jit(fn: Callable[..., Any], arrays: Sequence[np.ndarray]) -> Any:
    import jax
    import jax.numpy as jnp

    inputs = [jnp.asarray(a) for a in arrays]
    assert "callback" not in str(jax.make_jaxpr(fn)(*inputs))
    return np.asarray(jax.jit(fn)(*inputs))


def _dask_lazy(fn: Callable[..., Any], arrays: Sequence[np.ndarray]) -> Any:
    import dask
    import dask.array as da

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("computed before .compute()")

    with dask.config.set(scheduler=refuse):
        result = fn(*[da.from_array(np.ascontiguousarray(a), chunks=1) for a in arrays])
    assert isinstance(result, da.Array)
    return np.asarray(result.compute(scheduler="sync"))


_TRACERS = {"torch.compile": _torch_compile, "jax.jit": _jax_jit, "dask-lazy": _dask_lazy}


@pytest.fixture(
    params=[
        pytest.param("torch.compile", marks=pytest.mark.backend("torch"), id="torch.compile"),
        pytest.param("jax.jit", marks=pytest.mark.backend("jax"), id="jax.jit"),
        pytest.param("dask-lazy", marks=pytest.mark.backend("dask"), id="dask-lazy"),
    ]
)
def traced(request: pytest.FixtureRequest) -> Callable[..., None]:
    tracer = _TRACERS[request.param]

    def check(fn: Callable[..., Any], arrays: Sequence[np.ndarray], *, rtol: float = 1e-12) -> None:
        with np.errstate(invalid="ignore"):  # the numpy reference: only for its value
            expected = np.asarray(fn(*[np.asarray(a) for a in arrays]))
        np.testing.assert_allclose(tracer(fn, arrays), expected, rtol=rtol)

    return check


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


@pytest.fixture
def run_processes() -> Callable[[Sequence[Sequence[str]]], list[str]]:
    """``run(argvs)``: start one Python process per argument list (``src`` first on the
    path, one thread each), wait at most 120 s for all, kill any left on failure, and
    return their combined outputs; a process that exits non-zero fails the test."""
    import pathlib
    import subprocess
    import sys

    def run(argvs: Sequence[Sequence[str]]) -> list[str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        src = str(pathlib.Path(__file__).resolve().parent / "src")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        workers = [
            subprocess.Popen(
                [sys.executable, *argv],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
            for argv in argvs
        ]
        outputs = []
        try:
            for worker in workers:
                outputs.append(worker.communicate(timeout=120)[0])
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
        for rank, (worker, output) in enumerate(zip(workers, outputs, strict=True)):
            assert worker.returncode == 0, f"process {rank} failed:\n{output}"
        return outputs

    return run
