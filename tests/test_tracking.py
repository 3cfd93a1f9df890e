"""Gradient-norm tracking: SPEC §6 numbers on every backend with gradients, failures, linearity."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from arraypenalties import (
    BackendError,
    FiniteDifferenceWarning,
    GradientTrackingWarning,
    MultiPipeline,
    Pipeline,
    get_backend,
    grad_norm,
    pipeline_grad_norms,
    total_grad_norm,
)
from arraypenalties._lib.namespace import get_xp
from arraypenalties.testing import BackendCase, as_array, assert_close, to_numpy


def _rel(case: BackendCase, dtype_name: str) -> float:
    if not case.exact_grad:  # finite differences, evaluated in float64
        return 1e-6
    return 1e-6 if dtype_name == "float32" else 1e-12


@contextlib.contextmanager
def _gradient_warnings(case: BackendCase) -> Iterator[None]:
    """Finite-difference backends warn on every gradient request; autodiff never does."""
    if case.exact_grad:
        yield
        return
    with pytest.warns(FiniteDifferenceWarning):
        yield


def sum_abs(x: Any) -> Any:
    xp = get_xp(x)
    return xp.sum(xp.abs(x))


def sum_sq(x: Any) -> Any:
    return get_xp(x).sum(x * x)


def mean(x: Any) -> Any:
    return get_xp(x).mean(x)


def total(x: Any) -> Any:
    return get_xp(x).sum(x)


def argmax(x: Any) -> Any:
    return get_xp(x).argmax(x)


# ----------------------------------------------------------------------------- SPEC §6 parity
@pytest.mark.parametrize(
    ("fn", "values", "expected"),
    [
        pytest.param(sum_abs, [1, -2, 3], math.sqrt(3), id="sum-abs"),
        pytest.param(sum_sq, [1, 2, 3], math.sqrt(56), id="sum-sq"),
        pytest.param(mean, [1, 2, 3], math.sqrt(1 / 3), id="mean"),
    ],
)
def test_grad_norm_parity(
    grad_case: BackendCase, dtype_name: str, fn: Any, values: list[float], expected: float
) -> None:
    x = as_array(grad_case.xp, values, dtype_name)
    with _gradient_warnings(grad_case):
        norm = grad_norm(fn, x)
    assert type(norm) is float
    assert norm == pytest.approx(expected, rel=_rel(grad_case, dtype_name))


def test_compute_tracking_l1_parity(grad_case: BackendCase, dtype_name: str) -> None:
    p = Pipeline().add("l1", "l1")
    with _gradient_warnings(grad_case):
        _, metrics = p.compute(as_array(grad_case.xp, [1, 1, 1], dtype_name), track_grad_norms=True)
    rel = _rel(grad_case, dtype_name)
    assert metrics["l1_grad_norm"] == pytest.approx(math.sqrt(3), rel=rel)
    assert metrics["total_grad_norm"] == pytest.approx(math.sqrt(3), rel=rel)
    assert list(metrics) == ["l1", "l1_weighted", "total", "l1_grad_norm", "total_grad_norm"]


def test_unweighted_entry_norms_and_weighted_total(grad_case: BackendCase, dtype_name: str) -> None:
    # ∇Σx = 1 (√3), ∇Σx² = 2x (√56, unweighted); ∇(Σx + 0.5·Σx²) = 1 + x = [2, 3, 4] → √29
    p = Pipeline().add("sum", total).add("sq", "l2", weight=0.5)
    x = as_array(grad_case.xp, [1, 2, 3], dtype_name)
    rel = _rel(grad_case, dtype_name)
    with _gradient_warnings(grad_case):
        _, metrics = p.compute(x, track_grad_norms=True)
    assert metrics["sum_grad_norm"] == pytest.approx(math.sqrt(3), rel=rel)
    assert metrics["sq_grad_norm"] == pytest.approx(math.sqrt(56), rel=rel)
    assert metrics["total_grad_norm"] == pytest.approx(math.sqrt(29), rel=rel)
    assert metrics["total"] == pytest.approx(6 + 7, rel=1e-6)
    with _gradient_warnings(grad_case):
        norms = pipeline_grad_norms(p, x)
    assert norms == pytest.approx({"sum_grad_norm": math.sqrt(3), "sq_grad_norm": math.sqrt(56)})
    with _gradient_warnings(grad_case):
        assert total_grad_norm(p, x) == pytest.approx(math.sqrt(29), rel=rel)


def test_extra_args_reach_gradient_norms(grad_case: BackendCase) -> None:
    p = Pipeline().add("l1", "l1", opts={"lam": 0.5})
    x = as_array(grad_case.xp, [1, -2, 3], "float64")
    with _gradient_warnings(grad_case):
        _, metrics = p.compute(x, extra_args={"lam": 2.0}, track_grad_norms=True)
    assert metrics["l1_grad_norm"] == pytest.approx(2 * math.sqrt(3))
    with _gradient_warnings(grad_case):
        norms = pipeline_grad_norms(p, x, extra_args={"lam": 2.0})
    assert norms["l1_grad_norm"] == pytest.approx(2 * math.sqrt(3))


def test_disabled_and_non_differentiable_entries_are_skipped(grad_case: BackendCase) -> None:
    p = (
        Pipeline()
        .add("l1", "l1")
        .add("off", "l2", enabled=False)
        .add("logged", "l2", weight=10.0, differentiable=False)
    )
    x = as_array(grad_case.xp, [1, 1, 1], "float64")
    with _gradient_warnings(grad_case):
        _, metrics = p.compute(x, track_grad_norms=True)
    assert "off" not in metrics and "logged_grad_norm" not in metrics
    assert metrics["logged_weighted"] == pytest.approx(30.0)
    assert metrics["total_grad_norm"] == pytest.approx(math.sqrt(3))  # only differentiable ones


def test_empty_and_nothing_to_track(grad_case: BackendCase) -> None:
    x = as_array(grad_case.xp, [1, 2], "float64")
    assert total_grad_norm(Pipeline(), x) == 0.0
    assert pipeline_grad_norms(Pipeline(), x) == {}
    _, metrics = Pipeline().compute(x, track_grad_norms=True)
    assert metrics == {"total": 0.0, "total_grad_norm": 0.0}
    only_logged = Pipeline().add("l1", "l1", differentiable=False)
    _, metrics = only_logged.compute(x, track_grad_norms=True)
    assert metrics["total_grad_norm"] == 0.0 and "l1_grad_norm" not in metrics


# ----------------------------------------------------------------------------- failures
def test_argmax_entry_gives_none_error_key_and_warning(grad_case: BackendCase) -> None:
    p = Pipeline().add("l1", "l1").add("am", argmax)
    x = as_array(grad_case.xp, [1, 3, 2], "float64")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        total_value, metrics = p.compute(x, track_grad_norms=True)
    tracking = [w for w in caught if issubclass(w.category, GradientTrackingWarning)]
    assert len(tracking) == 1
    text = str(tracking[0].message)
    assert "gradient computation failed for 'am'" in text
    assert "non-differentiable operations" in text
    assert tracking[0].filename == __file__  # attributed to the caller's line
    others = {w.category for w in caught} - {GradientTrackingWarning}
    assert others <= ({FiniteDifferenceWarning} if not grad_case.exact_grad else set())
    assert metrics["am_grad_norm"] is None and metrics["am_grad_norm_error"] is True
    assert metrics["l1_grad_norm"] == pytest.approx(math.sqrt(3))
    assert metrics["total_grad_norm"] is None  # the total is not differentiable either
    assert metrics["am"] == 1.0 and metrics["total"] == pytest.approx(7.0)
    assert_close(total_value, as_array(grad_case.xp, 7.0, "float64"))


def test_grad_norm_failure_returns_none(grad_case: BackendCase) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert grad_norm(argmax, as_array(grad_case.xp, [1, 3, 2], "float64")) is None
    assert any(issubclass(w.category, GradientTrackingWarning) for w in caught)


def test_autodiff_error_is_a_tracking_failure(ad_case: BackendCase) -> None:
    xp = ad_case.xp

    def python_branch(x: Any) -> Any:  # bool() of a traced / grad-requiring value
        return xp.sum(x) if bool(xp.sum(x) > 0) else xp.sum(x * x)

    def detach_then_square(x: Any) -> Any:
        return xp.sum(get_backend(x).stop_gradient(x) ** 2)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        norm = grad_norm(detach_then_square, as_array(xp, [1.0, 2.0], "float64"))
    assert norm == 0.0 and not caught  # no dependence on x: a zero gradient, not a failure
    if ad_case.name == "jax":
        with pytest.warns(GradientTrackingWarning, match="python_branch"):
            assert grad_norm(python_branch, as_array(xp, [1.0, 2.0], "float64")) is None


def test_non_scalar_output_raises_naming_the_entry(grad_case: BackendCase) -> None:
    p = Pipeline().add("rows", "l1", opts={"reduction": "none"})
    with (
        _gradient_warnings(grad_case),
        pytest.raises(ValueError, match="entry 'rows' must return a 0-d array"),
    ):
        p.compute(as_array(grad_case.xp, [1.0, 2.0], "float64"), track_grad_norms=True)


@pytest.mark.backend("dask")
def test_dask_tracking_raises_backend_error() -> None:
    import dask.array as da

    x = da.from_array([1.0, 2.0], chunks=1)
    with pytest.raises(BackendError, match="values only"):
        Pipeline().add("l1", "l1").compute(x, track_grad_norms=True)
    with pytest.raises(BackendError, match="values only"):
        grad_norm(sum_sq, x)


# ----------------------------------------------------------------------------- linearity
def test_gradient_of_total_is_weighted_sum_of_entry_gradients(ad_case: BackendCase) -> None:
    xp = ad_case.xp
    x = as_array(xp, [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], "float64")
    p = (
        Pipeline()
        .add("l1", "l1", weight=0.3)
        .add("l2", "l2", weight=0.2, opts={"center": "mean"})
        .add("enet", "elastic_net", weight=0.7, opts={"l1_ratio": 0.1})
    )
    backend = get_backend(x)
    grad_total = backend.grad(p.compute_total, x)
    by_hand = sum(e.weight * to_numpy(backend.grad(lambda v, e=e: e.fn(v, **e.opts), x)) for e in p)
    assert_close(grad_total, xp.asarray(by_hand, dtype=xp.float64), rtol=1e-12)
    norm = total_grad_norm(p, x)
    assert norm == pytest.approx(float((by_hand**2).sum() ** 0.5), rel=1e-12)


# ----------------------------------------------------------------------------- MultiPipeline
def test_multipipeline_norms_over_all_inputs(grad_case: BackendCase, dtype_name: str) -> None:
    xp = grad_case.xp

    def sq_diff(a: Any, b: Any) -> Any:
        return xp.sum((a - b) ** 2)

    p = MultiPipeline().add("a", "l2", inputs=("s",)).add("b", sq_diff, inputs=("s", "t"))
    inputs = {"s": as_array(xp, [1, 2], dtype_name), "t": as_array(xp, [0, 0], dtype_name)}
    rel = _rel(grad_case, dtype_name)
    with _gradient_warnings(grad_case):
        _, metrics = p.compute(inputs, track_grad_norms=True)
    # ∇ₛ Σs² = [2, 4]; ∇(s, t) Σ(s − t)² = ([2, 4], [−2, −4]); total: ([4, 8], [−2, −4])
    assert metrics["a_grad_norm"] == pytest.approx(math.sqrt(20), rel=rel)
    assert metrics["b_grad_norm"] == pytest.approx(math.sqrt(40), rel=rel)
    assert metrics["total_grad_norm"] == pytest.approx(10.0, rel=rel)
    with _gradient_warnings(grad_case):
        assert total_grad_norm(p, inputs) == pytest.approx(10.0, rel=rel)


def test_multipipeline_mixed_float_dtypes(ad_case: BackendCase) -> None:
    xp = ad_case.xp
    seen = {}

    def record(a: Any, b: Any) -> Any:
        seen["dtypes"] = (a.dtype, b.dtype)
        return xp.sum(a * a) + xp.astype(xp.sum(b * b), a.dtype)

    p = MultiPipeline().add("r", record, inputs=("a", "b"))
    inputs = {"a": as_array(xp, [1, 2], "float32"), "b": as_array(xp, [3], "float64")}
    _, metrics = p.compute(inputs, track_grad_norms=True)
    assert seen["dtypes"] == (xp.float32, xp.float64)  # each input keeps its own dtype
    assert metrics["r_grad_norm"] == pytest.approx(math.sqrt(4 + 16 + 36), rel=1e-6)
