"""Penalties trace under jax.jit and torch.compile(fullgraph=True) and stay lazy on dask
(the ``traced`` fixture of conftest.py), and their gradients trace too."""

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


@pytest.mark.parametrize("fn", CONFIGURED)
def test_traced_matches_eager_numpy(traced: Any, fn: Any) -> None:
    traced(fn, [HOST])


@pytest.mark.backend("torch")
def test_torch_compile_gradient_through_l2() -> None:
    import torch

    x = torch.asarray(HOST, requires_grad=True)
    compiled = torch.compile(lambda v: l2(v, lam=0.5), fullgraph=True, backend="eager")
    compiled(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), HOST, rtol=1e-12)


@pytest.mark.backend("jax")
def test_jax_grad_of_jitted_l2() -> None:
    import jax
    import jax.numpy as jnp

    grad = jax.jit(jax.grad(lambda v: l2(v, lam=0.5)))(jnp.asarray(HOST))
    np.testing.assert_allclose(np.asarray(grad), HOST, rtol=1e-12)
