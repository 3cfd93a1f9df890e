"""Rows in chunks (SPEC §13): the chunked form equals the whole-input form, values and
gradients, and is the one taken above the threshold.

References are the whole-input form of the same function (chunking must not change
a value beyond rounding) and, for the values, scipy in float64.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from scipy.special import entr, log_softmax, rel_entr

import arraypenalties.divergences as divergences_module
from arraypenalties import (
    InvalidTypeError,
    InvalidValueError,
    entropy,
    entropy_value,
    get_backend,
    js_divergence,
    kl_divergence,
)
from arraypenalties._chunked import SETTINGS, rows_per_chunk
from arraypenalties.divergences import chunking
from arraypenalties.testing import assert_close, to_numpy

ROWS, WIDTH = 11, 7


def _inputs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((ROWS, WIDTH)) * 2.0
    logits[rng.random((ROWS, WIDTH)) < 0.2] = -np.inf  # zero probabilities
    logits[:, 0] = np.maximum(logits[:, 0], 0.0)  # every row keeps one outcome
    return log_softmax(logits, axis=-1)


def _full_support(seed: int) -> np.ndarray:
    return log_softmax(np.random.default_rng(seed).standard_normal((ROWS, WIDTH)), axis=-1)


# p with zero probabilities; q with full support, so that every KL here is finite
LP, LQ_FULL, LR_FULL = _inputs(0), _full_support(2), _full_support(3)


def _reverse(p: Any, q: Any, **options: Any) -> Any:  # KL(P‖Q) through the reverse form
    return kl_divergence(q, p, direction="reverse", **options)


PAIRS = [  # (function, log p, log q)
    pytest.param(kl_divergence, LP, LQ_FULL, id="kl"),
    pytest.param(_reverse, LP, LQ_FULL, id="kl-reverse"),
    pytest.param(
        functools.partial(kl_divergence, symmetric=True), LR_FULL, LQ_FULL, id="kl-symmetric"
    ),
    pytest.param(js_divergence, LP, LQ_FULL, id="js"),
    pytest.param(functools.partial(kl_divergence, from_logits=True), LP, LQ_FULL, id="kl-logits"),
    pytest.param(functools.partial(js_divergence, from_logits=True), LP, LQ_FULL, id="js-logits"),
]
SINGLES = [
    pytest.param(entropy_value, id="entropy"),
    pytest.param(functools.partial(entropy, temperature=2.0), id="entropy-T2"),
    pytest.param(functools.partial(entropy_value, from_logits=True), id="entropy-logits"),
]
THREE_ROWS = {"threshold_bytes": 1, "chunk_bytes": 3 * WIDTH * 8}  # float64: 3 rows + a tail


def _whole_and_chunked(call: Any) -> tuple[Any, Any]:
    with chunking(threshold_bytes=1 << 40):
        whole = call()
    with chunking(**THREE_ROWS):
        chunked = call()
    return whole, chunked


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize(("fn", "lp", "lq"), PAIRS)
def test_chunked_pair_values_equal_the_whole_form(
    xp: Any, fn: Any, lp: np.ndarray, lq: np.ndarray, reduction: str
) -> None:
    p, q = xp.asarray(lp), xp.asarray(lq)
    whole, chunked = _whole_and_chunked(lambda: fn(p, q, reduction=reduction))
    assert_close(chunked, whole, rtol=1e-13, atol=1e-15)


def test_chunked_kl_matches_scipy(xp: Any) -> None:
    expected = rel_entr(np.exp(LP), np.exp(LQ_FULL)).sum(-1)
    with chunking(**THREE_ROWS):
        rows = kl_divergence(xp.asarray(LP), xp.asarray(LQ_FULL), reduction="none")
    assert_close(rows, xp.asarray(expected), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fn", SINGLES)
def test_chunked_entropy_values_equal_the_whole_form(xp: Any, fn: Any) -> None:
    x = xp.asarray(LP)
    whole, chunked = _whole_and_chunked(lambda: fn(x, reduction="none"))
    assert_close(chunked, whole, rtol=1e-13, atol=1e-15)
    if fn is SINGLES[0].values[0]:
        assert_close(chunked, xp.asarray(entr(np.exp(LP)).sum(-1)), rtol=1e-12)


def _grads(fn: Any, arrays: tuple[Any, ...]) -> list[np.ndarray]:
    backend = get_backend(arrays[0])
    grads = []
    for i in range(len(arrays)):

        def scalar(v: Any, i: int = i) -> Any:
            args = list(arrays)
            args[i] = v
            return fn(*args, reduction="sum")

        grads.append(to_numpy(backend.grad(scalar, arrays[i])))
    return grads


@pytest.mark.parametrize(("fn", "lp", "lq"), PAIRS)
def test_chunked_pair_gradients_equal_the_whole_form(
    ad_xp: Any, fn: Any, lp: np.ndarray, lq: np.ndarray
) -> None:
    arrays = (ad_xp.asarray(lp), ad_xp.asarray(lq))
    whole, chunked = _whole_and_chunked(lambda: _grads(fn, arrays))
    for w, c in zip(whole, chunked, strict=True):
        assert np.all(np.isfinite(c))
        np.testing.assert_allclose(c, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fn", SINGLES)
def test_chunked_entropy_gradients_equal_the_whole_form(ad_xp: Any, fn: Any) -> None:
    arrays = (ad_xp.asarray(LP),)
    whole, chunked = _whole_and_chunked(lambda: _grads(fn, arrays))
    assert np.all(np.isfinite(chunked[0]))
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-12, atol=1e-14)


def test_chunked_values_and_gradients_under_jax_jit() -> None:
    jax = pytest.importorskip("jax", reason="jax.jit is jax's own")
    p, q = jax.numpy.asarray(LP), jax.numpy.asarray(LQ_FULL)

    def value_and_grad(a: Any, b: Any) -> Any:
        return jax.value_and_grad(kl_divergence, argnums=(0, 1))(a, b)

    whole, chunked = _whole_and_chunked(lambda: jax.jit(value_and_grad)(p, q))
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-13)
    for w, c in zip(whole[1], chunked[1], strict=True):
        np.testing.assert_allclose(c, w, rtol=1e-12, atol=1e-14)


def test_chunked_torch_double_backward_equals_the_whole_form() -> None:
    torch = pytest.importorskip("torch", reason="create_graph is torch's own")

    def second_order(fn: Any) -> list[np.ndarray]:
        p = torch.tensor(LP, requires_grad=True)
        q = torch.tensor(LQ_FULL, requires_grad=True)
        grad_p, grad_q = torch.autograd.grad(fn(p, q), (p, q), create_graph=True)
        weights = torch.linspace(-1.0, 1.0, WIDTH, dtype=torch.float64)
        hvp = torch.autograd.grad(((grad_p + grad_q) * weights).sum(), (p, q))
        return [t.detach().numpy() for t in (grad_p, grad_q, *hvp)]

    for fn in (kl_divergence, functools.partial(kl_divergence, from_logits=True), js_divergence):
        whole, chunked = _whole_and_chunked(lambda fn=fn: second_order(fn))
        for w, c in zip(whole, chunked, strict=True):
            np.testing.assert_allclose(c, w, rtol=1e-12, atol=1e-14)


def test_chunked_torch_func_is_declined_and_still_exact() -> None:
    torch = pytest.importorskip("torch", reason="torch.func is torch's own")
    p, q = torch.tensor(LP), torch.tensor(LQ_FULL)
    whole = torch.func.grad(lambda v: kl_divergence(v, q))(p)
    with chunking(**THREE_ROWS):
        chunked = torch.func.grad(lambda v: kl_divergence(v, q))(p)
    np.testing.assert_allclose(chunked.numpy(), whole.numpy(), rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------- the path taken


def _count_kernel_calls(case_name: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    if case_name in ("torch", "jax"):
        module = pytest.importorskip(f"arraypenalties.backends._{case_name}_kernels")
        original = module.chunked_rows

        def counting(fn: Any, arrays: Any, size: int) -> Any:
            calls.append(size)
            return original(fn, arrays, size)

        monkeypatch.setattr(module, "chunked_rows", counting)
    else:  # the Array API loop: one call of the row function per chunk
        original_rows = divergences_module.kl_values

        def counting_rows(*arrays: Any, **options: Any) -> Any:
            calls.append(arrays[0].shape[0])
            return original_rows(*arrays, **options)

        monkeypatch.setattr(divergences_module, "kl_values", counting_rows)
    return calls


def test_the_chunk_path_is_taken_above_the_threshold_only(
    case: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    xp = case.xp
    calls = _count_kernel_calls(case.name, monkeypatch)
    p, q = xp.asarray(LP), xp.asarray(LQ_FULL)
    nbytes = ROWS * WIDTH * 8
    three_rows = {"chunk_bytes": 3 * WIDTH * 8, "accelerator_chunks": 4}  # CPU or GPU (cupy)
    with chunking(threshold_bytes=nbytes, **three_rows):
        kl_divergence(p, q)  # exactly at the threshold: the whole input
    whole_calls = list(calls)
    calls.clear()
    with chunking(threshold_bytes=nbytes - 1, **three_rows):
        chunked = kl_divergence(p, q)
    expected = rel_entr(np.exp(LP), np.exp(LQ_FULL)).sum(-1).mean()
    assert_close(chunked, xp.asarray(expected), rtol=1e-12)
    if case.name == "dask":  # left to dask's own chunks
        assert calls == whole_calls == [ROWS]
    elif case.name in ("torch", "jax"):
        assert whole_calls == [] and calls == [3]
    else:
        assert whole_calls == [ROWS] and calls == [3, 3, 3, 2]


@pytest.mark.parametrize("chunks", [1, 4, 16])
def test_on_an_accelerator_the_rows_split_into_a_number_of_chunks(
    case: Any, chunks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a GPU, chunks are counted, not sized (cache-sized chunks would spend their time
    launching kernels there): the backend's ``on_accelerator`` made True on the CPU."""
    if case.name == "dask":
        pytest.skip("dask arrays are left to dask's own chunks")
    xp = case.xp
    p, q = xp.asarray(LP), xp.asarray(LQ_FULL)
    monkeypatch.setattr(type(get_backend(p)), "on_accelerator", lambda self, x: True)
    calls = _count_kernel_calls(case.name, monkeypatch)
    with chunking(threshold_bytes=1, chunk_bytes=1, accelerator_chunks=chunks):
        rows = kl_divergence(p, q, reduction="none")
    size = -(-ROWS // chunks)
    if case.name in ("torch", "jax"):
        assert calls == [size]
    else:
        assert calls == [min(size, ROWS - s) for s in range(0, ROWS, size)]
    assert_close(rows, xp.asarray(rel_entr(np.exp(LP), np.exp(LQ_FULL)).sum(-1)), rtol=1e-12)


@pytest.mark.parametrize(("threads", "chunk_bytes"), [(1, 512 << 10), (2, 1 << 20), (8, 2 << 20)])
def test_torch_cpu_chunks_are_512_kib_per_thread_up_to_2_mib(
    threads: int, chunk_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch runs a chunk's kernels one after another, each split between its threads: a
    chunk sized per thread keeps its temporaries in each core's L2 cache. An explicit
    ``chunk_bytes`` still wins."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        calls = _count_kernel_calls("torch", monkeypatch)
        row_bytes = 1 << 12  # 1024 float32
        x = torch.zeros(4100, 1024)  # just over 16 MiB
        assert get_backend(x).cpu_chunk_bytes() == chunk_bytes
        with chunking(threshold_bytes=16 << 20):
            entropy_value(x, from_logits=True)
            x.requires_grad_(True)
            kl_divergence(x, x.detach(), from_logits=True).backward()
        with chunking(threshold_bytes=16 << 20, chunk_bytes=64 * row_bytes):
            kl_divergence(x, x.detach(), from_logits=True)
    finally:
        torch.set_num_threads(before)
    assert calls == [chunk_bytes // row_bytes] * 2 + [64]


def test_other_backends_chunk_2_mib_on_the_cpu() -> None:
    from arraypenalties.backends._finite_diff import FiniteDifferenceBackend

    assert FiniteDifferenceBackend("numpy").cpu_chunk_bytes() == 2 << 20
    jax = pytest.importorskip("jax")
    a = jax.numpy.zeros(3, dtype=jax.numpy.float32)
    assert get_backend(a).cpu_chunk_bytes() == 2 << 20


def test_which_arrays_are_on_an_accelerator() -> None:
    from arraypenalties.backends._finite_diff import FiniteDifferenceBackend

    x = np.zeros(3)
    assert not get_backend(x).on_accelerator(x)
    assert FiniteDifferenceBackend("cupy", gpu=True).on_accelerator(x)  # the cupy backend's flag
    torch = pytest.importorskip("torch")
    for device in ("cpu", "meta"):
        t = torch.zeros(3, device=device)
        assert not get_backend(t).on_accelerator(t)
    jax = pytest.importorskip("jax")
    a = jax.numpy.zeros(3, dtype=jax.numpy.float32)
    on_gpu = jax.default_backend() != "cpu"
    assert get_backend(a).on_accelerator(a) == on_gpu
    traced = jax.jit(lambda v: jax.numpy.asarray(get_backend(v).on_accelerator(v)))(a)
    assert bool(traced) == on_gpu


def test_default_threshold_is_32_mib_of_one_input() -> None:
    assert SETTINGS.threshold_bytes == 32 << 20 and SETTINGS.chunk_bytes is None  # backend's
    assert SETTINGS.accelerator_chunks == 16
    on_gpu = {"on_accelerator": lambda: True}

    def never() -> bool:
        raise AssertionError("asked below the threshold")

    assert rows_per_chunk((1024, 8192), 1, np.float32, np, on_accelerator=never) is None
    assert rows_per_chunk((1025, 8192), 1, np.float32, np, **on_gpu) == 65  # ceil(1025 / 16)
    assert rows_per_chunk((4, 257, 8192), 2, np.float32, np, **on_gpu) == 65
    assert rows_per_chunk((1024, 8192), 1, np.float32, np) is None  # exactly 32 MiB
    assert rows_per_chunk((1025, 8192), 1, np.float32, np) == 64  # 2 MiB of 32 KiB rows
    assert rows_per_chunk((4, 257, 8192), 2, np.float32, np) == 64  # leading axes flattened
    half = {"cpu_chunk_bytes": lambda: 1 << 20}  # a backend's own CPU chunk
    assert rows_per_chunk((1025, 8192), 1, np.float32, np, **half) == 32
    assert rows_per_chunk((1025, 8192), 1, np.float32, np, **half, **on_gpu) == 65
    with chunking(chunk_bytes=4 << 20):  # set explicitly: the backend is not asked
        assert rows_per_chunk((1025, 8192), 1, np.float32, np, **half) == 128
    assert rows_per_chunk((8192, 1025), 0, np.float32, np) is None  # not the last axis
    assert rows_per_chunk((1 << 24,), 0, np.float32, np) is None  # one row


def test_chunking_restores_the_settings_and_rejects_bad_values() -> None:
    before = (SETTINGS.threshold_bytes, SETTINGS.chunk_bytes)
    with chunking(threshold_bytes=10) as inside:
        assert (inside.threshold_bytes, inside.chunk_bytes) == (10, before[1])
    assert (SETTINGS.threshold_bytes, SETTINGS.chunk_bytes) == before
    with (
        pytest.raises(
            InvalidValueError, match=r"`chunk_bytes` must be an int in \[1, inf\]; got 0"
        ),
        chunking(chunk_bytes=0),
    ):
        pass
    with (
        pytest.raises(
            InvalidValueError, match=r"`accelerator_chunks` must be an int in \[1, inf\]; got 0"
        ),
        chunking(accelerator_chunks=0),
    ):
        pass
    with chunking(accelerator_chunks=np.int64(3)) as inside:  # numpy ints are ints
        assert inside.accelerator_chunks == 3 and SETTINGS.accelerator_chunks == 3
    assert SETTINGS.accelerator_chunks == 16
    with (
        pytest.raises(InvalidTypeError, match="`threshold_bytes` must be an int"),
        chunking(
            threshold_bytes=1.5  # type: ignore[arg-type]
        ),
    ):
        pass
    assert (SETTINGS.threshold_bytes, SETTINGS.chunk_bytes) == before


# ---------------------------------------------------------------- jax: each pass whole or chunked


@pytest.fixture
def jax_passes(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``force(share)``: plan every jax pass with ``share`` of one input allowed in
    temporaries (0 > any: always chunks; huge: always whole), caches cleared."""
    kernels = pytest.importorskip("arraypenalties.backends._jax_kernels")

    def force(share: float) -> None:
        monkeypatch.setattr(kernels, "_WHOLE_TEMPORARIES", share)
        kernels._plan.cache_clear()
        kernels._chunked.cache_clear()

    yield force
    kernels._plan.cache_clear()
    kernels._chunked.cache_clear()


@pytest.mark.parametrize("share", [-1.0, 1e9], ids=["chunked-passes", "whole-passes"])
@pytest.mark.parametrize(
    ("fn", "lp", "lq"), [*PAIRS, *(pytest.param(f.values[0], LP, None, id=f.id) for f in SINGLES)]
)
def test_jax_passes_whole_or_chunked_equal_the_whole_form(
    jax_passes: Any, share: float, fn: Any, lp: np.ndarray, lq: np.ndarray | None
) -> None:
    jax = pytest.importorskip("jax")
    arrays = tuple(jax.numpy.asarray(a) for a in (lp, lq) if a is not None)
    argnums = tuple(range(len(arrays)))

    def value_and_grad(*xs: Any) -> Any:
        return jax.value_and_grad(lambda *v: fn(*v), argnums=argnums)(*xs)

    jax_passes(share)
    whole, chunked = _whole_and_chunked(lambda: jax.jit(value_and_grad)(*arrays))
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-13)
    for w, c in zip(whole[1], chunked[1], strict=True):
        assert np.all(np.isfinite(c))
        np.testing.assert_allclose(c, w, rtol=1e-12, atol=1e-14)


def test_jax_plans_each_pass_by_xlas_memory_plan() -> None:
    """KL and entropy of log-probabilities run whole (XLA plans no temporaries); JS and
    from-logits gradients run in chunks; the plan is made on shapes, nothing runs."""
    jax = pytest.importorskip("jax")
    from arraypenalties._chunked import row_fn
    from arraypenalties._divergence_rows import js_values, kl_values, neg_entropy_values
    from arraypenalties.backends._jax_kernels import _plan

    xp = jax.numpy
    spec = ((512, 4096), np.dtype(np.float32))
    kl = row_fn(kl_values, axis=-1, form="forward", limit=None, logits=False, xp=xp)
    kl_logits = row_fn(kl_values, axis=-1, form="forward", limit=None, logits=True, xp=xp)
    neg_h = row_fn(neg_entropy_values, axis=-1, temperature=1.0, logits=False, xp=xp)
    js = row_fn(js_values, axis=-1, logits=False, xp=xp)
    neg_h_logits = row_fn(neg_entropy_values, axis=-1, temperature=1.0, logits=True, xp=xp)
    assert _plan(kl, (spec, spec)) == (True, True)
    assert _plan(neg_h, (spec,)) == (True, True)
    assert _plan(neg_h_logits, (spec,))[0]  # the forward whole: XLA plans no temporary
    if jax.default_backend() != "cpu":
        return  # XLA:GPU plans its own temporaries (on an H200: the logits backward none)
    assert _plan(kl_logits, (spec, spec)) == (True, False)
    assert _plan(js, (spec, spec)) == (False, False)


# rows of logits: ordinary, -inf entries, all -inf (no distribution), a spread that
# underflows float32 probabilities, and NaN (kept)
ENTROPY_LOGITS = np.asarray(
    [
        [0.3, -1.2, 2.0, 0.0],
        [1.0, -np.inf, 0.5, -np.inf],
        [-np.inf, -np.inf, -np.inf, -np.inf],
        [0.0, -120.0, -200.0, 3.0],
        [0.0, np.nan, 1.0, 2.0],
    ]
)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jax_entropy_of_logits_kernel(dtype: str, temperature: float) -> None:
    """The jax kernel against the closed forms: ``−H`` per row, and its gradient
    ``p·(log p − Σ p log p) / T``, 0 on the row with no distribution."""
    jax = pytest.importorskip("jax")
    from arraypenalties.backends._jax_kernels import neg_entropy_of_logits_rows

    x = jax.numpy.asarray(ENTROPY_LOGITS, dtype=dtype)
    rows = jax.jit(lambda v: neg_entropy_of_logits_rows(v, -1, temperature))(x)
    with np.errstate(invalid="ignore"):
        lp = log_softmax(ENTROPY_LOGITS / temperature, axis=-1)
    p = np.exp(lp)
    expected = -entr(p).sum(-1)
    expected[2] = 0.0
    rtol = 2e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(np.asarray(rows, dtype=np.float64), expected, rtol=rtol, atol=1e-12)
    live = ENTROPY_LOGITS[:4]
    grad = jax.grad(lambda v: neg_entropy_of_logits_rows(v, -1, temperature).sum())(x[:4])
    with np.errstate(invalid="ignore"):  # the dead row: NaN, replaced below
        lp_live = log_softmax(live / temperature, axis=-1)
    p_live = np.exp(lp_live)
    terms = np.where(p_live > 0, p_live * np.where(p_live > 0, lp_live, 0.0), 0.0)
    closed = p_live * (np.where(p_live > 0, lp_live, 0.0) - terms.sum(-1, keepdims=True))
    closed /= temperature
    closed[2] = 0.0
    got = np.asarray(grad, dtype=np.float64)
    assert np.all(np.isfinite(got)) and np.all(got[2] == 0.0)
    np.testing.assert_allclose(got, closed, rtol=rtol, atol=1e-6 if dtype == "float32" else 1e-14)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_torch_chunked_kl_backward_is_the_closed_form(
    direction: str, from_logits: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KL (either direction, of log-probabilities or logits, no ``max_log_ratio``) writes
    each chunk's gradient in closed form, with no autograd graph per chunk; the gradients
    equal the whole-input form's, the same ``inf`` and NaN where ``q = 0 < p`` included."""
    torch = pytest.importorskip("torch", reason="the chunked backward is torch's")
    from arraypenalties.backends import _torch_kernels

    calls: list[tuple[str, int]] = []
    for name, original in list(_torch_kernels._CLOSED_FORMS.items()):

        def counting(a: Any, *rest: Any, name: str = name, original: Any = original) -> Any:
            calls.append((name, a.shape[0]))
            return original(a, *rest)

        monkeypatch.setitem(_torch_kernels._CLOSED_FORMS, name, counting)
    lq = LQ_FULL.copy()
    lq[0, 1] = -np.inf  # q = 0 where p > 0 in the first row: KL +inf, gradients not finite
    assert np.isfinite(LP[0, 1])

    def grads(with_zero: bool) -> list[np.ndarray]:
        p = torch.tensor(LP, requires_grad=True)
        q = torch.tensor(lq if with_zero else LQ_FULL, requires_grad=True)
        a, b = (p, q) if direction == "forward" else (q, p)
        total = kl_divergence(a, b, direction=direction, from_logits=from_logits, reduction="sum")
        return [g.numpy() for g in torch.autograd.grad(total, (p, q))]

    for with_zero in (True, False):
        whole, chunked = _whole_and_chunked(lambda with_zero=with_zero: grads(with_zero))
        for w, c in zip(whole, chunked, strict=True):
            np.testing.assert_array_equal(np.isinf(c), np.isinf(w))
            np.testing.assert_array_equal(np.isnan(c), np.isnan(w))
            finite = np.isfinite(w)
            np.testing.assert_allclose(c[finite], w[finite], rtol=1e-12, atol=1e-14)
    name = (
        "kl" + ("_logits" if from_logits else "") + ("_reverse" if direction == "reverse" else "")
    )
    assert calls == [(name, n) for n in (3, 3, 3, 2)] * 2  # every chunk; none when whole
    calls.clear()
    p, q = torch.tensor(LP, requires_grad=True), torch.tensor(LQ_FULL, requires_grad=True)
    for other in (
        functools.partial(kl_divergence, symmetric=True),
        functools.partial(kl_divergence, max_log_ratio=5.0),
        js_divergence,
        functools.partial(js_divergence, from_logits=True),
    ):
        with chunking(**THREE_ROWS):
            torch.autograd.grad(other(p, q, reduction="sum"), (p, q))
    assert calls == []  # no closed form there: recomputed under autograd
