"""Hypothesis properties of the divergences and constraints, on every backend."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import log_softmax

from arraypenalties import (
    consistency,
    entropy_value,
    js_divergence,
    kl_divergence,
    kl_estimate,
    orthogonality,
)
from arraypenalties.testing import to_numpy

# the xp fixture is a constant per parameter: sharing it across examples is safe
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

LN2 = math.log(2.0)
logit_values = st.floats(min_value=-30.0, max_value=30.0, allow_nan=False, width=64)


@st.composite
def log_distributions(draw: Any, rows: int | None = None, size: int | None = None) -> np.ndarray:
    """Rows of log-probabilities; some entries are exactly -inf (probability 0)."""
    rows = draw(st.integers(1, 3)) if rows is None else rows
    size = draw(st.integers(1, 6)) if size is None else size
    logits = draw(arrays(np.float64, (rows, size), elements=logit_values))
    zeros = draw(arrays(np.bool_, (rows, size)))
    zeros[:, 0] = False  # at least one outcome per row keeps its probability
    return log_softmax(np.where(zeros, -np.inf, logits), axis=-1)


@st.composite
def pairs(draw: Any) -> tuple[np.ndarray, np.ndarray]:
    p = draw(log_distributions())
    q = draw(log_distributions(rows=p.shape[0], size=p.shape[1]))
    return p, q


def _value(result: Any) -> np.ndarray:
    return np.asarray(to_numpy(result), dtype=np.float64)


@fixture_ok
@given(pq=pairs())
def test_kl_is_nonnegative(xp: Any, pq: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = (xp.asarray(v) for v in pq)
    for options in ({}, {"direction": "reverse"}, {"symmetric": True}):
        values = _value(kl_divergence(p, q, reduction="none", **options))
        assert np.all(values >= -1e-12), (options, values)


@fixture_ok
@given(p=log_distributions())
def test_kl_of_a_distribution_with_itself_is_zero(xp: Any, p: np.ndarray) -> None:
    x = xp.asarray(p)
    assert np.all(_value(kl_divergence(x, x, reduction="none")) == 0.0)
    assert np.all(_value(kl_divergence(x, x, symmetric=True, reduction="none")) == 0.0)
    assert np.all(np.abs(_value(js_divergence(x, x, reduction="none"))) <= 1e-12)


@fixture_ok
@given(pq=pairs())
def test_js_is_bounded_by_ln2(xp: Any, pq: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = (xp.asarray(v) for v in pq)
    values = _value(js_divergence(p, q, reduction="none"))
    assert np.all(values >= -1e-12) and np.all(values <= LN2 * (1 + 1e-12)), values


@fixture_ok
@given(pq=pairs())
def test_symmetric_forms_are_symmetric(xp: Any, pq: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = (xp.asarray(v) for v in pq)
    np.testing.assert_allclose(
        _value(js_divergence(p, q, reduction="none")),
        _value(js_divergence(q, p, reduction="none")),
        rtol=1e-12,
        atol=1e-15,
    )
    np.testing.assert_allclose(
        _value(kl_divergence(p, q, symmetric=True, reduction="none")),
        _value(kl_divergence(q, p, symmetric=True, reduction="none")),
        rtol=1e-12,
        atol=1e-15,
    )
    np.testing.assert_allclose(
        _value(kl_divergence(p, q, direction="reverse")),
        _value(kl_divergence(q, p)),
        rtol=1e-12,
        atol=1e-15,
    )
    np.testing.assert_allclose(
        _value(consistency(p, q, metric="kl")), _value(consistency(q, p, metric="kl")), rtol=1e-12
    )


@fixture_ok
@given(p=log_distributions(), temperature=st.floats(min_value=0.05, max_value=20.0))
def test_entropy_is_bounded(xp: Any, p: np.ndarray, temperature: float) -> None:
    x = xp.asarray(p)
    size = p.shape[-1]
    values = _value(entropy_value(x, reduction="none", temperature=temperature))
    assert np.all(values >= -1e-12) and np.all(values <= math.log(size) * (1 + 1e-12) + 1e-12)
    normalised = _value(entropy_value(x, reduction="none", normalize=True))
    assert np.all(normalised >= -1e-12) and np.all(normalised <= 1 + 1e-12)


@fixture_ok
@given(
    lp=arrays(np.float64, st.integers(1, 8), elements=st.floats(-50.0, 0.0)),
    shift=arrays(np.float64, 8, elements=st.floats(-40.0, 40.0)),
)
def test_k3_is_nonnegative(xp: Any, lp: np.ndarray, shift: np.ndarray) -> None:
    ref = lp + shift[: lp.shape[0]]
    for dtype in (xp.float32, xp.float64):
        values = _value(
            kl_estimate(xp.asarray(lp, dtype=dtype), xp.asarray(ref, dtype=dtype), reduction="none")
        )
        assert np.all(values >= 0.0) and np.all(np.isfinite(values)), values


# spectral: 100 matrix-vector products a call, slow to build as a dask graph
@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 6),
    scales=arrays(np.float64, 6, elements=st.floats(0.1, 100.0)),
    permutation_seed=st.integers(0, 1000),
)
def test_orthogonality_of_scaled_permuted_identity_is_zero(
    xp: Any, n: int, scales: np.ndarray, permutation_seed: int
) -> None:
    rows = np.eye(n)[np.random.default_rng(permutation_seed).permutation(n)]
    x = xp.asarray(rows)
    scaled = xp.asarray(rows * scales[:n, None])
    for mode in ("soft", "hard", "spectral"):
        assert float(_value(orthogonality(x, mode=mode))) == 0.0
        assert float(_value(orthogonality(x, mode=mode, normalize=False))) == 0.0
        assert abs(float(_value(orthogonality(scaled, mode=mode)))) <= 1e-24
    assume(n > 1)
    # soft ignores row lengths altogether
    assert float(_value(orthogonality(scaled, mode="soft", normalize=False))) == 0.0
