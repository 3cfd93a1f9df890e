"""Hypothesis properties of the norm penalties, on every backend."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from arraypenalties import elastic_net, l1, l2
from arraypenalties.testing import to_numpy

# the xp fixture is a constant per parameter: sharing it across examples is safe
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=64)
host_arrays = arrays(np.float64, array_shapes(min_dims=0, max_dims=3, max_side=5), elements=finite)
weights = st.floats(min_value=0.0, max_value=100.0)
ratios = st.floats(min_value=0.0, max_value=1.0)


def _value(result: Any) -> float:
    return float(to_numpy(result))


@fixture_ok
@given(host=host_arrays, lam=weights)
def test_l1_is_nonnegative_and_sums_magnitudes(xp: Any, host: np.ndarray, lam: float) -> None:
    value = _value(l1(xp.asarray(host), lam=lam))
    assert value >= 0.0
    np.testing.assert_allclose(value, lam * np.abs(host).sum(), rtol=1e-12, atol=1e-300)


@fixture_ok
@given(host=host_arrays, lam=weights)
def test_l2_scales_linearly_with_lam(xp: Any, host: np.ndarray, lam: float) -> None:
    x = xp.asarray(host)
    np.testing.assert_allclose(_value(l2(x, lam=lam)), lam * _value(l2(x)), rtol=1e-12, atol=1e-300)


@fixture_ok
@given(host=host_arrays, lam=weights)
def test_elastic_net_endpoints_are_l1_and_l2(xp: Any, host: np.ndarray, lam: float) -> None:
    x = xp.asarray(host)
    assert _value(elastic_net(x, lam=lam, l1_ratio=1.0)) == _value(l1(x, lam=lam))
    assert _value(elastic_net(x, lam=lam, l1_ratio=0.0)) == _value(l2(x, lam=lam))


@fixture_ok
@given(host=host_arrays, ratio=ratios)
def test_elastic_net_interpolates_l1_and_l2(xp: Any, host: np.ndarray, ratio: float) -> None:
    x = xp.asarray(host)
    expected = ratio * _value(l1(x)) + (1 - ratio) * _value(l2(x))
    np.testing.assert_allclose(
        _value(elastic_net(x, l1_ratio=ratio)), expected, rtol=1e-12, atol=1e-9
    )


@fixture_ok
@given(host=host_arrays, bound=st.floats(min_value=0.0, max_value=50.0))
def test_clipped_l2_is_bounded_and_monotone(xp: Any, host: np.ndarray, bound: float) -> None:
    x = xp.asarray(host)
    clipped = _value(l2(x, clip=bound))
    assert clipped <= host.size * bound**2 * (1 + 1e-12)
    assert clipped <= _value(l2(x)) * (1 + 1e-12)


@fixture_ok
@given(host=arrays(np.float64, array_shapes(min_dims=1, max_dims=2, max_side=5), elements=finite))
def test_centered_l2_is_shift_invariant(xp: Any, host: np.ndarray) -> None:
    shifted = host + 7.0
    np.testing.assert_allclose(
        _value(l2(xp.asarray(host), center="mean")),
        _value(l2(xp.asarray(shifted), center="mean")),
        rtol=1e-9,
        atol=1e-6,
    )
