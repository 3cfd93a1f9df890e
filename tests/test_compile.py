"""Penalties trace under jax.jit and torch.compile(fullgraph=True) and stay lazy on dask."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from arraypenalties import elastic_net, l1, l2

CONFIGURED = [
    pytest.param(functools.partial(l1, lam=0.3), id="l1"),
    pytest.param(functools.partial(l1, reduction="none"), id="l1-none"),
    pytest.param(functools.partial(l2, lam=0.1), id="l2"),
    pytest.param(
        functools.partial(l2, center="mean", clip=1.0, reduction="mean"), id="l2-center-clip"
    ),
    pytest.param(functools.partial(l2, center=0.5), id="l2-center-number"),
    pytest.param(functools.partial(elastic_net, l1_ratio=0.3), id="enet"),
]
HOST = np.asarray([[0.5, -1.5, 2.0], [3.0, -0.25, 1.0]])


def _reference(fn: Any) -> np.ndarray:
    return np.asarray(fn(HOST))


@pytest.mark.backend("torch")
@pytest.mark.parametrize("fn", CONFIGURED)
def test_torch_compile_fullgraph_has_no_graph_breaks(fn: Any) -> None:
    import torch
    import torch._dynamo

    torch._dynamo.reset()
    x = torch.asarray(HOST)
    explanation = torch._dynamo.explain(fn)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    compiled = torch.compile(fn, fullgraph=True, backend="eager")
    np.testing.assert_allclose(compiled(x).numpy(), _reference(fn), rtol=1e-12)


@pytest.mark.backend("torch")
def test_torch_compile_gradient_through_l2() -> None:
    import torch

    x = torch.asarray(HOST, requires_grad=True)
    compiled = torch.compile(lambda v: l2(v, lam=0.5), fullgraph=True, backend="eager")
    compiled(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), HOST, rtol=1e-12)


@pytest.mark.backend("jax")
@pytest.mark.parametrize("fn", CONFIGURED)
def test_jax_jit_traces_and_matches_numpy(fn: Any) -> None:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(HOST)
    np.testing.assert_allclose(np.asarray(jax.jit(fn)(x)), _reference(fn), rtol=1e-12)
    jaxpr = jax.make_jaxpr(fn)(x)
    assert "callback" not in str(jaxpr)


@pytest.mark.backend("jax")
def test_jax_grad_of_jitted_l2() -> None:
    import jax
    import jax.numpy as jnp

    grad = jax.jit(jax.grad(lambda v: l2(v, lam=0.5)))(jnp.asarray(HOST))
    np.testing.assert_allclose(np.asarray(grad), HOST, rtol=1e-12)


@pytest.mark.backend("dask")
@pytest.mark.parametrize("fn", CONFIGURED)
def test_dask_stays_lazy_until_compute(fn: Any) -> None:
    import dask
    import dask.array as da

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("computed before .compute()")

    x = da.from_array(HOST, chunks=(1, 3))
    with dask.config.set(scheduler=refuse):
        result = fn(x)
    assert isinstance(result, da.Array)
    np.testing.assert_allclose(
        np.asarray(result.compute(scheduler="sync")), _reference(fn), rtol=1e-12
    )
