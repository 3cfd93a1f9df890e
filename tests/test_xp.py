"""Namespace resolution, option checks and reductions (the core the penalties share)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import arraypenalties._lib.namespace as xp_module
from arraypenalties import ArrayPenaltiesError, InvalidTypeError, InvalidValueError, l2
from arraypenalties._lib.checks import (
    check_callable,
    check_choice,
    check_real,
    check_reduction,
    element_count,
)
from arraypenalties._lib.namespace import get_xp
from arraypenalties.backends.primitives import reduce
from arraypenalties.testing import assert_close


def test_get_xp_returns_the_backend_namespace(case: Any) -> None:
    x = case.xp.asarray([1.0], dtype=case.xp.float32)
    assert get_xp(x) is case.xp
    assert get_xp(x, x) is case.xp


def test_namespace_is_cached_per_type(case: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    x = case.xp.asarray([1.0], dtype=case.xp.float32)
    get_xp(x)
    monkeypatch.setattr(xp_module, "_namespace_for_type", lambda *a: pytest.fail("not cached"))
    assert get_xp(x) is case.xp


def test_torch_and_jax_never_enter_array_namespace(
    ad_case: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # array_api_compat.array_namespace is lru_cached, which torch.compile warns about
    xp_module._NAMESPACE_BY_TYPE.clear()
    monkeypatch.setattr(
        xp_module.array_api_compat, "array_namespace", lambda *a: pytest.fail("slow path")
    )
    assert get_xp(ad_case.xp.ones(2)) is ad_case.xp


@pytest.mark.backend("torch")
def test_mixed_namespaces_raise_naming_both() -> None:
    import torch

    with pytest.raises(
        InvalidTypeError,
        match=r"`p` is a numpy.ndarray but `q` is a torch.Tensor; .* one namespace",
    ) as info:
        get_xp(np.ones(2), torch.ones(2), names=("p", "q"))
    assert isinstance(info.value, TypeError) and isinstance(info.value, ArrayPenaltiesError)


def test_mixed_numpy_and_strict_raise() -> None:
    import array_api_strict

    with pytest.raises(
        InvalidTypeError,
        match=r"`argument 0` is a numpy.ndarray but `argument 1` is a array_api_strict",
    ):
        get_xp(np.ones(2), array_api_strict.ones(2))


@pytest.mark.parametrize("value", [[1.0], 1.0, "x", None], ids=["list", "float", "str", "none"])
def test_non_arrays_raise_naming_the_parameter(value: Any) -> None:
    with pytest.raises(
        InvalidTypeError, match="`weights` must be an array of an Array API namespace"
    ):
        get_xp(value, names=("weights",))


def test_check_choice() -> None:
    assert check_choice("sum", "reduction", ("sum", "mean")) == "sum"
    with pytest.raises(InvalidValueError, match="`mode` must be one of 'a', 'b'; got 'c'"):
        check_choice("c", "mode", ("a", "b"))
    with pytest.raises(InvalidTypeError, match="`mode` must be one of 'a', 'b'; got 1"):
        check_choice(1, "mode", ("a", "b"))


def test_check_real() -> None:
    assert check_real(np.float32(0.5), "lam") == 0.5
    assert check_real(3, "lam", low=0.0) == 3.0
    assert check_real(math.inf, "clip", low=0.0, allow_inf=True) == math.inf
    with pytest.raises(InvalidValueError, match=r"`t` must be finite, in \[0.0, 1.0\]; got 2"):
        check_real(2, "t", low=0.0, high=1.0)
    with pytest.raises(InvalidValueError, match="`t` must be in"):
        check_real(math.nan, "t", allow_inf=True)
    with pytest.raises(InvalidTypeError, match="`t` must be a real number; got array"):
        check_real(np.asarray(1.0), "t")


def test_check_callable_names_the_parameter_and_the_type_given() -> None:
    assert check_callable(len, "fn") is len
    assert check_callable(None, "sink", optional=True) is None
    with pytest.raises(InvalidTypeError, match=r"^`fn` must be callable; got builtins\.int$"):
        check_callable(5, "fn")
    or_none = r"^`sink` must be a callable sink\(report\) or None; got builtins\.str$"
    with pytest.raises(InvalidTypeError, match=or_none):
        check_callable("print", "sink", what="a callable sink(report)", optional=True)
    huge = np.zeros(10_000)  # the type is shown, never a repr of the value
    with pytest.raises(InvalidTypeError, match=r"got numpy\.ndarray$"):
        check_callable(huge, "fn")


def test_check_reduction_and_element_count(xp: Any) -> None:
    empty = xp.zeros((0, 2), dtype=xp.float32)
    assert element_count(empty) == 0
    assert element_count(xp.zeros((2, 3), dtype=xp.float32)) == 6
    assert check_reduction("sum", empty) == "sum"
    with pytest.raises(
        InvalidValueError, match=r"needs at least one element; got an array of shape \(0, 2\)"
    ):
        check_reduction("mean", empty)


@pytest.mark.parametrize(
    ("reduction", "scale", "expected"), [("sum", 1.0, 10.0), ("sum", 0.5, 5.0), ("mean", 2.0, 5.0)]
)
def test_reduce_scalar_reductions(
    xp: Any, dtype_name: str, reduction: str, scale: float, expected: float
) -> None:
    dtype = getattr(xp, dtype_name)
    values = xp.asarray([[1.0, 2.0], [3.0, 4.0]], dtype=dtype)
    assert_close(reduce(values, reduction, xp=xp, scale=scale), xp.asarray(expected, dtype=dtype))


def test_reduce_none_is_elementwise(xp: Any) -> None:
    values = xp.asarray([1.0, 2.0], dtype=xp.float64)
    assert_close(reduce(values, "none", xp=xp, scale=3.0), xp.asarray([3.0, 6.0], dtype=xp.float64))


def test_float32_stays_float32_with_python_float_options(xp: Any) -> None:
    # weak Python scalars (lam, center, clip) must not promote float32 to float64
    x = xp.asarray([1.0, 2.0], dtype=xp.float32)
    assert l2(x, lam=0.1, center=0.5, clip=10.0).dtype == xp.float32
