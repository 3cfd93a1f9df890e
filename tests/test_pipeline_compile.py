"""compute_total traces (the ``traced`` fixture: jax.jit, torch.compile fullgraph, lazy dask) and
its gradient too; compute makes exactly one host transfer, with and without tracking."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import arraypenalties.backends.primitives
from arraypenalties import MultiPipeline, Pipeline
from arraypenalties.testing import BackendCase

HOST = np.asarray([[0.5, -1.5, 2.0], [3.0, -0.25, 1.0]])
PIPELINE = (
    Pipeline()
    .add("l1", "l1", weight=0.3)
    .add("l2", "l2", weight=0.2, opts={"center": "mean"})
    .add("enet", "elastic_net", weight=0.7, opts={"l1_ratio": 0.1})
    .add("off", "l2", weight=5.0, enabled=False)
)


def _reference_total() -> float:
    x = HOST.ravel()
    centered = x - x.mean()
    enet = 0.1 * np.abs(x).sum() + 0.9 * (x * x).sum()
    return 0.3 * np.abs(x).sum() + 0.2 * (centered * centered).sum() + 0.7 * enet


def _reference_grad() -> np.ndarray:
    centered = HOST - HOST.mean()
    return 0.3 * np.sign(HOST) + 0.4 * centered + 0.7 * (0.1 * np.sign(HOST) + 1.8 * HOST)


def test_reference_total_is_the_eager_numpy_total() -> None:
    np.testing.assert_allclose(PIPELINE.compute_total(HOST), _reference_total(), rtol=1e-12)
    doubled = PIPELINE.compute_total(HOST, extra_args={"lam": 2.0})  # every entry takes lam
    np.testing.assert_allclose(doubled, 2 * _reference_total(), rtol=1e-12)


@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(PIPELINE.compute_total, id="compute_total"),
        pytest.param(lambda v: PIPELINE.compute_total(v, extra_args={"lam": 2.0}), id="extra"),
    ],
)
def test_compute_total_traces(traced: Any, fn: Any) -> None:
    """One graph under torch.compile(fullgraph=True), no callback under jax.jit, lazy on dask."""
    traced(fn, [HOST])


@pytest.mark.backend("torch")
def test_torch_compile_gradient_of_compute_total() -> None:
    import torch

    compiled = torch.compile(PIPELINE.compute_total, fullgraph=True, backend="eager")
    leaf = torch.asarray(HOST).requires_grad_(True)
    compiled(leaf).backward()
    np.testing.assert_allclose(leaf.grad.numpy(), _reference_grad(), rtol=1e-12)


@pytest.mark.backend("jax")
def test_jax_jit_grad_of_compute_total() -> None:
    import jax
    import jax.numpy as jnp

    grad = jax.jit(jax.grad(PIPELINE.compute_total))(jnp.asarray(HOST))
    np.testing.assert_allclose(np.asarray(grad), _reference_grad(), rtol=1e-12)


@pytest.mark.backend("jax")
def test_jax_tracking_reuses_its_compiled_function() -> None:
    import jax.numpy as jnp

    from arraypenalties import get_backend

    x = jnp.asarray(HOST)
    backend = get_backend(x)
    PIPELINE.compute(x, track_grad_norms=True)
    cached = len(backend._per_term_cache)
    for _ in range(3):
        PIPELINE.compute(x, track_grad_norms=True)
    assert len(backend._per_term_cache) == cached  # same function objects every step


@pytest.fixture
def count_transfers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls of the one conversion point, ``backends.primitives.to_floats``."""
    calls: list[int] = []
    original = arraypenalties.backends.primitives.to_floats

    def counting(values: Any) -> list[float]:
        calls.append(int(values.shape[0]))
        return original(values)

    monkeypatch.setattr(arraypenalties.backends.primitives, "to_floats", counting)
    return calls


def test_compute_makes_one_host_transfer(xp: Any, count_transfers: list[int]) -> None:
    x = xp.asarray(HOST)
    _, metrics = PIPELINE.compute(x)
    assert count_transfers == [7]  # 3 values, 3 weighted values, the total
    assert metrics["total"] == pytest.approx(_reference_total())
    PIPELINE.compute_total(x)
    assert count_transfers == [7]  # compute_total: none


def test_tracked_compute_makes_one_host_transfer(
    grad_case: BackendCase, count_transfers: list[int]
) -> None:
    x = grad_case.xp.asarray(HOST)
    if grad_case.exact_grad:
        _, metrics = PIPELINE.compute(x, track_grad_norms=True)
    else:
        with pytest.warns(UserWarning, match="approximate gradient"):
            _, metrics = PIPELINE.compute(x, track_grad_norms=True)
    assert count_transfers == [11]  # 7 metrics, 3 entry norms, the total norm
    expected = float(np.sqrt((_reference_grad() ** 2).sum()))
    assert metrics["total_grad_norm"] == pytest.approx(expected, rel=1e-6)


def test_dask_compute_computes_once(count_transfers: list[int]) -> None:
    pytest.importorskip("dask", reason="dask is not installed")
    import dask
    import dask.array as da

    computes = []

    def counting_scheduler(dsk: Any, keys: Any, **kwargs: Any) -> Any:
        computes.append(1)
        return dask.get(dsk, keys, **kwargs)

    x = da.from_array(HOST, chunks=(1, 3))
    with dask.config.set(scheduler=counting_scheduler):
        _, metrics = PIPELINE.compute(x)
    assert computes == [1] and count_transfers == [7]
    assert metrics["total"] == pytest.approx(_reference_total())


def test_multipipeline_one_transfer(ad_case: BackendCase, count_transfers: list[int]) -> None:
    xp = ad_case.xp
    p = MultiPipeline().add("a", "l2", inputs=("s",)).add("b", "l1", inputs=("t",), weight=2.0)
    inputs = {"s": xp.asarray(HOST), "t": xp.asarray(-HOST)}
    _, metrics = p.compute(inputs, track_grad_norms=True)
    assert count_transfers == [8]  # 2 values, 2 weighted, the total, 2 norms, the total norm
    np.testing.assert_allclose(metrics["b"], np.abs(HOST).sum())
    # the total's gradient: 2s with respect to s, 2·sign(t) with respect to t
    expected = np.sqrt(((2 * HOST) ** 2).sum() + ((2 * np.sign(-HOST)) ** 2).sum())
    np.testing.assert_allclose(metrics["total_grad_norm"], expected, rtol=1e-12)


@pytest.mark.backend("torch")
def test_torch_compile_fullgraph_in_a_fresh_process() -> None:
    """The first namespace lookup of a process may happen while dynamo traces."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from arraypenalties import Pipeline, l2\n"
        "x = torch.ones(3, dtype=torch.float64)\n"
        "assert torch.compile(l2, fullgraph=True, backend='eager')(x).item() == 3.0\n"
        "p = Pipeline().add('l1', 'l1', weight=0.5)\n"
        "assert torch.compile(p.compute_total, fullgraph=True, backend='eager')(x).item() == 1.5\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
