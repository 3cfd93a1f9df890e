"""The divergences on a GPU: CUDA torch and jax on a GPU (SPEC §13).

Skipped without a GPU (CI has none); run where one is present. Values and
gradients of the chunked and whole-input forms on the GPU equal scipy / float64
references computed on the host; the result stays on the input's device; and peak
GPU memory of a forward + backward, read from torch's allocator statistics, stays
within SPEC §13's bounds (about 1 input beyond the inputs and their gradients for
KL and entropy, 2 for JS). cupy on a GPU runs the whole backend matrix (conftest).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from scipy.special import entr, log_softmax, rel_entr

from arraypenalties import entropy_value, js_divergence, kl_divergence
from arraypenalties.divergences import chunking


def _cuda_torch() -> Any:
    torch = pytest.importorskip("torch", reason="CUDA torch needs torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (CI has none)")
    return torch


def _gpu_jax() -> Any:
    jax = pytest.importorskip("jax", reason="jax on a GPU needs jax")
    if jax.default_backend() != "gpu":
        pytest.skip("needs jax on a GPU (CI has none)")
    return jax


ROWS, WIDTH = 37, 513


def _log_probs(seed: int, zeros: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((ROWS, WIDTH)) * 2.0
    if zeros:
        logits[rng.random((ROWS, WIDTH)) < 0.2] = -np.inf
        logits[:, 0] = np.maximum(logits[:, 0], 0.0)
    return log_softmax(logits, axis=-1)


LP, LQ = _log_probs(0, zeros=True), _log_probs(1, zeros=False)
KL_ROWS = rel_entr(np.exp(LP), np.exp(LQ)).sum(-1)
ENTROPY_ROWS = entr(np.exp(LP)).sum(-1)
CHUNKED = {"threshold_bytes": 1, "chunk_bytes": 5 * WIDTH * 4, "accelerator_chunks": 8}  # 5 rows
WHOLE = {"threshold_bytes": 1 << 40}

CASES = [  # (function, number of inputs, float64 reference rows)
    pytest.param(kl_divergence, 2, KL_ROWS, id="kl"),
    pytest.param(functools.partial(kl_divergence, from_logits=True), 2, KL_ROWS, id="kl-logits"),
    pytest.param(entropy_value, 1, ENTROPY_ROWS, id="entropy"),
    pytest.param(
        functools.partial(entropy_value, from_logits=True), 1, ENTROPY_ROWS, id="entropy-logits"
    ),
    pytest.param(js_divergence, 2, None, id="js"),
]


@pytest.mark.parametrize("settings", [WHOLE, CHUNKED], ids=["whole", "chunked"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("fn", "count", "expected"), CASES)
def test_torch_cuda_values_and_gradients(
    fn: Any, count: int, expected: np.ndarray | None, dtype: str, settings: dict[str, int]
) -> None:
    torch = _cuda_torch()
    host = [LP, LQ][:count]
    gpu = [torch.tensor(x, dtype=getattr(torch, dtype), device="cuda") for x in host]
    for x in gpu:
        x.requires_grad_(True)
    cpu = [torch.tensor(x, requires_grad=True) for x in host]  # float64 reference
    with chunking(**settings):
        rows = fn(*gpu, reduction="none")
        grads = torch.autograd.grad(rows.sum(), gpu)
    reference = fn(*cpu, reduction="none")
    reference_grads = torch.autograd.grad(reference.sum(), cpu)
    assert rows.device.type == "cuda"
    assert rows.dtype == getattr(torch, dtype)
    rtol = 1e-4 if dtype == "float32" else 1e-11
    if expected is not None:
        np.testing.assert_allclose(rows.detach().cpu().double().numpy(), expected, rtol=rtol)
    np.testing.assert_allclose(
        rows.detach().cpu().double().numpy(), reference.detach().numpy(), rtol=rtol
    )
    for got, want in zip(grads, reference_grads, strict=True):
        assert got.device.type == "cuda"
        got_host = got.cpu().double().numpy()
        assert np.all(np.isfinite(got_host))
        np.testing.assert_allclose(got_host, want.numpy(), rtol=rtol, atol=rtol * 1e-2)


# (function, number of inputs, SPEC §13 bound in inputs)
BOUNDS = [
    pytest.param(kl_divergence, 2, 1.0, id="kl"),
    pytest.param(functools.partial(kl_divergence, from_logits=True), 2, 1.0, id="kl-logits"),
    pytest.param(functools.partial(entropy_value, from_logits=True), 1, 1.0, id="entropy-logits"),
    pytest.param(functools.partial(entropy_value, temperature=2.0), 1, 1.0, id="entropy-T2"),
    pytest.param(js_divergence, 2, 2.0, id="js"),
]


@pytest.mark.parametrize(("fn", "count", "bound"), BOUNDS)
def test_torch_cuda_peak_memory_is_bounded(fn: Any, count: int, bound: float) -> None:
    torch = _cuda_torch()
    shape = (2048, 32768)  # 256 MiB of float32 per input
    generator = torch.Generator(device="cuda").manual_seed(0)
    inputs = [
        torch.log_softmax(torch.randn(shape, device="cuda", generator=generator) * 2, -1)
        for _ in range(count)
    ]
    leaves = [x.requires_grad_(True) for x in inputs]
    fn(*(x[:4, :16].detach().requires_grad_(True) for x in inputs)).backward()  # start-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    grads = torch.autograd.grad(fn(*leaves), leaves)
    torch.cuda.synchronize()
    input_bytes = inputs[0].numel() * inputs[0].element_size()
    extra = (torch.cuda.max_memory_allocated() - before - count * input_bytes) / input_bytes
    del grads
    assert extra <= bound, f"{extra:.2f} inputs beyond the inputs and gradients"


@pytest.mark.parametrize("settings", [WHOLE, CHUNKED], ids=["whole", "chunked"])
@pytest.mark.parametrize(("fn", "count", "expected"), CASES)
def test_jax_gpu_values_and_gradients_under_jit(
    fn: Any, count: int, expected: np.ndarray | None, settings: dict[str, int]
) -> None:
    jax = _gpu_jax()
    torch = pytest.importorskip("torch", reason="the float64 reference gradients use torch")
    host = [LP, LQ][:count]
    arrays = [jax.numpy.asarray(x, dtype=jax.numpy.float32) for x in host]

    def total(*xs: Any) -> Any:
        return fn(*xs, reduction="sum")

    with chunking(**settings):
        rows = jax.jit(functools.partial(fn, reduction="none"))(*arrays)
        grads = jax.jit(jax.grad(total, argnums=tuple(range(count))))(*arrays)
    assert next(iter(rows.devices())).platform == "gpu"
    cpu = [torch.tensor(x, requires_grad=True) for x in host]
    reference = fn(*cpu, reduction="none")
    reference_grads = torch.autograd.grad(reference.sum(), cpu)
    if expected is not None:
        np.testing.assert_allclose(np.asarray(rows, dtype=np.float64), expected, rtol=1e-4)
    for got, want in zip(grads, reference_grads, strict=True):
        got_host = np.asarray(got, dtype=np.float64)
        assert np.all(np.isfinite(got_host))
        np.testing.assert_allclose(got_host, want.numpy(), rtol=1e-4, atol=1e-6)
