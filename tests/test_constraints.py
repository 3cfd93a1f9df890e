"""orthogonality and consistency: SPEC §3 numbers, fixes, layouts, zero rows, gradients, bad input.

Expected values come from SPEC.md, hand computation, or numpy float64 (exact SVD
for the spectral mode) computed here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.special import log_softmax, rel_entr

from arraypenalties import (
    ArrayPenaltiesError,
    FiniteDifferenceWarning,
    InvalidTypeError,
    InvalidValueError,
    consistency,
    get_backend,
    orthogonality,
)
from arraypenalties.constraints import POWER_ITERATIONS
from arraypenalties.testing import as_array, assert_close, to_numpy, value_rtol

MODES = ["soft", "hard", "spectral"]


# ---------------------------------------------------------------- numpy float64 references


def ref_matrix(x: np.ndarray, axis: str) -> np.ndarray:
    rows = x[None, :] if x.ndim == 1 else x.reshape(-1, x.shape[-1])
    if axis == "rows":
        return rows
    if axis == "vocabulary":
        return rows.T
    if x.ndim <= 2:
        return rows
    s = x.shape[-2]
    # row s concatenates x[b, s, :] over every batch entry b, in order
    return np.stack([np.concatenate([x[b][s] for b in np.ndindex(x.shape[:-2])]) for s in range(s)])


def ref_orthogonality(
    x: np.ndarray, mode: str, normalize: bool = True, axis: str = "rows"
) -> float:
    m = ref_matrix(np.asarray(x, dtype=np.float64), axis)
    if normalize:
        m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-8)
    gram = m @ m.T
    eye = np.eye(len(gram))
    if mode == "soft":
        return float(
            sum(gram[i, j] ** 2 for i in range(len(gram)) for j in range(len(gram)) if i != j)
        )
    if mode == "hard":
        return float(np.sum((gram - eye) ** 2))
    return float(np.linalg.norm(gram - eye, 2) ** 2)  # exact largest singular value


# ---------------------------------------------------------------- orthogonality: SPEC parity

THREE_ROWS = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 3, 5])
def test_identity_is_orthogonal_in_every_mode(xp: Any, dtype_name: str, mode: str, n: int) -> None:
    eye = as_array(xp, np.eye(n), dtype_name)
    for normalize in (True, False):
        assert_close(
            orthogonality(eye, mode=mode, normalize=normalize), as_array(xp, 0.0, dtype_name)
        )


def test_spec_three_rows(xp: Any, dtype_name: str) -> None:
    x = as_array(xp, THREE_ROWS, dtype_name)
    rtol = value_rtol(dtype_name)
    assert_close(orthogonality(x), as_array(xp, 2.0, dtype_name), rtol=rtol)
    assert_close(orthogonality(x, mode="hard"), as_array(xp, 2.0, dtype_name), rtol=rtol)


def test_spec_hard_without_normalize(xp: Any, dtype_name: str) -> None:
    x = as_array(xp, [[2.0, 0.0], [0.0, 1.0]], dtype_name)
    assert_close(orthogonality(x, mode="hard", normalize=False), as_array(xp, 9.0, dtype_name))
    # soft ignores the diagonal: the rows are orthogonal
    assert_close(orthogonality(x, mode="soft", normalize=False), as_array(xp, 0.0, dtype_name))


def test_spectral_is_not_soft(xp: Any, dtype_name: str) -> None:
    # fix: the original's "spectral" was identical to soft (2.0 here). G − I has
    # eigenvalues ±1 and 0, so the squared spectral norm is 1.
    x = as_array(xp, THREE_ROWS, dtype_name)
    assert ref_orthogonality(np.asarray(THREE_ROWS), "spectral") == pytest.approx(1.0, rel=1e-12)
    assert_close(
        orthogonality(x, mode="spectral"),
        as_array(xp, 1.0, dtype_name),
        rtol=value_rtol(dtype_name),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spectral_matches_svd(xp: Any, dtype_name: str, seed: int) -> None:
    host = np.random.default_rng(seed).normal(size=(6, 4))
    expected = ref_orthogonality(host, "spectral")
    gaps = np.sort(np.abs(np.linalg.eigvalsh(_gram_minus_eye(host))))[::-1]
    assert gaps[1] <= 0.9 * gaps[0]  # the documented regime: relative error below 1e-9
    result = orthogonality(as_array(xp, host, dtype_name), mode="spectral")
    assert_close(
        result, as_array(xp, expected, dtype_name), rtol=1e-5 if dtype_name == "float32" else 1e-9
    )


def test_spectral_never_overestimates_and_converges_slowly_without_a_gap(xp: Any) -> None:
    # two eigenvalues of G − I of nearly equal magnitude: slow convergence, from below
    host = np.asarray([[1.0, 0.0, 0.0], [0.9, 0.436, 0.0], [0.0, 0.0, 1.0]])
    expected = ref_orthogonality(host, "spectral")
    result = float(to_numpy(orthogonality(as_array(xp, host, "float64"), mode="spectral")))
    assert result <= expected * (1 + 1e-12)
    assert result == pytest.approx(expected, rel=1e-6)


def _gram_minus_eye(x: np.ndarray) -> np.ndarray:
    m = x / np.linalg.norm(x, axis=1, keepdims=True)
    return m @ m.T - np.eye(len(m))


def test_power_iteration_count_is_documented() -> None:
    assert POWER_ITERATIONS == 50
    assert "POWER_ITERATIONS = 50" in (orthogonality.__doc__ or "")


# ---------------------------------------------------------------- orthogonality: layouts

BSV = np.random.default_rng(3).normal(size=(2, 3, 4))


@pytest.mark.parametrize("axis", ["rows", "sequence", "vocabulary"])
@pytest.mark.parametrize("mode", MODES)
def test_rank3_layouts(xp: Any, dtype_name: str, axis: str, mode: str) -> None:
    expected = ref_orthogonality(BSV, mode, axis=axis)
    result = orthogonality(as_array(xp, BSV, dtype_name), mode=mode, axis=axis)
    rtol = 2e-5 if dtype_name == "float32" else 1e-9
    if mode == "spectral":  # the documented bound: relative error ~ (λ₂/λ₁)^200
        m = ref_matrix(BSV, axis)
        magnitudes = np.sort(np.abs(np.linalg.eigvalsh(_gram_minus_eye(m))))[::-1]
        rtol = max(rtol, (magnitudes[1] / magnitudes[0]) ** 200)
        assert float(to_numpy(result)) <= expected * (1 + 2e-5)
    assert_close(result, as_array(xp, expected, dtype_name), rtol=rtol)


def test_sequence_layout_by_hand(xp: Any) -> None:
    # x[b, s, :]: sequence rows are [x[0, s, :], x[1, s, :]]
    x = np.zeros((2, 2, 2))
    x[0, 0] = [1.0, 0.0]
    x[1, 0] = [0.0, 1.0]
    x[0, 1] = [1.0, 0.0]
    x[1, 1] = [0.0, 0.0]
    # rows: [1,0,0,1] and [1,0,0,0]; unnormalised G = [[2, 1], [1, 1]]: soft = 2·1² = 2
    result = orthogonality(as_array(xp, x, "float64"), axis="sequence", normalize=False)
    assert_close(result, as_array(xp, 2.0, "float64"))
    # the rows layout sees four 2-vectors: (1,0),(1,0) twice-overlapping -> G has 1s off-diagonal
    rows = orthogonality(as_array(xp, x, "float64"), axis="rows", normalize=False)
    assert_close(rows, as_array(xp, 2.0, "float64"))


@pytest.mark.parametrize("axis", ["rows", "sequence", "vocabulary"])
def test_rank2_vocabulary_is_transpose_and_other_ranks_flatten(xp: Any, axis: str) -> None:
    host = BSV[0]
    expected = ref_orthogonality(host, "hard", axis=axis)
    assert_close(
        orthogonality(as_array(xp, host, "float64"), mode="hard", axis=axis),
        as_array(xp, expected, "float64"),
        rtol=1e-12,
    )
    rank4 = np.random.default_rng(4).normal(size=(2, 1, 2, 3))
    assert_close(
        orthogonality(as_array(xp, rank4, "float64"), mode="hard", axis=axis),
        as_array(xp, ref_orthogonality(rank4, "hard", axis=axis), "float64"),
        rtol=1e-12,
    )
    vector = np.asarray([3.0, 4.0])
    assert_close(
        orthogonality(as_array(xp, vector, "float64"), mode="hard", normalize=False, axis=axis),
        as_array(xp, ref_orthogonality(vector, "hard", normalize=False, axis=axis), "float64"),
        rtol=1e-12,
    )


# ---------------------------------------------------------------- orthogonality: gradients


@pytest.mark.parametrize("mode", MODES)
def test_zero_rows_give_finite_values_and_gradients(ad_xp: Any, dtype_name: str, mode: str) -> None:
    host = np.asarray([[0.0, 0.0, 0.0], [1.0, 2.0, 0.5], [0.3, -0.2, 0.9]])
    x = as_array(ad_xp, host, dtype_name)
    value = orthogonality(x, mode=mode)
    assert_close(
        value,
        as_array(ad_xp, ref_orthogonality(host, mode), dtype_name),
        rtol=2e-5 if dtype_name == "float32" else 1e-9,
    )
    grad = to_numpy(get_backend(x).grad(lambda v: orthogonality(v, mode=mode), x))
    assert np.all(np.isfinite(grad))
    # away from the zero row, the gradient is that of the float64 reference
    fd = _numeric_grad(lambda v: ref_orthogonality(v, mode), host)
    tol = 2e-3 if dtype_name == "float32" else 1e-6
    np.testing.assert_allclose(grad[1:], fd[1:], rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_match_reference(ad_xp: Any, dtype_name: str, mode: str) -> None:
    host = np.random.default_rng(5).normal(size=(4, 3))
    x = as_array(ad_xp, host, dtype_name)
    for normalize in (True, False):
        grad = to_numpy(
            get_backend(x).grad(lambda v, n=normalize: orthogonality(v, mode=mode, normalize=n), x)
        )
        fd = _numeric_grad(lambda v, n=normalize: ref_orthogonality(v, mode, normalize=n), host)
        tol = 2e-3 if dtype_name == "float32" else 1e-6
        np.testing.assert_allclose(grad, fd, rtol=tol, atol=tol)


def test_finite_difference_backends_gradient(fd_xp: Any) -> None:
    host = np.random.default_rng(6).normal(size=(3, 3))
    x = as_array(fd_xp, host, "float64")
    with pytest.warns(FiniteDifferenceWarning):
        grad = get_backend(x).grad(lambda v: orthogonality(v, mode="hard"), x)
    fd = _numeric_grad(lambda v: ref_orthogonality(v, "hard"), host)
    np.testing.assert_allclose(to_numpy(grad), fd, rtol=1e-5, atol=1e-7)


def _numeric_grad(f: Any, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (f(up) - f(down)) / (2 * h)
    return grad


def test_half_precision_stays_half(case: Any) -> None:
    xp = case.xp
    if not hasattr(xp, "float16"):
        pytest.skip(
            f"the {case.name} namespace exposes no float16 (the Array API standard has none)"
        )
    x = xp.asarray(THREE_ROWS, dtype=xp.float16)
    assert_close(orthogonality(x), xp.asarray(2.0, dtype=xp.float16), rtol=1e-3)
    a = xp.asarray([1.0, 2.0, 3.0], dtype=xp.float16)
    assert_close(consistency(a, a + 0.5), xp.asarray(0.25, dtype=xp.float16), rtol=1e-3)


# ---------------------------------------------------------------- orthogonality: smaller Gram

TALL = [(9, 2), (40, 3), (7, 1)]


def _big_gram_gradient(m: np.ndarray, mode: str) -> np.ndarray:
    """d/dM of the unnormalised penalty from ``G = M Mᵀ``, in closed form (float64)."""
    gram = m @ m.T
    eye = np.eye(len(m))
    if mode == "soft":
        return 4.0 * (gram - np.diag(np.diag(gram))) @ m
    if mode == "hard":
        return 4.0 * (gram - eye) @ m
    values, vectors = np.linalg.eigh(gram - eye)
    top = int(np.argmax(np.abs(values)))
    u = vectors[:, top : top + 1]
    return 4.0 * values[top] * (u @ u.T) @ m  # d(λ²) = 2λ dλ, dλ = 2 uᵀ dM Mᵀ u


@pytest.mark.parametrize("shape", TALL, ids=str)
@pytest.mark.parametrize("mode", MODES)
def test_tall_inputs_equal_the_row_gram_definition(
    xp: Any, dtype_name: str, mode: str, shape: tuple[int, int]
) -> None:
    host = np.random.default_rng(sum(shape)).normal(size=shape)
    host[1] = 0.0  # a zero row too
    rtol = 2e-5 if dtype_name == "float32" else 1e-10
    for normalize in (True, False):
        expected = ref_orthogonality(host, mode, normalize=normalize)
        result = orthogonality(as_array(xp, host, dtype_name), mode=mode, normalize=normalize)
        assert_close(result, as_array(xp, expected, dtype_name), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("mode", MODES)
def test_tall_input_gradients_equal_the_row_gram_closed_form(
    ad_xp: Any, dtype_name: str, mode: str
) -> None:
    host = np.random.default_rng(11).normal(size=(12, 3))
    x = as_array(ad_xp, host, dtype_name)
    grad = get_backend(x).grad(lambda v: orthogonality(v, mode=mode, normalize=False), x)
    tol = 1e-4 if dtype_name == "float32" else 1e-9
    expected = _big_gram_gradient(host, mode)
    np.testing.assert_allclose(
        to_numpy(grad), expected, rtol=tol, atol=tol * np.abs(expected).max()
    )


def test_tall_input_gradient_on_finite_difference_backends(fd_xp: Any) -> None:
    host = np.random.default_rng(12).normal(size=(6, 2))
    x = as_array(fd_xp, host, "float64")
    with pytest.warns(FiniteDifferenceWarning):
        grad = get_backend(x).grad(lambda v: orthogonality(v, mode="soft", normalize=False), x)
    np.testing.assert_allclose(to_numpy(grad), _big_gram_gradient(host, "soft"), rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_two_column_input_needs_no_rows_squared_memory(mode: str) -> None:
    """The issue's case, scaled: [n, 2] must not allocate the n × n Gram matrix."""
    import tracemalloc

    n = 4000
    x = np.ones((n, 2))
    tracemalloc.start()
    try:
        value = orthogonality(x, mode=mode)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # every row normalises to u = (1, 1)/√2, so G is all ones: J − I has the eigenvalues
    # n − 1 (once) and −1; soft = hard = n² − n, spectral = (n − 1)²
    expected = (n - 1) ** 2 if mode == "spectral" else n * n - n
    assert float(value) == pytest.approx(expected, rel=1e-12)
    assert peak < 20 * x.nbytes  # the n × n Gram alone would be 2000 times the input
    assert peak < n * n * 8 / 100


def test_spectral_accuracy_is_what_the_docstring_states() -> None:
    """A seeded subset of the documented measurement (benchmarks/spectral_accuracy.py)."""
    import pathlib
    import sys

    folder = str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, folder)
    try:
        from spectral_accuracy import measure
    finally:
        sys.path.remove(folder)
    documented = {0.8: 4e-15, 0.85: 4e-10, 0.9: 7e-7, 0.93: 5e-3, 0.99: 0.12, 1.0: 0.017}
    for row in measure(400, seed=0):
        bound = next(value for high, value in documented.items() if row.high <= high)
        assert row.max_error <= bound * 1.05, row
        assert row.max_overestimate <= 1e-14, row
    doc = orthogonality.__doc__ or ""
    assert "0.5 % for ``0.9 < \u03c1 <= 0.93``" in doc and "below 1e-9" not in doc


# ---------------------------------------------------------------- consistency


def test_consistency_spec_mse(xp: Any, dtype_name: str) -> None:
    a, b = as_array(xp, [1.0, 2.0, 3.0], dtype_name), as_array(xp, [1.5, 2.5, 3.5], dtype_name)
    assert_close(consistency(a, b), as_array(xp, 0.25, dtype_name))


A = np.asarray([[1.0, 0.0], [1.0, 1.0], [2.0, -1.0]])
B = np.asarray([[0.0, 2.0], [3.0, 3.0], [1.0, 1.0]])


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.maximum(np.linalg.norm(a, axis=-1), 1e-8)
    nb = np.maximum(np.linalg.norm(b, axis=-1), 1e-8)
    return 1.0 - np.sum(a * b, axis=-1) / (na * nb)


def _sym_kl_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    p, q = np.exp(a), np.exp(b)
    return 0.5 * (rel_entr(p, q).sum(-1) + rel_entr(q, p).sum(-1))


@pytest.mark.parametrize(
    ("metric", "per_element"),
    [
        ("mse", lambda a, b: (a - b) ** 2),
        ("l1", lambda a, b: np.abs(a - b)),
        ("cosine", _cosine_rows),
        ("kl", _sym_kl_rows),
    ],
)
def test_consistency_metrics_and_reductions(
    xp: Any, dtype_name: str, metric: str, per_element: Any
) -> None:
    a_host, b_host = (
        (log_softmax(A, axis=-1), log_softmax(B, axis=-1)) if metric == "kl" else (A, B)
    )
    values = per_element(a_host, b_host)
    a, b = as_array(xp, a_host, dtype_name), as_array(xp, b_host, dtype_name)
    rtol = value_rtol(dtype_name)
    for reduction, expected in [("none", values), ("mean", values.mean()), ("sum", values.sum())]:
        result = consistency(a, b, metric=metric, reduction=reduction)
        assert_close(result, as_array(xp, expected, dtype_name), rtol=rtol, atol=rtol)


def test_cosine_is_per_row_and_honours_reduction(xp: Any, dtype_name: str) -> None:
    # fix: the original took one global cosine and ignored `reduction`
    a = as_array(xp, [[1.0, 0.0], [1.0, 1.0]], dtype_name)
    b = as_array(xp, [[0.0, 2.0], [3.0, 3.0]], dtype_name)
    flat_a, flat_b = np.asarray([1.0, 0.0, 1.0, 1.0]), np.asarray([0.0, 2.0, 3.0, 3.0])
    global_distance = 1 - flat_a @ flat_b / (np.linalg.norm(flat_a) * np.linalg.norm(flat_b))
    assert abs(global_distance - 0.5) > 0.1
    assert_close(
        consistency(a, b, metric="cosine"),
        as_array(xp, 0.5, dtype_name),
        rtol=value_rtol(dtype_name),
    )
    assert_close(
        consistency(a, b, metric="cosine", reduction="sum"),
        as_array(xp, 1.0, dtype_name),
        rtol=value_rtol(dtype_name),
    )
    # 1-D inputs: one row, the global cosine
    one_d = consistency(
        as_array(xp, flat_a, dtype_name), as_array(xp, flat_b, dtype_name), metric="cosine"
    )
    assert_close(one_d, as_array(xp, global_distance, dtype_name), rtol=value_rtol(dtype_name))


def test_cosine_axis_option(xp: Any) -> None:
    a, b = as_array(xp, A, "float64"), as_array(xp, B, "float64")
    expected = _cosine_rows(A.T, B.T)
    assert_close(
        consistency(a, b, metric="cosine", axis=0, reduction="none"),
        as_array(xp, expected, "float64"),
        rtol=1e-12,
    )


def test_cosine_zero_rows_value_and_gradient(ad_xp: Any, dtype_name: str) -> None:
    a_host = np.asarray([[0.0, 0.0, 0.0], [1.0, 2.0, 0.5]])
    b_host = np.asarray([[0.3, -0.2, 0.9], [0.0, 0.0, 0.0]])
    a, b = as_array(ad_xp, a_host, dtype_name), as_array(ad_xp, b_host, dtype_name)
    # a zero row has cosine 0: distance 1 for each row
    assert_close(
        consistency(a, b, metric="cosine", reduction="none"),
        as_array(ad_xp, [1.0, 1.0], dtype_name),
    )
    backend = get_backend(a)
    grad_a = to_numpy(backend.grad(lambda v: consistency(v, b, metric="cosine"), a))
    grad_b = to_numpy(backend.grad(lambda v: consistency(a, v, metric="cosine"), b))
    assert np.all(np.isfinite(grad_a)) and np.all(np.isfinite(grad_b))
    # d/da of −a·b / (1e-8 · ‖b‖) at a = 0, averaged over 2 rows; the non-zero row's partner is 0
    expected_a = np.zeros_like(a_host)
    expected_a[0] = -b_host[0] / (1e-8 * np.linalg.norm(b_host[0])) / 2
    np.testing.assert_allclose(grad_a, expected_a, rtol=1e-5)


def test_kl_metric_is_symmetric_kl_with_zero_probabilities(ad_xp: Any, dtype_name: str) -> None:
    a_host = np.asarray([[0.0, -np.inf], [np.log(0.5), np.log(0.5)]])
    b_host = np.asarray([[0.0, -np.inf], [np.log(0.25), np.log(0.75)]])
    a, b = as_array(ad_xp, a_host, dtype_name), as_array(ad_xp, b_host, dtype_name)
    expected = _sym_kl_rows(a_host, b_host).mean()
    assert_close(
        consistency(a, b, metric="kl"),
        as_array(ad_xp, expected, dtype_name),
        rtol=value_rtol(dtype_name),
    )
    grad = to_numpy(get_backend(a).grad(lambda v: consistency(v, b, metric="kl"), a))
    assert np.all(np.isfinite(grad))
    p, q = np.exp(a_host), np.exp(b_host)
    # ∂/∂log p of ½Σ(p − q)(log p − log q) is ½ p (log p − log q + 1 − q/p); 0 where p = q = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        closed = np.where(p > 0, 0.5 * (p * (a_host - b_host) + p - q), 0.0) / 2
    np.testing.assert_allclose(grad, closed, rtol=1e-5, atol=1e-7)


def test_consistency_gradient_mse(grad_xp: Any) -> None:
    a, b = as_array(grad_xp, A, "float64"), as_array(grad_xp, B, "float64")
    with pytest.warns(FiniteDifferenceWarning) if not get_backend(a).exact else _nothing():
        grad = get_backend(a).grad(lambda v: consistency(v, b), a)
    assert_close(grad, as_array(grad_xp, 2 * (A - B) / A.size, "float64"), rtol=1e-7, atol=1e-9)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"mode": "frobenius"},
            InvalidValueError,
            "`mode` must be one of 'soft', 'hard', 'spectral'; got 'frobenius'",
        ),
        (
            {"axis": "columns"},
            InvalidValueError,
            "`axis` must be one of 'rows', 'sequence', 'vocabulary'; got 'columns'",
        ),
        ({"axis": 0}, InvalidTypeError, "`axis` must be one of"),
        ({"normalize": 1}, InvalidTypeError, "`normalize` must be True or False; got 1"),
    ],
)
def test_bad_orthogonality_options(xp: Any, options: Any, error: type, message: str) -> None:
    # fix: the original treated an unknown axis as "rows"
    with pytest.raises(error, match=message) as info:
        orthogonality(as_array(xp, THREE_ROWS, "float32"), **options)
    assert isinstance(info.value, ArrayPenaltiesError)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"metric": "cos"},
            InvalidValueError,
            "`metric` must be one of 'mse', 'l1', 'cosine', 'kl'; got 'cos'",
        ),
        ({"reduction": "avg"}, InvalidValueError, "`reduction` must be one of"),
        ({"metric": "cosine", "axis": 2}, InvalidValueError, r"`axis` must be in \[-2, 1\]"),
        ({"metric": "mse", "axis": 5}, InvalidValueError, "`axis` must be in"),
        ({"metric": "kl", "axis": "x"}, InvalidTypeError, "`axis` must be an int"),
        ({"broadcast": "no"}, InvalidTypeError, "`broadcast` must be True or False"),
    ],
)
def test_bad_consistency_options(xp: Any, options: Any, error: type, message: str) -> None:
    a = as_array(xp, A, "float32")
    with pytest.raises(error, match=message):
        consistency(a, a, **options)


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_inputs_raise(xp: Any, dtype: str) -> None:
    bad = xp.asarray([[1, 0], [0, 1]], dtype=getattr(xp, dtype))
    good = as_array(xp, [[1.0, 0.0], [0.0, 1.0]], "float32")
    with pytest.raises(InvalidTypeError, match="`x` must have a real floating dtype"):
        orthogonality(bad)
    with pytest.raises(InvalidTypeError, match="`a` must have a real floating dtype"):
        consistency(bad, good)
    with pytest.raises(InvalidTypeError, match="`b` must have a real floating dtype"):
        consistency(good, bad)


def test_consistency_shapes(xp: Any) -> None:
    a = as_array(xp, A, "float64")
    row = as_array(xp, B[0], "float64")
    with pytest.raises(InvalidValueError, match=r"`a` has shape \(3, 2\) but `b` has shape \(2,\)"):
        consistency(a, row)
    expected = ((A - B[0]) ** 2).mean()
    assert_close(consistency(a, row, broadcast=True), as_array(xp, expected, "float64"), rtol=1e-12)


def test_zero_dimensional_inputs(xp: Any) -> None:
    scalar = as_array(xp, 2.0, "float64")
    with pytest.raises(InvalidValueError, match="`x` must have at least 1 dimension"):
        orthogonality(scalar)
    # mse and l1 are elementwise: 0-d is fine; cosine needs a row axis
    assert_close(consistency(scalar, scalar - 1.0), as_array(xp, 1.0, "float64"))
    with pytest.raises(InvalidValueError, match="`a` must have at least 1 dimension"):
        consistency(scalar, scalar, metric="cosine")


@pytest.mark.backend("torch")
def test_mixed_namespaces_raise() -> None:
    import torch

    with pytest.raises(
        InvalidTypeError, match=r"`a` is a numpy\.ndarray but `b` is a torch\.Tensor"
    ):
        consistency(np.asarray(A), torch.asarray(B))


def test_non_arrays_raise() -> None:
    with pytest.raises(InvalidTypeError, match=r"`x` must be an array"):
        orthogonality([[1.0, 0.0]])


def test_options_are_keyword_only() -> None:
    x = np.asarray(THREE_ROWS)
    with pytest.raises(TypeError):
        orthogonality(x, "hard")  # type: ignore[misc]
    with pytest.raises(TypeError):
        consistency(x, x, "mse")  # type: ignore[misc]


def test_explicit_xp_is_used(xp: Any) -> None:
    x = as_array(xp, THREE_ROWS, "float64")
    assert_close(orthogonality(x, xp=xp), as_array(xp, 2.0, "float64"), rtol=1e-12)
    assert_close(consistency(x, x, xp=xp), as_array(xp, 0.0, "float64"))


def test_spectral_value_is_deterministic(xp: Any) -> None:
    x = as_array(xp, np.random.default_rng(8).normal(size=(5, 5)), "float64")
    first = to_numpy(orthogonality(x, mode="spectral"))
    assert to_numpy(orthogonality(x, mode="spectral")) == first
    assert math.isfinite(float(first))
