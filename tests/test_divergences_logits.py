"""``from_logits=True`` (SPEC §13): normalisation inside, exact at ``-inf`` logits,
gradients with respect to the logits.

References: scipy's ``log_softmax`` followed by ``rel_entr`` / ``entr`` in float64, and
float64 central differences of that reference for the gradients.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from scipy.special import entr, log_softmax, rel_entr

from arraypenalties import (
    InvalidTypeError,
    entropy,
    entropy_value,
    get_backend,
    js_divergence,
    kl_divergence,
)
from arraypenalties.testing import as_array, assert_close, to_numpy, value_rtol

# unnormalised logits with -inf (zero probability) at positions of p, of q and of both
A = np.asarray([[2.0, -1.0, 0.5, -np.inf], [-np.inf, 3.0, -np.inf, 0.0], [1.0, 1.0, 1.0, 1.0]])
B = np.asarray([[0.0, 1.5, -2.0, -np.inf], [-1.0, 0.5, 2.0, 4.0], [-3.0, 0.0, 3.0, 0.2]])


def _kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return rel_entr(np.exp(log_softmax(a, axis=-1)), np.exp(log_softmax(b, axis=-1))).sum(-1)


def _js(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    p, q = np.exp(log_softmax(a, axis=-1)), np.exp(log_softmax(b, axis=-1))
    m = 0.5 * (p + q)
    return 0.5 * rel_entr(p, m).sum(-1) + 0.5 * rel_entr(q, m).sum(-1)


def _h(a: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return entr(np.exp(log_softmax(a / temperature, axis=-1))).sum(-1)


PAIRS = [
    pytest.param(functools.partial(kl_divergence, from_logits=True), _kl, id="kl"),
    pytest.param(
        functools.partial(kl_divergence, from_logits=True, direction="reverse"),
        lambda a, b: _kl(b, a),
        id="kl-reverse",
    ),
    pytest.param(
        functools.partial(kl_divergence, from_logits=True, symmetric=True),
        lambda a, b: 0.5 * (_kl(a, b) + _kl(b, a)),
        id="kl-symmetric",
    ),
    pytest.param(functools.partial(js_divergence, from_logits=True), _js, id="js"),
]


@pytest.mark.parametrize(("fn", "reference"), PAIRS)
def test_pair_values_from_logits(xp: Any, dtype_name: str, fn: Any, reference: Any) -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = reference(A, B)
    rows = fn(as_array(xp, A, dtype_name), as_array(xp, B, dtype_name), reduction="none")
    assert_close(rows, as_array(xp, expected, dtype_name), rtol=value_rtol(dtype_name), atol=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_entropy_from_logits(xp: Any, dtype_name: str, temperature: float) -> None:
    expected = _h(A, temperature)
    x = as_array(xp, A, dtype_name)
    rows = entropy_value(x, from_logits=True, temperature=temperature, reduction="none")
    # float32: a small entropy (0.017 at T = 0.5) carries the rounding of its log-softmax
    rtol = 1e-5 if dtype_name == "float32" else 1e-12
    assert_close(rows, as_array(xp, expected, dtype_name), rtol=rtol, atol=1e-12)
    bonus = entropy(x, from_logits=True, temperature=temperature)
    assert_close(bonus, as_array(xp, -expected.mean(), dtype_name), rtol=value_rtol(dtype_name))


def test_from_logits_equals_log_softmax_then_log_probabilities(xp: Any) -> None:
    a, b = as_array(xp, A, "float64"), as_array(xp, B, "float64")
    lp, lq = (
        as_array(xp, log_softmax(A, axis=-1), "float64"),
        as_array(xp, log_softmax(B, axis=-1), "float64"),
    )
    assert_close(js_divergence(a, b, from_logits=True), js_divergence(lp, lq), rtol=1e-13)
    assert_close(entropy(a, from_logits=True), entropy(lp), rtol=1e-13)


def test_shifting_logits_changes_nothing(xp: Any) -> None:
    a, b = as_array(xp, A, "float64"), as_array(xp, B, "float64")
    shifted = as_array(xp, A + 100.0, "float64")
    assert_close(
        kl_divergence(shifted, b, from_logits=True),
        kl_divergence(a, b, from_logits=True),
        rtol=1e-12,
    )


def _numeric_grad(f: Any, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        if not np.isfinite(x[index]):
            continue  # a -inf logit has probability 0 and derivative 0
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (f(up) - f(down)) / (2 * h)
    return grad


# B has full support where A has it, so KL(A‖B) and JS are finite with finite gradients
FINITE_PAIRS = [PAIRS[0], PAIRS[3]]


@pytest.mark.parametrize(("fn", "reference"), FINITE_PAIRS)
def test_pair_gradients_with_respect_to_logits(
    ad_xp: Any, dtype_name: str, fn: Any, reference: Any
) -> None:
    a, b = as_array(ad_xp, A, dtype_name), as_array(ad_xp, B, dtype_name)
    backend = get_backend(a)
    grad_a = to_numpy(backend.grad(lambda v: fn(v, b, reduction="sum"), a))
    grad_b = to_numpy(backend.grad(lambda v: fn(a, v, reduction="sum"), b))
    assert np.all(np.isfinite(grad_a)) and np.all(np.isfinite(grad_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        fd_a = _numeric_grad(lambda v: reference(v, B).sum(), A)
        fd_b = _numeric_grad(lambda v: reference(A, v).sum(), B)
    tol = 1e-4 if dtype_name == "float32" else 1e-7
    np.testing.assert_allclose(grad_a, fd_a, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad_b, fd_b, rtol=tol, atol=tol)
    assert np.all(grad_a[~np.isfinite(A)] == 0.0) and np.all(grad_b[~np.isfinite(B)] == 0.0)


def test_kl_gradient_from_logits_closed_form(ad_xp: Any) -> None:
    # ∂KL/∂a = p·(log p − log q − KL_row), ∂KL/∂b = q − p
    a, b = as_array(ad_xp, A, "float64"), as_array(ad_xp, B, "float64")
    backend = get_backend(a)
    lp, lq = log_softmax(A, axis=-1), log_softmax(B, axis=-1)
    p, q = np.exp(lp), np.exp(lq)
    with np.errstate(invalid="ignore"):
        ratio = np.where(p > 0, lp - lq, 0.0)
    rows = (p * ratio).sum(-1, keepdims=True)
    grad_a = backend.grad(lambda v: kl_divergence(v, b, from_logits=True, reduction="sum"), a)
    grad_b = backend.grad(lambda v: kl_divergence(a, v, from_logits=True, reduction="sum"), b)
    np.testing.assert_allclose(to_numpy(grad_a), p * (ratio - rows), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(to_numpy(grad_b), q - p, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_entropy_gradient_with_respect_to_logits(
    ad_xp: Any, dtype_name: str, temperature: float
) -> None:
    x = as_array(ad_xp, A, dtype_name)
    grad = to_numpy(
        get_backend(x).grad(
            lambda v: entropy_value(v, from_logits=True, temperature=temperature, reduction="sum"),
            x,
        )
    )
    fd = _numeric_grad(lambda v: _h(v, temperature).sum(), A)
    tol = 1e-4 if dtype_name == "float32" else 1e-7
    np.testing.assert_allclose(grad, fd, rtol=tol, atol=tol)


def test_all_minus_inf_logit_rows(xp: Any, dtype_name: str) -> None:
    dead = np.asarray([[-np.inf, -np.inf], [0.0, 1.0]])
    x = as_array(xp, dead, dtype_name)
    rows = entropy_value(x, from_logits=True, reduction="none")  # no outcome: entropy 0
    assert_close(
        rows, as_array(xp, [0.0, _h(dead[1:])[0]], dtype_name), rtol=value_rtol(dtype_name)
    )
    kl_rows = to_numpy(kl_divergence(x, x, from_logits=True, reduction="none"))
    assert np.isnan(kl_rows[0]) and kl_rows[1] == 0.0  # no distribution: NaN


def test_from_logits_must_be_a_bool(xp: Any) -> None:
    a = as_array(xp, A, "float32")
    for call in (
        lambda: kl_divergence(a, a, from_logits=1),
        lambda: js_divergence(a, a, from_logits="yes"),
        lambda: entropy(a, from_logits=None),
        lambda: entropy_value(a, from_logits=0),
    ):
        with pytest.raises(InvalidTypeError, match="`from_logits` must be True or False"):
            call()
