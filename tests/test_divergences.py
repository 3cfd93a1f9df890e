"""kl_divergence, js_divergence, entropy, kl_estimate: SPEC §2 numbers, fixes, edges, gradients.

Every expected value comes from SPEC.md, a closed form, or scipy / numpy in
float64 computed here; gradients are compared with closed forms and with a
float64 central difference of the scipy reference (never with the code under test).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from scipy.special import entr, log_softmax, rel_entr

from arraypenalties import (
    ArrayPenaltiesError,
    FiniteDifferenceWarning,
    InvalidTypeError,
    InvalidValueError,
    entropy,
    entropy_value,
    get_backend,
    js_divergence,
    kl_divergence,
    kl_estimate,
)
from arraypenalties.divergences import chunking
from arraypenalties.testing import as_array, assert_close, to_numpy, value_rtol

LN2 = math.log(2.0)
P_LOGITS = [-0.1, -1.5, -3.0, -4.0]
Q_LOGITS = [-2.0, -0.5, -2.0, -3.0]
P_SPEC = log_softmax(np.asarray(P_LOGITS))
Q_SPEC = log_softmax(np.asarray(Q_LOGITS))


@pytest.fixture(params=["whole", "chunked"])
def row_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test on the whole-input form and on the chunked form, one row a chunk."""
    if request.param == "whole":
        yield request.param
        return
    with chunking(threshold_bytes=1, chunk_bytes=1):
        yield request.param


# ---------------------------------------------------------------- float64 references (scipy)


def ref_kl(lp: np.ndarray, lq: np.ndarray, axis: int = -1) -> np.ndarray:
    return rel_entr(np.exp(lp), np.exp(lq)).sum(axis)


def ref_js(lp: np.ndarray, lq: np.ndarray, axis: int = -1) -> np.ndarray:
    p, q = np.exp(lp), np.exp(lq)
    m = 0.5 * (p + q)
    return 0.5 * rel_entr(p, m).sum(axis) + 0.5 * rel_entr(q, m).sum(axis)


def ref_entropy(lp: np.ndarray, axis: int = -1) -> np.ndarray:
    return entr(np.exp(lp)).sum(axis)


def numeric_grad(f: Any, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a float64 reference; ``-inf`` entries get 0, the limit there."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        if not np.isfinite(x[index]):
            continue
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (f(up) - f(down)) / (2 * h)
    return grad


# ---------------------------------------------------------------- SPEC parity


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, 0.9390191),
        ({"direction": "reverse"}, 0.8314714),
        ({"symmetric": True}, 0.8852453),
        ({"symmetric": True, "direction": "reverse"}, 0.8852453),
    ],
    ids=["forward", "reverse", "symmetric", "symmetric-ignores-direction"],
)
def test_kl_spec_parity(
    row_path: str, xp: Any, dtype_name: str, options: Any, expected: float
) -> None:
    p, q = as_array(xp, P_SPEC, dtype_name), as_array(xp, Q_SPEC, dtype_name)
    result = kl_divergence(p, q, **options)
    assert_close(result, as_array(xp, expected, dtype_name), rtol=2e-6, atol=5e-8)
    # and the float64 reference to full precision
    reverse = options.get("direction") == "reverse"
    forward_ref, reverse_ref = ref_kl(P_SPEC, Q_SPEC), ref_kl(Q_SPEC, P_SPEC)
    full = (
        0.5 * (forward_ref + reverse_ref)
        if options.get("symmetric")
        else (reverse_ref if reverse else forward_ref)
    )
    assert_close(result, as_array(xp, full, dtype_name), rtol=value_rtol(dtype_name))


def test_kl_to_uniform_spec_parity(xp: Any, dtype_name: str) -> None:
    p = as_array(xp, np.log([0.4, 0.3, 0.2, 0.1]), dtype_name)
    q = as_array(xp, np.log([0.25] * 4), dtype_name)
    assert_close(kl_divergence(p, q), as_array(xp, 0.1064401, dtype_name), rtol=2e-6, atol=5e-8)


def test_js_of_disjoint_one_hots_is_exactly_ln2(row_path: str, xp: Any, dtype_name: str) -> None:
    # fix: the original mixed in linear space with a 1e-10 floor (ln 2 − 2e-10 in float64)
    p = as_array(xp, [[0.0, -np.inf, -np.inf], [-np.inf, 0.0, -np.inf]], dtype_name)
    q = as_array(xp, [[-np.inf, 0.0, -np.inf], [-np.inf, -np.inf, 0.0]], dtype_name)
    assert_close(js_divergence(p, q), as_array(xp, LN2, dtype_name), rtol=0)
    assert_close(
        js_divergence(p, q, reduction="none"), as_array(xp, [LN2, LN2], dtype_name), rtol=0
    )


def test_js_matches_float64_reference(row_path: str, xp: Any, dtype_name: str) -> None:
    result = js_divergence(as_array(xp, P_SPEC, dtype_name), as_array(xp, Q_SPEC, dtype_name))
    assert_close(
        result, as_array(xp, ref_js(P_SPEC, Q_SPEC), dtype_name), rtol=value_rtol(dtype_name)
    )


def test_entropy_spec_parity(xp: Any, dtype_name: str) -> None:
    uniform = as_array(xp, np.log([0.25] * 4), dtype_name)
    assert_close(
        entropy_value(uniform), as_array(xp, math.log(4), dtype_name), rtol=value_rtol(dtype_name)
    )
    assert_close(
        entropy_value(uniform, normalize=True),
        as_array(xp, 1.0, dtype_name),
        rtol=value_rtol(dtype_name),
    )
    logprobs = as_array(xp, log_softmax(np.asarray([-0.5, -1.0, -2.0, -3.0])), dtype_name)
    assert_close(entropy_value(logprobs), as_array(xp, 1.0890656, dtype_name), rtol=2e-6, atol=5e-8)
    assert_close(
        entropy_value(logprobs, temperature=0.5),
        as_array(xp, 0.7405333, dtype_name),
        rtol=2e-6,
        atol=5e-8,
    )


def test_entropy_modes_signs(xp: Any, dtype_name: str) -> None:
    # fix of the sign: "bonus" is −H (minimising it raises H), "penalty" and "value" are +H
    logprobs = as_array(xp, P_SPEC, dtype_name)
    h = float(ref_entropy(P_SPEC))
    assert h > 0
    assert_close(entropy(logprobs), as_array(xp, -h, dtype_name), rtol=value_rtol(dtype_name))
    assert_close(
        entropy(logprobs, mode="bonus"), as_array(xp, -h, dtype_name), rtol=value_rtol(dtype_name)
    )
    assert_close(
        entropy(logprobs, mode="penalty"), as_array(xp, h, dtype_name), rtol=value_rtol(dtype_name)
    )
    assert_close(
        entropy(logprobs, mode="value"), as_array(xp, h, dtype_name), rtol=value_rtol(dtype_name)
    )


def test_minimising_the_bonus_raises_entropy(ad_xp: Any) -> None:
    logits = ad_xp.asarray([2.0, 0.5, -1.0, -3.0], dtype=ad_xp.float64)

    def bonus_of_logits(v: Any) -> Any:
        return entropy(v - get_backend(v).logsumexp(v, axis=-1, keepdims=True))

    def h_of(v: Any) -> float:
        return float(ref_entropy(log_softmax(to_numpy(v))))

    step = get_backend(logits).grad(bonus_of_logits, logits)
    assert h_of(logits - 0.1 * step) > h_of(logits)  # gradient descent on −H raises H
    penalty_step = get_backend(logits).grad(
        lambda v: entropy(v - get_backend(v).logsumexp(v, axis=-1, keepdims=True), mode="penalty"),
        logits,
    )
    assert h_of(logits - 0.1 * penalty_step) < h_of(logits)


def test_entropy_normalize_with_one_outcome_is_zero(xp: Any, dtype_name: str) -> None:
    x = as_array(xp, [[0.0], [0.0]], dtype_name)
    assert_close(entropy_value(x, normalize=True), as_array(xp, 0.0, dtype_name), rtol=0)
    assert_close(
        entropy_value(x, normalize=True, reduction="none"),
        as_array(xp, [0.0, 0.0], dtype_name),
        rtol=0,
    )


def test_entropy_temperature_renormalises(row_path: str, xp: Any, dtype_name: str) -> None:
    # unnormalised input: T != 1 renormalises, T = 1 takes the input as given
    host = np.asarray([[0.3, -1.0, 2.0], [0.0, 0.0, -np.inf]])
    x = as_array(xp, host, dtype_name)
    for temperature in (0.5, 2.0, 1.0 + 1e-9):
        expected = ref_entropy(log_softmax(host / temperature, axis=-1))
        result = entropy_value(x, temperature=temperature, reduction="none")
        assert_close(
            result,
            as_array(xp, expected, dtype_name),
            rtol=1e-5 if dtype_name == "float32" else 1e-9,
        )
    as_given = entr(np.exp(host)).sum(-1)
    assert_close(
        entropy_value(x, reduction="none"),
        as_array(xp, as_given, dtype_name),
        rtol=value_rtol(dtype_name),
    )


# ---------------------------------------------------------------- reductions, 3-D, axis

RNG = np.random.default_rng(7)
BTV = log_softmax(RNG.normal(size=(2, 3, 5)) * 2, axis=-1)
BTV_Q = log_softmax(RNG.normal(size=(2, 3, 5)) * 2, axis=-1)

PER_SAMPLE = [
    pytest.param(kl_divergence, {}, lambda p, q, a: ref_kl(p, q, a), id="kl"),
    pytest.param(
        kl_divergence, {"direction": "reverse"}, lambda p, q, a: ref_kl(q, p, a), id="kl-reverse"
    ),
    pytest.param(
        kl_divergence,
        {"symmetric": True},
        lambda p, q, a: 0.5 * (ref_kl(p, q, a) + ref_kl(q, p, a)),
        id="kl-symmetric",
    ),
    pytest.param(js_divergence, {}, lambda p, q, a: ref_js(p, q, a), id="js"),
]


@pytest.mark.parametrize(("fn", "options", "reference"), PER_SAMPLE)
@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_pair_reductions_on_3d_inputs(
    row_path: str, xp: Any, dtype_name: str, fn: Any, options: Any, reference: Any, axis: int
) -> None:
    # axis 1 and 0 are not distributions: the math is the same per slice all the same
    p, q = as_array(xp, BTV, dtype_name), as_array(xp, BTV_Q, dtype_name)
    per_sample = reference(BTV, BTV_Q, axis)
    rtol = value_rtol(dtype_name)
    for reduction, expected in [
        ("none", per_sample),
        ("mean", per_sample.mean()),
        ("sum", per_sample.sum()),
    ]:
        result = fn(p, q, reduction=reduction, axis=axis, **options)
        assert_close(result, as_array(xp, expected, dtype_name), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize(
    ("options", "transform"),
    [
        ({}, lambda h, v: h),
        ({"normalize": True}, lambda h, v: h / np.log(v)),
        ({"mode": "bonus"}, lambda h, v: -h),
    ],
    ids=["value", "normalize", "bonus"],
)
def test_entropy_reductions_on_3d_inputs(
    row_path: str, xp: Any, dtype_name: str, axis: int, options: Any, transform: Any
) -> None:
    x = as_array(xp, BTV, dtype_name)
    options = {"mode": "value", **options}
    per_sample = transform(ref_entropy(BTV, axis), BTV.shape[axis])
    rtol = value_rtol(dtype_name)
    for reduction, expected in [
        ("none", per_sample),
        ("mean", per_sample.mean()),
        ("sum", per_sample.sum()),
    ]:
        result = entropy(x, reduction=reduction, axis=axis, **options)
        assert_close(result, as_array(xp, expected, dtype_name), rtol=rtol, atol=rtol)


def test_broadcast_only_when_asked(xp: Any, dtype_name: str) -> None:
    p = as_array(xp, BTV, dtype_name)
    q_row = as_array(xp, BTV_Q[0, 0], dtype_name)
    with pytest.raises(
        InvalidValueError,
        match=r"`p_logprobs` has shape \(2, 3, 5\) but `q_logprobs` has shape \(5,\)",
    ):
        kl_divergence(p, q_row)
    expected = ref_kl(BTV, np.broadcast_to(BTV_Q[0, 0], BTV.shape))
    assert_close(
        kl_divergence(p, q_row, broadcast=True, reduction="none"),
        as_array(xp, expected, dtype_name),
        rtol=value_rtol(dtype_name),
        atol=value_rtol(dtype_name),
    )
    with pytest.raises(InvalidValueError, match="cannot be broadcast together"):
        js_divergence(p, as_array(xp, [0.0, 0.0], dtype_name), broadcast=True)


def test_mixed_float_dtypes_promote(xp: Any) -> None:
    p, q = as_array(xp, P_SPEC, "float32"), as_array(xp, Q_SPEC, "float64")
    expected = ref_kl(P_SPEC.astype(np.float32).astype(np.float64), Q_SPEC)
    assert_close(kl_divergence(p, q), as_array(xp, expected, "float64"), rtol=1e-12)


# ---------------------------------------------------------------- SPEC fixes (fail on the original)


def test_kl_has_no_log_ratio_clamp(xp: Any, dtype_name: str) -> None:
    # the original clamped log p − log q to ±100: this would give 0.5·(0 + 100) = 50
    lp = np.log([0.5, 0.5])
    lq = np.asarray([np.log(0.5), -300.0])
    expected = 0.5 * 0.0 + 0.5 * (np.log(0.5) + 300.0)  # 149.65
    result = kl_divergence(as_array(xp, lp, dtype_name), as_array(xp, lq, dtype_name))
    assert_close(result, as_array(xp, expected, dtype_name), rtol=value_rtol(dtype_name))


def test_kl_has_no_small_probability_mask(xp: Any, dtype_name: str) -> None:
    # the original dropped terms with p <= 1e-10: here that term is nearly the whole KL
    lp = np.asarray([np.log(1e-11), np.log1p(-1e-11)])
    lq = np.asarray([-92.0, np.log1p(-math.exp(-92.0))])
    p, q = as_array(xp, lp, dtype_name), as_array(xp, lq, dtype_name)
    expected = ref_kl(to_numpy(p).astype(np.float64), to_numpy(q).astype(np.float64))
    assert expected > 6e-10
    assert_close(kl_divergence(p, q), as_array(xp, expected, dtype_name), rtol=1e-5, atol=1e-14)


def test_kl_is_inf_where_q_is_zero_and_p_is_not(row_path: str, xp: Any, dtype_name: str) -> None:
    p = as_array(xp, np.log([0.5, 0.5]), dtype_name)
    q = as_array(xp, [0.0, -np.inf], dtype_name)
    assert_close(kl_divergence(p, q), as_array(xp, np.inf, dtype_name))
    assert_close(kl_divergence(p, q, direction="reverse"), as_array(xp, 0.5 * 0 + LN2, dtype_name))
    assert_close(kl_divergence(p, q, symmetric=True), as_array(xp, np.inf, dtype_name))


def test_max_log_ratio_restores_a_clamp(xp: Any, dtype_name: str) -> None:
    p = as_array(xp, np.log([0.5, 0.5]), dtype_name)
    q = as_array(xp, [0.0, -np.inf], dtype_name)
    # term 1: 0.5·(ln 0.5 − 0); term 2: 0.5·min(ln 0.5 + inf, 30) = 15
    expected = 0.5 * np.log(0.5) + 0.5 * 30.0
    result = kl_divergence(p, q, max_log_ratio=30.0)
    assert_close(result, as_array(xp, expected, dtype_name), rtol=value_rtol(dtype_name))
    # symmetric: the clamp holds in both directions
    sym = kl_divergence(p, q, max_log_ratio=30.0, symmetric=True)
    expected_sym = 0.5 * ((0.5 - 1.0) * -LN2 + 0.5 * 30.0)
    assert_close(sym, as_array(xp, expected_sym, dtype_name), rtol=value_rtol(dtype_name))


def test_unknown_direction_raises_instead_of_forward(xp: Any) -> None:
    p = as_array(xp, P_SPEC, "float64")
    with pytest.raises(
        InvalidValueError, match="`direction` must be one of 'forward', 'reverse'; got 'backward'"
    ):
        kl_divergence(p, p, direction="backward")


# ---------------------------------------------------------------- edge cases with gradients

EDGE = {
    # name: (log p, log q) rows; -inf is probability 0
    "inf-in-p": ([[0.0, -np.inf, -np.inf], [np.log(0.7), np.log(0.3), -np.inf]], None),
    "inf-in-q": (None, [[np.log(0.5), np.log(0.5), -np.inf], [-np.inf, 0.0, -np.inf]]),
    "inf-in-both": (
        [[np.log(0.6), np.log(0.4), -np.inf], [-np.inf, 0.0, -np.inf]],
        [[np.log(0.2), np.log(0.8), -np.inf], [-np.inf, np.log(0.9), np.log(0.1)]],
    ),
    "one-hot": ([[0.0, -np.inf, -np.inf]], [[np.log(0.5), np.log(0.25), np.log(0.25)]]),
    "same-one-hot": ([[-np.inf, 0.0, -np.inf]], [[-np.inf, 0.0, -np.inf]]),
    "disjoint-one-hots": ([[0.0, -np.inf, -np.inf]], [[-np.inf, -np.inf, 0.0]]),
}
SMOOTH_2x3 = log_softmax(np.asarray([[0.2, -0.4, 1.0], [0.5, 0.1, -0.3]]), axis=-1)


def _edge_inputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    lp, lq = EDGE[name]
    lp = SMOOTH_2x3 if lp is None else np.asarray(lp)
    lq = SMOOTH_2x3[: len(lp)] if lq is None else np.asarray(lq)
    return lp, lq


def _kl_symmetric_ref(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 0.5 * (ref_kl(p, q) + ref_kl(q, p))


PAIR_FUNCTIONS = [
    pytest.param(kl_divergence, ref_kl, id="kl"),
    pytest.param(
        functools.partial(kl_divergence, direction="reverse"),
        lambda p, q: ref_kl(q, p),
        id="kl-reverse",
    ),
    pytest.param(
        functools.partial(kl_divergence, symmetric=True), _kl_symmetric_ref, id="kl-symmetric"
    ),
    pytest.param(js_divergence, ref_js, id="js"),
]


@pytest.mark.parametrize("edge", list(EDGE))
@pytest.mark.parametrize(("fn", "reference"), PAIR_FUNCTIONS)
def test_edge_values_and_gradients(
    row_path: str, ad_xp: Any, dtype_name: str, edge: str, fn: Any, reference: Any
) -> None:
    lp, lq = _edge_inputs(edge)
    with np.errstate(invalid="ignore"):
        expected = reference(lp, lq).sum()
    p, q = as_array(ad_xp, lp, dtype_name), as_array(ad_xp, lq, dtype_name)
    value = fn(p, q, reduction="sum")
    assert_close(
        value, as_array(ad_xp, expected, dtype_name), rtol=value_rtol(dtype_name), atol=1e-12
    )
    if not np.isfinite(expected):
        return  # +inf is the true value: no gradient is promised there
    backend = get_backend(p)
    grad_p = to_numpy(backend.grad(lambda v: fn(v, q, reduction="sum"), p))
    grad_q = to_numpy(backend.grad(lambda v: fn(p, v, reduction="sum"), q))
    assert np.all(np.isfinite(grad_p)) and np.all(np.isfinite(grad_q)), (grad_p, grad_q)
    fd_p = numeric_grad(lambda v: reference(v, lq).sum(), lp)
    fd_q = numeric_grad(lambda v: reference(lp, v).sum(), lq)
    tol = 1e-4 if dtype_name == "float32" else 1e-7
    np.testing.assert_allclose(grad_p, fd_p, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad_q, fd_q, rtol=tol, atol=tol)


def test_kl_gradient_closed_form(row_path: str, ad_xp: Any, dtype_name: str) -> None:
    # ∂/∂log p_i = p_i (log p_i − log q_i + 1), ∂/∂log q_i = −p_i, both 0 where p_i = 0
    lp, lq = _edge_inputs("inf-in-both")
    p, q = as_array(ad_xp, lp, dtype_name), as_array(ad_xp, lq, dtype_name)
    backend = get_backend(p)
    grad_p = backend.grad(lambda v: kl_divergence(v, q, reduction="sum"), p)
    grad_q = backend.grad(lambda v: kl_divergence(p, v, reduction="sum"), q)
    prob = np.exp(lp)
    with np.errstate(invalid="ignore"):
        closed_p = np.where(prob > 0, prob * (lp - lq + 1.0), 0.0)
    assert_close(
        grad_p, as_array(ad_xp, closed_p, dtype_name), rtol=value_rtol(dtype_name), atol=1e-15
    )
    assert_close(
        grad_q, as_array(ad_xp, -prob, dtype_name), rtol=value_rtol(dtype_name), atol=1e-15
    )


@pytest.mark.parametrize("edge", ["inf-in-p", "one-hot", "same-one-hot"])
@pytest.mark.parametrize("mode", ["bonus", "penalty"])
def test_entropy_edge_values_and_gradients(
    row_path: str, ad_xp: Any, dtype_name: str, edge: str, mode: str
) -> None:
    lp, _ = _edge_inputs(edge)
    sign = -1.0 if mode == "bonus" else 1.0
    x = as_array(ad_xp, lp, dtype_name)
    assert_close(
        entropy(x, mode=mode, reduction="sum"),
        as_array(ad_xp, sign * ref_entropy(lp).sum(), dtype_name),
        rtol=value_rtol(dtype_name),
        atol=1e-15,
    )
    grad = to_numpy(get_backend(x).grad(lambda v: entropy(v, mode=mode, reduction="sum"), x))
    prob = np.exp(lp)
    with np.errstate(invalid="ignore"):
        closed = np.where(prob > 0, -sign * prob * (lp + 1.0), 0.0)  # ∂(−H)/∂log p = p(log p + 1)
    tol = 1e-5 if dtype_name == "float32" else 1e-12
    np.testing.assert_allclose(grad, closed, rtol=tol, atol=tol)
    fd = numeric_grad(lambda v: sign * ref_entropy(v).sum(), lp)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6)


def test_entropy_temperature_gradient_at_zero_probability(
    row_path: str, ad_xp: Any, dtype_name: str
) -> None:
    host = np.asarray([[0.0, -np.inf, -1.0], [-np.inf, -np.inf, 0.0]])
    x = as_array(ad_xp, host, dtype_name)
    grad = to_numpy(
        get_backend(x).grad(lambda v: entropy_value(v, temperature=0.5, reduction="sum"), x)
    )
    fd = numeric_grad(lambda v: ref_entropy(log_softmax(v / 0.5, axis=-1)).sum(), host)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("fn", "closed_p", "closed_q"),
    [
        (
            kl_divergence,
            lambda lp, lq: np.exp(lp) * (lp - lq + 1.0),
            lambda lp, lq: -np.exp(lp),
        ),
        (
            functools.partial(kl_divergence, direction="reverse"),
            lambda lp, lq: -np.exp(lq),
            lambda lp, lq: np.exp(lq) * (lq - lp + 1.0),
        ),
    ],
    ids=["kl", "kl-reverse"],
)
def test_finite_difference_backends_gradient(
    fd_xp: Any, fn: Any, closed_p: Any, closed_q: Any
) -> None:
    p, q = as_array(fd_xp, SMOOTH_2x3, "float64"), as_array(fd_xp, SMOOTH_2x3[::-1], "float64")
    backend = get_backend(p)
    with pytest.warns(FiniteDifferenceWarning):
        grad_p = backend.grad(lambda v: fn(v, q, reduction="sum"), p)
    with pytest.warns(FiniteDifferenceWarning):
        grad_q = backend.grad(lambda v: fn(p, v, reduction="sum"), q)
    lp, lq = SMOOTH_2x3, SMOOTH_2x3[::-1]
    assert_close(grad_p, as_array(fd_xp, closed_p(lp, lq), "float64"), rtol=1e-6, atol=1e-9)
    assert_close(grad_q, as_array(fd_xp, closed_q(lp, lq), "float64"), rtol=1e-6, atol=1e-9)


def test_finite_difference_backends_entropy_gradient(fd_xp: Any) -> None:
    x = as_array(fd_xp, SMOOTH_2x3, "float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FiniteDifferenceWarning)
        grad = get_backend(x).grad(lambda v: entropy(v, reduction="sum"), x)
    closed = np.exp(SMOOTH_2x3) * (SMOOTH_2x3 + 1.0)
    assert_close(grad, as_array(fd_xp, closed, "float64"), rtol=1e-6, atol=1e-9)


def test_nan_inputs_propagate(row_path: str, xp: Any, dtype_name: str) -> None:
    p = as_array(xp, [[np.log(0.5), np.nan]], dtype_name)
    q = as_array(xp, [[np.log(0.5), np.log(0.5)]], dtype_name)
    with np.errstate(invalid="ignore"):  # numpy's logaddexp warns on NaN, as it should
        results = (
            kl_divergence(p, q),
            kl_divergence(q, p),
            kl_divergence(p, q, symmetric=True),
            js_divergence(p, q),
            entropy(p),
        )
        for result in results:  # dask computes here
            assert np.isnan(to_numpy(result))


# ---------------------------------------------------------------- kl_estimate

LOGPROBS = np.asarray([[-1.0, -2.0, -0.5], [-3.0, -0.1, -1.2]])
REF = np.asarray([[-1.5, -1.0, -0.5], [-2.0, -0.3, -4.0]])
MASK = np.asarray([[True, True, False], [True, False, True]])


def _estimates(lp: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
    r = ref - lp
    return {"k1": -r, "k2": 0.5 * r**2, "k3": np.exp(r) - 1.0 - r}


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_kl_estimate_values_and_reductions(xp: Any, dtype_name: str, estimator: str) -> None:
    lp, ref = as_array(xp, LOGPROBS, dtype_name), as_array(xp, REF, dtype_name)
    k = _estimates(LOGPROBS, REF)[estimator]
    rtol = 1e-5 if dtype_name == "float32" else 1e-12
    cases = [("none", k), ("sum", k.sum()), ("mean", k.mean())]
    for reduction, expected in cases:
        result = kl_estimate(lp, ref, estimator=estimator, reduction=reduction)
        assert_close(result, as_array(xp, expected, dtype_name), rtol=rtol, atol=rtol)
    masked = np.where(MASK, k, 0.0)
    for mask in (
        xp.asarray(MASK),
        as_array(xp, MASK.astype(np.float64), dtype_name),
        xp.asarray(MASK.astype(np.int32)),
    ):
        cases = [("none", masked), ("sum", masked.sum()), ("mean", masked.sum() / MASK.sum())]
        for reduction, expected in cases:
            result = kl_estimate(lp, ref, estimator=estimator, mask=mask, reduction=reduction)
            assert_close(result, as_array(xp, expected, dtype_name), rtol=rtol, atol=rtol)


def test_kl_estimate_default_is_k3_mean(xp: Any) -> None:
    expected = _estimates(LOGPROBS, REF)["k3"].mean()
    result = kl_estimate(as_array(xp, LOGPROBS, "float64"), as_array(xp, REF, "float64"))
    assert_close(result, as_array(xp, expected, "float64"), rtol=1e-12)


def test_kl_estimate_all_masked_mean_is_zero(xp: Any, dtype_name: str) -> None:
    lp, ref = as_array(xp, LOGPROBS, dtype_name), as_array(xp, REF, dtype_name)
    mask = xp.asarray(np.zeros_like(MASK))
    assert_close(kl_estimate(lp, ref, mask=mask), as_array(xp, 0.0, dtype_name), rtol=0)


def test_kl_estimate_k3_is_finite_for_large_ratios(xp: Any, dtype_name: str) -> None:
    # e^200 = 7e86 overflows float32; e^1000 overflows float64 too
    lp = as_array(xp, [-200.0, -1000.0], dtype_name)
    ref = as_array(xp, [0.0, 0.0], dtype_name)
    values = to_numpy(kl_estimate(lp, ref, reduction="none"))
    assert np.all(np.isfinite(values)) and np.all(values > 1e30)
    if dtype_name == "float64":
        np.testing.assert_allclose(values[0], math.exp(200.0) - 201.0, rtol=1e-12)


def test_kl_estimate_masked_garbage_never_reaches_value_or_gradient(
    ad_xp: Any, dtype_name: str
) -> None:
    # padding positions hold -inf / NaN log-probs: the double where keeps them out
    lp_host = np.asarray([[-1.0, -np.inf], [-0.5, np.nan]])
    ref_host = np.asarray([[-1.5, -2.0], [-0.25, -1.0]])
    mask = ad_xp.asarray(np.asarray([[True, False], [True, False]]))
    lp, ref = as_array(ad_xp, lp_host, dtype_name), as_array(ad_xp, ref_host, dtype_name)
    r = np.asarray([-0.5, 0.25])
    k3 = np.exp(r) - 1.0 - r
    assert_close(kl_estimate(lp, ref, mask=mask), as_array(ad_xp, k3.mean(), dtype_name), rtol=1e-5)
    grad = to_numpy(get_backend(lp).grad(lambda v: kl_estimate(v, ref, mask=mask), lp))
    # ∂k3/∂logprobs = −(e^r − 1), averaged over the 2 kept positions
    expected = np.asarray([[-(math.exp(-0.5) - 1.0) / 2, 0.0], [-(math.exp(0.25) - 1.0) / 2, 0.0]])
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- half precision


@pytest.mark.backend("torch")
@pytest.mark.parametrize(
    ("dtype", "bound"),
    [("float16", 2.0**-11), ("bfloat16", 2.0**-8)],
)
def test_half_precision_kl_on_vocab_sized_rows(dtype: str, bound: float) -> None:
    import torch

    rng = np.random.default_rng(0)
    torch_dtype = getattr(torch, dtype)
    lp = torch.log_softmax(torch.asarray(rng.normal(size=(64, 32000)) * 2), -1).to(torch_dtype)
    lq = torch.log_softmax(torch.asarray(rng.normal(size=(64, 32000)) * 2), -1).to(torch_dtype)
    reference = float(ref_kl(lp.double().numpy(), lq.double().numpy()).mean())
    result = kl_divergence(lp, lq)
    assert result.dtype == torch_dtype and result.shape == ()
    error = abs(float(result) - reference) / reference
    # computed in float32 and rounded once: within the dtype's unit roundoff of the truth
    assert error <= bound, error
    if dtype == "float16":
        assert error < 1e-3, error
    # the rounding is the only error: the result is the float64 reference rounded to the dtype
    nearest = torch.asarray(reference, dtype=torch.float64).to(torch_dtype)
    assert abs(float(result) - float(nearest)) <= abs(float(nearest)) * 2.0**-7, (result, nearest)


@pytest.mark.backend("jax")
def test_jax_bfloat16_computed_in_float32() -> None:
    import jax.numpy as jnp

    rng = np.random.default_rng(1)
    lp = jnp.asarray(log_softmax(rng.normal(size=(64, 512)), axis=-1), dtype=jnp.bfloat16)
    lq = jnp.asarray(log_softmax(rng.normal(size=(64, 512)), axis=-1), dtype=jnp.bfloat16)
    reference = float(
        ref_kl(np.asarray(lp, dtype=np.float64), np.asarray(lq, dtype=np.float64)).mean()
    )
    for result in (kl_divergence(lp, lq), js_divergence(lp, lq), entropy_value(lp)):
        assert result.dtype == jnp.bfloat16
    error = abs(float(kl_divergence(lp, lq)) - reference) / reference
    assert error <= 2.0**-8, error


def test_half_inputs_keep_their_dtype(case: Any) -> None:
    xp = case.xp
    if not hasattr(xp, "float16"):
        pytest.skip(
            f"the {case.name} namespace exposes no float16 (the Array API standard has none)"
        )
    p = xp.asarray(P_SPEC, dtype=xp.float16)
    q = xp.asarray(Q_SPEC, dtype=xp.float16)
    expected = ref_kl(
        np.asarray(P_SPEC, dtype=np.float16).astype(np.float64),
        np.asarray(Q_SPEC, dtype=np.float16).astype(np.float64),
    )
    assert_close(kl_divergence(p, q), xp.asarray(expected, dtype=xp.float16), rtol=2.0**-11)
    assert kl_estimate(p, q).dtype == xp.float16


# ---------------------------------------------------------------- bad input


def _pair(xp: Any) -> tuple[Any, Any]:
    return as_array(xp, P_SPEC, "float32"), as_array(xp, Q_SPEC, "float32")


BAD_PAIR_OPTIONS = [
    (
        kl_divergence,
        {"reduction": "avg"},
        InvalidValueError,
        "`reduction` must be one of 'sum', 'mean', 'none'; got 'avg'",
    ),
    (kl_divergence, {"direction": 1}, InvalidTypeError, "`direction` must be one of"),
    (
        kl_divergence,
        {"symmetric": "yes"},
        InvalidTypeError,
        "`symmetric` must be True or False; got 'yes'",
    ),
    (
        kl_divergence,
        {"max_log_ratio": 0.0},
        InvalidValueError,
        "`max_log_ratio` must be finite and > 0; got 0.0",
    ),
    (
        kl_divergence,
        {"max_log_ratio": -5},
        InvalidValueError,
        "`max_log_ratio` must be finite and > 0",
    ),
    (
        kl_divergence,
        {"max_log_ratio": math.nan},
        InvalidValueError,
        "`max_log_ratio` must be finite",
    ),
    (
        kl_divergence,
        {"max_log_ratio": "10"},
        InvalidTypeError,
        "`max_log_ratio` must be None or a real number > 0; got '10'",
    ),
    (
        kl_divergence,
        {"axis": 1},
        InvalidValueError,
        r"`axis` must be in \[-1, 0\] for 1-dimensional inputs; got 1",
    ),
    (kl_divergence, {"axis": "last"}, InvalidTypeError, "`axis` must be an int; got 'last'"),
    (kl_divergence, {"axis": True}, InvalidTypeError, "`axis` must be an int"),
    (kl_divergence, {"broadcast": 1}, InvalidTypeError, "`broadcast` must be True or False; got 1"),
    (js_divergence, {"reduction": None}, InvalidTypeError, "`reduction` must be one of"),
    (js_divergence, {"axis": -2}, InvalidValueError, "`axis` must be in"),
    (js_divergence, {"broadcast": None}, InvalidTypeError, "`broadcast` must be True or False"),
    (
        kl_estimate,
        {"estimator": "k4"},
        InvalidValueError,
        "`estimator` must be one of 'k1', 'k2', 'k3'; got 'k4'",
    ),
    (kl_estimate, {"reduction": "max"}, InvalidValueError, "`reduction` must be one of"),
]


@pytest.mark.parametrize(("fn", "options", "error", "message"), BAD_PAIR_OPTIONS)
def test_bad_pair_options_name_the_parameter(
    xp: Any, fn: Any, options: Any, error: type, message: str
) -> None:
    p, q = _pair(xp)
    with pytest.raises(error, match=message) as info:
        fn(p, q, **options)
    assert isinstance(info.value, ArrayPenaltiesError)
    assert isinstance(info.value, ValueError if error is InvalidValueError else TypeError)


BAD_ENTROPY_OPTIONS = [
    (
        {"mode": "bonuses"},
        InvalidValueError,
        "`mode` must be one of 'bonus', 'penalty', 'value'; got 'bonuses'",
    ),
    ({"mode": None}, InvalidTypeError, "`mode` must be one of"),
    ({"temperature": 0.0}, InvalidValueError, "`temperature` must be finite and > 0; got 0.0"),
    ({"temperature": -1.0}, InvalidValueError, "`temperature` must be finite and > 0; got -1.0"),
    ({"temperature": math.inf}, InvalidValueError, "`temperature` must be finite"),
    ({"temperature": "1"}, InvalidTypeError, "`temperature` must be a real number; got '1'"),
    ({"normalize": "true"}, InvalidTypeError, "`normalize` must be True or False"),
    ({"reduction": "all"}, InvalidValueError, "`reduction` must be one of"),
    ({"axis": 3}, InvalidValueError, "`axis` must be in"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD_ENTROPY_OPTIONS)
def test_bad_entropy_options_name_the_parameter(
    xp: Any, options: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        entropy(_pair(xp)[0], **options)


def test_entropy_value_rejects_bad_options_too(xp: Any) -> None:
    with pytest.raises(InvalidValueError, match="`temperature` must be finite and > 0"):
        entropy_value(_pair(xp)[0], temperature=0)
    with pytest.raises(TypeError):
        entropy_value(_pair(xp)[0], mode="value")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "call",
    [
        lambda a, b: kl_divergence(a, b),
        lambda a, b: kl_divergence(b, a),
        lambda a, b: js_divergence(a, b),
        lambda a, b: js_divergence(b, a),
        lambda a, b: kl_estimate(a, b),
        lambda a, b: kl_estimate(b, a),
        lambda a, b: entropy(a),
        lambda a, b: entropy_value(a),
    ],
    ids=["kl-p", "kl-q", "js-p", "js-q", "est-lp", "est-ref", "entropy", "entropy_value"],
)
@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_and_bool_inputs_raise_type_error(xp: Any, call: Any, dtype: str) -> None:
    bad = xp.asarray([1, 0, 1, 0], dtype=getattr(xp, dtype))
    good = _pair(xp)[0]
    with pytest.raises(InvalidTypeError, match="must have a real floating dtype"):
        call(bad, good)


@pytest.mark.parametrize("fn", [kl_divergence, js_divergence, kl_estimate])
def test_shape_mismatch_names_both_shapes(xp: Any, fn: Any) -> None:
    a = as_array(xp, np.zeros((2, 3)), "float32")
    b = as_array(xp, np.zeros((3, 2)), "float32")
    with pytest.raises(InvalidValueError, match=r"has shape \(2, 3\) but `.*` has shape \(3, 2\)"):
        fn(a, b)


def test_zero_dimensional_inputs_raise(xp: Any) -> None:
    x = as_array(xp, 0.0, "float32")
    for fn in (lambda v: kl_divergence(v, v), lambda v: js_divergence(v, v), entropy):
        with pytest.raises(InvalidValueError, match="must have at least 1 dimension"):
            fn(x)


def test_mean_over_no_samples_raises(xp: Any) -> None:
    x = as_array(xp, np.zeros((0, 3)), "float32")
    with pytest.raises(InvalidValueError, match="`reduction` 'mean' needs at least one"):
        kl_divergence(x, x)
    assert_close(kl_divergence(x, x, reduction="sum"), as_array(xp, 0.0, "float32"))


def test_bad_masks_raise(xp: Any) -> None:
    lp, ref = as_array(xp, LOGPROBS, "float32"), as_array(xp, REF, "float32")
    with pytest.raises(
        InvalidValueError, match=r"`mask` has shape \(3,\) but `logprobs` has shape \(2, 3\)"
    ):
        kl_estimate(lp, ref, mask=xp.asarray([True, False, True]))
    with pytest.raises(InvalidTypeError, match="`mask` must be an array"):
        kl_estimate(lp, ref, mask=[[True] * 3] * 2)


@pytest.mark.backend("torch")
def test_mixed_namespaces_raise_naming_both() -> None:
    import torch

    p = np.asarray(P_SPEC)
    with pytest.raises(
        InvalidTypeError,
        match=r"`p_logprobs` is a numpy\.ndarray but `q_logprobs` is a torch\.Tensor",
    ):
        kl_divergence(p, torch.asarray(Q_SPEC))
    with pytest.raises(
        InvalidTypeError,
        match=r"`p_logprobs` is a numpy\.ndarray but `q_logprobs` is a torch\.Tensor",
    ):
        js_divergence(p, torch.asarray(Q_SPEC))
    with pytest.raises(
        InvalidTypeError, match=r"`logprobs` is a numpy\.ndarray but `mask` is a torch\.Tensor"
    ):
        kl_estimate(p, p, mask=torch.ones(4, dtype=torch.bool))


def test_mixed_numpy_and_strict_raise() -> None:
    import array_api_strict

    with pytest.raises(InvalidTypeError, match="one namespace"):
        kl_divergence(np.asarray(P_SPEC), array_api_strict.asarray(Q_SPEC))


def test_non_arrays_raise_type_error() -> None:
    with pytest.raises(InvalidTypeError, match=r"`logprobs` must be an array .* got builtins.list"):
        entropy([0.0, -1.0])
    with pytest.raises(InvalidTypeError, match=r"`q_logprobs` must be an array"):
        kl_divergence(np.asarray(P_SPEC), list(Q_SPEC))


def test_options_are_keyword_only_and_arrays_positional_only() -> None:
    p = np.asarray(P_SPEC)
    with pytest.raises(TypeError):
        kl_divergence(p, p, "sum")  # type: ignore[misc]
    with pytest.raises(TypeError):
        kl_divergence(p_logprobs=p, q_logprobs=p)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        entropy(logprobs=p)  # type: ignore[call-arg]


def test_explicit_xp_is_used(xp: Any) -> None:
    p, q = as_array(xp, P_SPEC, "float64"), as_array(xp, Q_SPEC, "float64")
    assert_close(
        kl_divergence(p, q, xp=xp), as_array(xp, ref_kl(P_SPEC, Q_SPEC), "float64"), rtol=1e-12
    )


def test_zero_probability_in_both_is_exact_and_quiet(
    row_path: str, xp: Any, dtype_name: str
) -> None:
    # -inf − -inf must never be evaluated where numpy would warn (filterwarnings=error here)
    lp = [[np.log(0.5), np.log(0.5), -np.inf], [-np.inf, 0.0, -np.inf]]
    lq = [[np.log(0.25), np.log(0.75), -np.inf], [-np.inf, 0.0, -np.inf]]
    p, q = as_array(xp, lp, dtype_name), as_array(xp, lq, dtype_name)
    forward = ref_kl(np.asarray(lp), np.asarray(lq))
    backward = ref_kl(np.asarray(lq), np.asarray(lp))
    rtol = value_rtol(dtype_name)
    assert_close(
        kl_divergence(p, q, reduction="none"), as_array(xp, forward, dtype_name), rtol=rtol
    )
    assert_close(
        kl_divergence(p, q, symmetric=True, reduction="none"),
        as_array(xp, 0.5 * (forward + backward), dtype_name),
        rtol=rtol,
    )
    js = ref_js(np.asarray(lp), np.asarray(lq))
    assert_close(
        js_divergence(p, q, reduction="none"), as_array(xp, js, dtype_name), rtol=rtol, atol=1e-15
    )
    mask = xp.asarray(np.isfinite(np.asarray(lp)))
    k3 = kl_estimate(p, q, mask=mask, reduction="sum")
    kept = np.isfinite(np.asarray(lp))
    kept_r = np.asarray(lq)[kept] - np.asarray(lp)[kept]
    expected = np.sum(np.exp(kept_r) - 1 - kept_r)
    assert_close(
        k3, as_array(xp, expected, dtype_name), rtol=1e-5 if dtype_name == "float32" else 1e-12
    )


@pytest.mark.parametrize("matmul_rows", [True, False], ids=["matmul-rows", "sum-rows"])
def test_entropy_on_large_rows(
    ad_xp: Any, dtype_name: str, matmul_rows: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torch's kernel sums rows with a batched matmul (under autograd) above a size
    # threshold: lowered here so that both paths run on 80 000 elements
    if ad_xp.__name__ == "array_api_compat.torch":
        from arraypenalties.backends import _torch_kernels

        threshold = 0 if matmul_rows else 10**12
        monkeypatch.setattr(_torch_kernels, "LARGE_BYTES", threshold)
    host = log_softmax(np.random.default_rng(5).normal(size=(4, 20_000)) * 3, axis=-1)
    host[1, :10] = -np.inf
    host[1] = log_softmax(host[1])
    x = as_array(ad_xp, host, dtype_name)
    rtol = 1e-5 if dtype_name == "float32" else 1e-12
    expected = ref_entropy(host)
    assert_close(
        entropy_value(x, reduction="none"),
        as_array(ad_xp, expected, dtype_name),
        rtol=rtol,
        atol=rtol,
    )
    grad = to_numpy(get_backend(x).grad(lambda v: entropy(v, reduction="sum"), x))
    prob = np.exp(host)
    with np.errstate(invalid="ignore"):
        closed = np.where(prob > 0, prob * (host + 1.0), 0.0)
    np.testing.assert_allclose(
        grad, closed, rtol=rtol, atol=1e-7 if dtype_name == "float32" else 1e-15
    )


# ---------------------------------------------------------------- fixes of issue 12


def test_kl_gradient_where_q_is_zero_is_minus_p_on_every_backend(ad_xp: Any) -> None:
    # closed form ∂KL/∂log q_i = −p_i, also where q_i = 0 < p_i (the value is +inf there);
    # jax used to split the derivative of a maximum tie at -inf: −p/2
    lp = np.log(np.asarray([0.5, 0.25, 0.25]))
    lq = np.asarray([np.log(0.5), np.log(0.5), -np.inf])
    p, q = as_array(ad_xp, lp, "float64"), as_array(ad_xp, lq, "float64")
    grad = get_backend(q).grad(lambda v: kl_divergence(p, v, reduction="sum"), q)
    np.testing.assert_array_equal(to_numpy(grad), [-0.5, -0.25, -0.25])


WEIGHTS = np.asarray([[0.5, 1.0, 0.0], [2.0, 0.25, 1.0]])


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_estimate_floating_mask_weights_each_position(
    xp: Any, dtype_name: str, estimator: str
) -> None:
    lp, ref = as_array(xp, LOGPROBS, dtype_name), as_array(xp, REF, dtype_name)
    weighted = WEIGHTS * _estimates(LOGPROBS, REF)[estimator]
    weights = as_array(xp, WEIGHTS, dtype_name)
    rtol = 1e-5 if dtype_name == "float32" else 1e-12
    cases = [("none", weighted), ("sum", weighted.sum()), ("mean", weighted.sum() / WEIGHTS.sum())]
    for reduction, expected in cases:
        result = kl_estimate(lp, ref, estimator=estimator, mask=weights, reduction=reduction)
        assert_close(result, as_array(xp, expected, dtype_name), rtol=rtol, atol=rtol)


def test_kl_estimate_nan_weight_gives_nan_and_zero_weight_excludes_garbage(
    xp: Any, dtype_name: str
) -> None:
    lp = as_array(xp, [[-1.0, np.nan], [-0.5, -np.inf]], dtype_name)
    ref = as_array(xp, [[-1.5, -2.0], [-0.25, -1.0]], dtype_name)
    excluded = as_array(xp, [[1.0, 0.0], [1.0, 0.0]], dtype_name)
    r = np.asarray([-0.5, 0.25])
    expected = (np.exp(r) - 1.0 - r).mean()
    assert_close(kl_estimate(lp, ref, mask=excluded), as_array(xp, expected, dtype_name), rtol=1e-5)
    nan_weight = as_array(xp, [[1.0, 0.0], [np.nan, 0.0]], dtype_name)
    for reduction in ("mean", "sum"):
        assert np.isnan(to_numpy(kl_estimate(lp, ref, mask=nan_weight, reduction=reduction)))


def test_kl_estimate_weighted_gradient(ad_xp: Any, dtype_name: str) -> None:
    lp, ref = as_array(ad_xp, LOGPROBS, dtype_name), as_array(ad_xp, REF, dtype_name)
    weights = as_array(ad_xp, WEIGHTS, dtype_name)
    grad = get_backend(lp).grad(lambda v: kl_estimate(v, ref, mask=weights), lp)
    # ∂/∂logprobs of Σ w·k3 / Σ w = −w·(e^r − 1) / Σ w
    expected = -WEIGHTS * np.expm1(REF - LOGPROBS) / WEIGHTS.sum()
    np.testing.assert_allclose(to_numpy(grad), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_entropy_of_an_all_minus_inf_row_is_zero_at_every_temperature(
    row_path: str, xp: Any, dtype_name: str, temperature: float
) -> None:
    host = np.asarray([[-np.inf, -np.inf, -np.inf], [np.log(0.2), np.log(0.8), -np.inf]])
    with np.errstate(divide="ignore", invalid="ignore"):
        second = ref_entropy(log_softmax(host[1] / temperature))
    rows = entropy_value(as_array(xp, host, dtype_name), temperature=temperature, reduction="none")
    assert_close(
        rows, as_array(xp, [0.0, second], dtype_name), rtol=value_rtol(dtype_name), atol=1e-12
    )


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_entropy_gradient_of_an_all_minus_inf_row_is_zero(
    row_path: str, ad_xp: Any, temperature: float
) -> None:
    host = np.asarray([[-np.inf, -np.inf, -np.inf], [0.0, -1.0, -np.inf]])
    x = as_array(ad_xp, host, "float64")
    grad = to_numpy(get_backend(x).grad(lambda v: entropy_value(v, temperature=temperature), x))
    np.testing.assert_array_equal(grad[0], [0.0, 0.0, 0.0])

    def reference(v: np.ndarray) -> Any:  # T = 1 takes the log-probabilities as given
        return ref_entropy(v if temperature == 1.0 else log_softmax(v / temperature)).mean()

    fd = numeric_grad(reference, host[1:])
    np.testing.assert_allclose(grad[1:], fd * 0.5, rtol=1e-5, atol=1e-8)
