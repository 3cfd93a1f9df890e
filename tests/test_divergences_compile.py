"""Divergences and constraints under jax.jit and torch.compile(fullgraph=True) and lazy on
dask (the ``traced`` fixture of conftest.py); gradients and a compiled very first call."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from scipy.special import log_softmax

from arraypenalties import (
    consistency,
    entropy,
    entropy_value,
    js_divergence,
    kl_divergence,
    kl_estimate,
    orthogonality,
)

RNG = np.random.default_rng(11)
LP = log_softmax(RNG.normal(size=(2, 3, 5)), axis=-1)
LQ = log_softmax(RNG.normal(size=(2, 3, 5)), axis=-1)
LP[0, 0, 1] = -np.inf  # zero probabilities: the double-where paths are traced too
LQ[0, 0, 1] = -np.inf
LQ[1, 2, 3] = -np.inf
LQ_SAME = LQ.copy()
LQ_SAME[1, 2, 3] = np.log(0.05)  # zero probabilities exactly where LP has them: finite KL
FINITE = RNG.normal(size=(2, 3, 5))
FINITE_B = RNG.normal(size=(2, 3, 5))
MASK = RNG.uniform(size=(2, 3, 5)) > 0.3

# (id, function of the arrays, the host arrays it takes)
CASES = [
    ("kl", functools.partial(kl_divergence, max_log_ratio=None), (LP, LQ_SAME)),
    (
        "kl-reverse-none",
        functools.partial(kl_divergence, direction="reverse", reduction="none"),
        (LP, LQ_SAME),
    ),
    ("kl-symmetric", functools.partial(kl_divergence, symmetric=True), (LP, LQ)),
    ("kl-inf", kl_divergence, (LP, LQ)),
    ("kl-max-log-ratio", functools.partial(kl_divergence, max_log_ratio=20.0), (LP, LQ)),
    ("js", js_divergence, (LP, LQ)),
    ("entropy", entropy, (LP,)),
    (
        "entropy-temperature",
        functools.partial(entropy, temperature=0.7, normalize=True, axis=1),
        (LP,),
    ),
    ("entropy-value", functools.partial(entropy_value, reduction="sum"), (LP,)),
    ("kl-estimate-k3", kl_estimate, (LP[..., 0], LQ[..., 0])),
    (
        "kl-estimate-k2-mask",
        lambda p, q, mask: kl_estimate(p, q, mask=mask, estimator="k2"),
        (FINITE, FINITE_B, MASK),
    ),
    ("orthogonality-soft", orthogonality, (FINITE,)),
    (
        "orthogonality-hard-sequence",
        functools.partial(orthogonality, mode="hard", axis="sequence"),
        (FINITE,),
    ),
    (
        "orthogonality-spectral",
        functools.partial(orthogonality, mode="spectral", axis="vocabulary"),
        (FINITE,),
    ),
    ("consistency-mse", consistency, (FINITE, FINITE_B)),
    ("consistency-cosine", functools.partial(consistency, metric="cosine"), (FINITE, FINITE_B)),
    ("consistency-kl", functools.partial(consistency, metric="kl"), (LP, LQ)),
]
PARAMS = [pytest.param(fn, arrays, id=name) for name, fn, arrays in CASES]


@pytest.mark.parametrize(("fn", "arrays"), PARAMS)
def test_traced_matches_eager_numpy(traced: Any, fn: Any, arrays: Any) -> None:
    traced(fn, arrays)


@pytest.mark.backend("torch")
def test_torch_compile_kl_gradient_matches_eager() -> None:
    import torch

    p = torch.asarray(LP, requires_grad=True)
    q = torch.asarray(LQ_SAME, requires_grad=True)
    compiled = torch.compile(lambda a, b: kl_divergence(a, b), fullgraph=True, backend="eager")
    compiled(p, q).backward()
    grad_p, grad_q = p.grad.clone(), q.grad.clone()
    p.grad, q.grad = None, None
    kl_divergence(p, q).backward()
    assert torch.isfinite(grad_p).all() and torch.isfinite(grad_q).all()
    torch.testing.assert_close(grad_p, p.grad, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad_q, q.grad, rtol=1e-12, atol=0)


@pytest.mark.backend("jax")
def test_jax_grad_of_jitted_kl_is_finite_at_zero_probabilities() -> None:
    import jax
    import jax.numpy as jnp

    p, q = jnp.asarray(LP), jnp.asarray(LQ_SAME)
    grad_p, grad_q = jax.jit(jax.grad(kl_divergence, argnums=(0, 1)))(p, q)
    assert bool(jnp.all(jnp.isfinite(grad_p))) and bool(jnp.all(jnp.isfinite(grad_q)))
    prob = np.exp(LP)
    with np.errstate(invalid="ignore"):
        closed_p = np.where(prob > 0, prob * (LP - LQ_SAME + 1.0), 0.0) / 6  # mean over 2·3 rows
    np.testing.assert_allclose(np.asarray(grad_p), closed_p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(grad_q), -prob / 6, rtol=1e-12, atol=1e-15)


FIRST_CALL_COMPILED = """
import torch
import arraypenalties as ap
run = torch.compile(
    lambda p, q: ap.kl_divergence(p, q) + ap.entropy(p, temperature=0.5) + ap.l1(p),
    fullgraph=True,
    backend="eager",
)
p = torch.log_softmax(torch.arange(6.0).reshape(2, 3), -1)
print(float(run(p, p.flip(-1))))
"""


@pytest.mark.backend("torch")
def test_torch_compile_fullgraph_as_the_very_first_call() -> None:
    # nothing cached yet: the namespace and the backend primitives are resolved inside
    # the trace (import statements, no importlib, no cache write while compiling)
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", FIRST_CALL_COMPILED], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logits = np.arange(6.0).reshape(2, 3)
    p = log_softmax(logits, axis=-1)
    q = p[:, ::-1]
    expected = (
        np.mean(np.sum(np.exp(p) * (p - q), -1))
        - np.mean(-np.sum(np.exp(log_softmax(p / 0.5, -1)) * log_softmax(p / 0.5, -1), -1))
        + np.sum(np.abs(p))
    )
    assert float(result.stdout) == pytest.approx(expected, rel=1e-5)


@pytest.mark.backend("torch")
@pytest.mark.parametrize("from_logits", [False, True])
def test_torch_compile_fullgraph_above_the_chunk_threshold(from_logits: bool) -> None:
    # the chunking decision asks the backend for its CPU chunk size, which must trace
    import torch

    from arraypenalties.divergences import chunking

    p, q = torch.asarray(LP.reshape(6, 5)), torch.asarray(LQ_SAME.reshape(6, 5))

    def both(a: Any, b: Any) -> Any:
        return kl_divergence(a, b, from_logits=from_logits) + entropy_value(
            a, from_logits=from_logits
        )

    with chunking(threshold_bytes=1):  # every input is "large"; chunk size left unset
        compiled = torch.compile(both, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(p, q), both(p, q), rtol=1e-12, atol=0)
