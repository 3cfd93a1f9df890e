"""l1, l2, elastic_net: SPEC §1 numbers, reductions, gradients and bad input on every backend."""

from __future__ import annotations

import math
import warnings
from typing import Any

import array_api_compat
import numpy as np
import pytest

from arraypenalties import (
    ArrayPenaltiesError,
    FiniteDifferenceWarning,
    InvalidTypeError,
    InvalidValueError,
    elastic_net,
    get_backend,
    l1,
    l2,
)
from arraypenalties._lib.namespace import get_xp
from arraypenalties.testing import as_array as _a
from arraypenalties.testing import assert_close, float16_namespace

# (penalty, input, options, expected) — every number from SPEC.md §1 or worked by hand.
PARITY = [
    pytest.param(l1, [1.0, -2.0, 3.0], {}, 6.0, id="l1"),
    pytest.param(l1, [1.0, -2.0, 3.0], {"lam": 0.1}, 0.6, id="l1-lam"),
    pytest.param(l1, [1.0, -2.0, 3.0], {"reduction": "mean"}, 2.0, id="l1-mean"),
    pytest.param(l2, [1.0, 2.0, 3.0], {"lam": 0.1}, 1.4, id="l2-lam"),
    pytest.param(l2, [1000.0, 2000.0], {"lam": 0.01, "clip": 100.0}, 200.0, id="l2-clip"),
    pytest.param(l2, [1.0, 2.0, 3.0], {"center": "mean"}, 2.0, id="l2-center-mean"),
    pytest.param(
        l2, [100.0, 200.0, 300.0], {"center": 200.0, "clip": 50.0}, 5000.0, id="l2-center-clip"
    ),
    pytest.param(l2, [1.0, 2.0, 3.0], {"reduction": "mean"}, 14.0 / 3.0, id="l2-mean"),
    pytest.param(l2, [1.0, -1.0], {"clip": 0.0}, 0.0, id="l2-clip-zero"),
    pytest.param(elastic_net, [1.0, 2.0], {"l1_ratio": 0.5}, 4.0, id="enet"),
    pytest.param(elastic_net, [1.0, -2.0], {"l1_ratio": 0.25, "lam": 2.0}, 9.0, id="enet-ratio"),
    pytest.param(elastic_net, [1.0, 2.0], {"reduction": "mean"}, 2.0, id="enet-mean"),
]


@pytest.mark.parametrize(("penalty", "values", "options", "expected"), PARITY)
def test_parity_values(
    xp: Any, dtype_name: str, penalty: Any, values: Any, options: Any, expected: float
) -> None:
    result = penalty(_a(xp, values, dtype_name), **options)
    assert_close(result, _a(xp, expected, dtype_name))


@pytest.mark.parametrize(
    ("penalty", "options", "elementwise"),
    [
        (l1, {"lam": 0.5}, lambda x: 0.5 * np.abs(x)),
        (l2, {"lam": 0.5}, lambda x: 0.5 * x**2),
        (l2, {"center": 1.0, "clip": 1.5}, lambda x: np.clip(x - 1.0, -1.5, 1.5) ** 2),
        (l2, {"center": "mean"}, lambda x: (x - x.mean()) ** 2),
        (elastic_net, {"l1_ratio": 0.3}, lambda x: 0.3 * np.abs(x) + 0.7 * x**2),
    ],
    ids=["l1", "l2", "l2-center-clip", "l2-center-mean", "enet"],
)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)], ids=["0d", "1d", "3d"])
def test_reductions_against_numpy_float64(
    xp: Any, dtype_name: str, penalty: Any, options: Any, elementwise: Any, shape: Any
) -> None:
    host = np.random.default_rng(0).normal(size=shape)
    x = _a(xp, host, dtype_name)
    reference = elementwise(host.astype(np.float64))
    rtol = 1e-5 if dtype_name == "float32" else 1e-12
    for reduction, expected in [
        ("sum", reference.sum()),
        ("mean", reference.mean()),
        ("none", reference),
    ]:
        result = penalty(x, reduction=reduction, **options)
        assert_close(result, _a(xp, expected, dtype_name), rtol=rtol, atol=rtol)


def test_result_keeps_namespace_dtype_device(case: Any, dtype_name: str) -> None:
    xp = case.xp
    x = _a(xp, [[1.0, -2.0], [3.0, 4.0]], dtype_name)
    # expected values worked by hand: Σ|x| = 10, Σx² = 30, ½·10 + ½·30 = 20
    for penalty, expected in ((l1, 10.0), (l2, 30.0), (elastic_net, 20.0)):
        result = penalty(x)
        assert get_xp(result) is xp
        assert array_api_compat.device(result) == array_api_compat.device(x)
        assert_close(result, _a(xp, expected, dtype_name))


def test_numpy_results_are_arrays_not_scalars() -> None:
    for penalty in (l1, l2, elastic_net):
        result = penalty(np.asarray([1.0, 2.0]), lam=0.5)
        assert type(result) is np.ndarray
        assert result.shape == ()
    assert type(l2(np.asarray(3.0), reduction="none")) is np.ndarray


def test_half_precision_inputs_stay_half(case: Any) -> None:
    xp = float16_namespace(case)
    x = xp.asarray([1.0, -2.0, 3.0], dtype=xp.float16)
    assert_close(l1(x), xp.asarray(6.0, dtype=xp.float16))
    assert_close(l2(x, lam=0.5), xp.asarray(7.0, dtype=xp.float16))


def test_elastic_net_endpoints_equal_l1_and_l2_exactly(xp: Any, dtype_name: str) -> None:
    x = _a(xp, [0.5, -1.5, 2.0, math.inf], dtype_name)
    assert_close(elastic_net(x, l1_ratio=1.0, lam=0.3), l1(x, lam=0.3), rtol=0)
    assert_close(elastic_net(x, l1_ratio=0.0, lam=0.3), l2(x, lam=0.3), rtol=0)


def test_infinite_and_nan_inputs_propagate(xp: Any, dtype_name: str) -> None:
    x = _a(xp, [1.0, math.inf], dtype_name)
    assert_close(l1(x), _a(xp, math.inf, dtype_name))
    assert_close(l2(x, clip=2.0), _a(xp, 5.0, dtype_name))  # clipped: finite
    assert_close(l2(_a(xp, [1.0, math.nan], dtype_name)), _a(xp, math.nan, dtype_name))


# ---------------------------------------------------------------- gradients

GRADIENTS = [
    # (penalty, options, closed-form gradient of the *sum* reduction)
    pytest.param(l1, {"lam": 0.7}, lambda x: 0.7 * np.sign(x), id="l1"),
    pytest.param(l2, {"lam": 0.5}, lambda x: x, id="l2"),
    pytest.param(
        l2,
        {"center": 0.5, "clip": 1.0},
        lambda x: 2 * np.clip(x - 0.5, -1, 1) * (np.abs(x - 0.5) < 1),
        id="l2-center-clip",
    ),
    pytest.param(l2, {"center": "mean"}, lambda x: 2 * (x - x.mean()), id="l2-center-mean"),
    pytest.param(
        elastic_net,
        {"l1_ratio": 0.25, "lam": 2.0},
        lambda x: 2.0 * (0.25 * np.sign(x) + 0.75 * 2 * x),
        id="enet",
    ),
]
# no point sits at a kink (|x| = 0, |x − 0.5| = 1), where the closed forms are one-sided
GRAD_POINT = [1.0, -2.0, 3.0, 0.25, -0.75]


@pytest.mark.parametrize(("penalty", "options", "closed_form"), GRADIENTS)
def test_autodiff_gradient_equals_closed_form(
    ad_xp: Any, dtype_name: str, penalty: Any, options: Any, closed_form: Any
) -> None:
    x = _a(ad_xp, GRAD_POINT, dtype_name)
    grad = get_backend(x).grad(lambda v: penalty(v, **options), x)
    assert_close(grad, _a(ad_xp, closed_form(np.asarray(GRAD_POINT)), dtype_name))


@pytest.mark.parametrize(("penalty", "options", "closed_form"), GRADIENTS)
def test_finite_difference_gradient_within_1e_6(
    fd_xp: Any, penalty: Any, options: Any, closed_form: Any
) -> None:
    x = _a(fd_xp, GRAD_POINT, "float64")
    with pytest.warns(FiniteDifferenceWarning, match="approximate gradient, O\\(n\\) evaluations"):
        grad = get_backend(x).grad(lambda v: penalty(v, **options), x)
    assert_close(
        grad, _a(fd_xp, closed_form(np.asarray(GRAD_POINT)), "float64"), rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize(("penalty", "options", "closed_form"), GRADIENTS)
def test_finite_difference_gradient_float32_input(
    fd_xp: Any, penalty: Any, options: Any, closed_form: Any
) -> None:
    # evaluated in float64 internally, returned in the input's float32
    x = _a(fd_xp, GRAD_POINT, "float32")
    with pytest.warns(FiniteDifferenceWarning):
        grad = get_backend(x).grad(lambda v: penalty(v, **options), x)
    assert_close(
        grad, _a(fd_xp, closed_form(np.asarray(GRAD_POINT)), "float32"), rtol=1e-5, atol=1e-6
    )


def test_l2_spec_gradient(grad_xp: Any, dtype_name: str) -> None:
    # SPEC §1: grad of l2(lam=0.5) at [1, 2, 3] is [1, 2, 3]
    x = _a(grad_xp, [1.0, 2.0, 3.0], dtype_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FiniteDifferenceWarning)
        grad = get_backend(x).grad(lambda v: l2(v, lam=0.5), x)
    assert_close(grad, x, rtol=1e-5 if dtype_name == "float32" else 1e-9)


@pytest.mark.parametrize("penalty", [l1, elastic_net])
def test_l1_gradient_at_zero_is_finite_and_bounded(
    grad_xp: Any, dtype_name: str, penalty: Any
) -> None:
    lam = 0.8
    x = _a(grad_xp, [0.0, 0.0], dtype_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FiniteDifferenceWarning)
        grad = np.asarray(
            get_backend(x).grad(
                lambda v: (
                    penalty(v, lam=lam, l1_ratio=1.0)
                    if penalty is elastic_net
                    else penalty(v, lam=lam)
                ),
                x,
            )
        )
    assert np.all(np.isfinite(grad))
    assert np.all(np.abs(grad) <= lam * (1 + 1e-6))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("penalty", [l1, l2, elastic_net])
@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_and_bool_inputs_raise_type_error(xp: Any, penalty: Any, dtype: str) -> None:
    x = xp.asarray([1, 0, 1], dtype=getattr(xp, dtype))
    with pytest.raises(InvalidTypeError, match="`x` must have a real floating dtype"):
        penalty(x)


@pytest.mark.parametrize("penalty", [l1, l2, elastic_net])
def test_non_arrays_raise_type_error(penalty: Any) -> None:
    with pytest.raises(InvalidTypeError, match=r"`x` must be an array .* got builtins.list"):
        penalty([1.0, 2.0])


BAD_OPTIONS = [
    (
        l1,
        {"reduction": "avg"},
        InvalidValueError,
        "`reduction` must be one of 'sum', 'mean', 'none'; got 'avg'",
    ),
    (l1, {"reduction": None}, InvalidTypeError, "`reduction` must be one of"),
    (l1, {"lam": -0.1}, InvalidValueError, "`lam` must be finite, in \\[0.0, inf\\]; got -0.1"),
    (l1, {"lam": math.nan}, InvalidValueError, "`lam` must be finite"),
    (l1, {"lam": math.inf}, InvalidValueError, "`lam` must be finite"),
    (l1, {"lam": "0.1"}, InvalidTypeError, "`lam` must be a real number; got '0.1'"),
    (l1, {"lam": True}, InvalidTypeError, "`lam` must be a real number"),
    (l2, {"center": "median"}, InvalidValueError, "`center` must be one of 'mean'; got 'median'"),
    (l2, {"center": [1.0]}, InvalidTypeError, "`center` must be None, 'mean' or a real number"),
    (l2, {"center": math.nan}, InvalidValueError, "`center` must be finite"),
    (l2, {"clip": -1.0}, InvalidValueError, "`clip` must be in \\[0.0, inf\\]; got -1.0"),
    (l2, {"clip": math.nan}, InvalidValueError, "`clip` must be in"),
    (l2, {"clip": "1"}, InvalidTypeError, "`clip` must be a real number"),
    (
        elastic_net,
        {"l1_ratio": 1.5},
        InvalidValueError,
        "`l1_ratio` must be finite, in \\[0.0, 1.0\\]; got 1.5",
    ),
    (elastic_net, {"l1_ratio": -0.01}, InvalidValueError, "`l1_ratio` must be finite, in"),
    (elastic_net, {"l1_ratio": None}, InvalidTypeError, "`l1_ratio` must be a real number"),
]


@pytest.mark.parametrize(("penalty", "options", "error", "message"), BAD_OPTIONS)
def test_bad_options_name_the_parameter(
    xp: Any, penalty: Any, options: Any, error: type, message: str
) -> None:
    x = xp.asarray([1.0, 2.0], dtype=xp.float32)
    with pytest.raises(error, match=message) as info:
        penalty(x, **options)
    assert isinstance(info.value, ArrayPenaltiesError)
    # and the builtin a caller would expect
    assert isinstance(info.value, ValueError if error is InvalidValueError else TypeError)


def test_mean_of_empty_array_raises(xp: Any) -> None:
    x = xp.asarray([], dtype=xp.float64)
    assert_close(l1(x), xp.asarray(0.0, dtype=xp.float64))
    with pytest.raises(InvalidValueError, match="`reduction` 'mean' needs at least one element"):
        l2(x, reduction="mean")


def test_options_are_keyword_only_and_arrays_positional_only() -> None:
    x = np.asarray([1.0])
    with pytest.raises(TypeError):
        l1(x, 0.5)  # type: ignore[misc]
    with pytest.raises(TypeError):
        l1(x=x)  # type: ignore[call-arg]


def test_explicit_xp_is_used(xp: Any) -> None:
    x = xp.asarray([1.0, -2.0], dtype=xp.float64)
    assert_close(l1(x, xp=xp), xp.asarray(3.0, dtype=xp.float64))
