"""validate, is_finite and NonFiniteError on every backend."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest

from arraypenalties import (
    ArrayPenaltiesError,
    InvalidTypeError,
    InvalidValueError,
    NonFiniteError,
    is_finite,
    validate,
)
from arraypenalties.testing import as_array as _a


def test_finite_arrays_are_returned_unchanged(xp: Any, dtype_name: str) -> None:
    x = _a(xp, [[1.0, -2.0], [0.0, 3.5]], dtype_name)
    assert validate(x) is x
    assert is_finite(x) is True


@pytest.mark.parametrize(
    ("values", "kind", "message"),
    [
        ([1.0, math.nan, 2.0], "nan", "`x` contains 1 NaN value\\(s\\) among 3 elements"),
        (
            [math.inf, 1.0, -math.inf, 0.0],
            "inf",
            "`x` contains 2 infinite value\\(s\\) among 4 elements",
        ),
        ([math.inf, math.nan], "nan", "`x` contains 1 NaN value"),  # NaN is checked first
        ([[math.nan, math.nan], [1.0, math.inf]], "nan", "2 NaN value\\(s\\) among 4 elements"),
    ],
    ids=["nan", "inf", "both-nan-first", "2d"],
)
def test_non_finite_arrays_raise_with_kind(
    xp: Any, dtype_name: str, values: Any, kind: str, message: str
) -> None:
    x = _a(xp, values, dtype_name)
    with pytest.raises(NonFiniteError, match=message) as info:
        validate(x)
    assert info.value.kind == kind
    assert isinstance(info.value, ValueError) and isinstance(info.value, ArrayPenaltiesError)
    assert is_finite(x) is False


def test_name_appears_in_the_message(xp: Any) -> None:
    with pytest.raises(NonFiniteError, match="`loss` contains 1 infinite"):
        validate(_a(xp, [math.inf], "float32"), name="loss")


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8", "bool"])
def test_integer_and_bool_arrays_are_always_valid(xp: Any, dtype: str) -> None:
    x = xp.asarray([0, 1, 1], dtype=getattr(xp, dtype))
    assert validate(x) is x
    assert is_finite(x) is True


def test_zero_dimensional_and_empty(xp: Any) -> None:
    assert is_finite(_a(xp, 1.0, "float64"))
    assert not is_finite(_a(xp, math.nan, "float64"))
    empty = _a(xp, np.zeros((0, 3)), "float32")
    assert validate(empty) is empty


def test_explicit_xp(xp: Any) -> None:
    x = _a(xp, [1.0], "float64")
    assert validate(x, xp=xp) is x
    assert is_finite(x, xp=xp)


def test_non_arrays_raise() -> None:
    with pytest.raises(InvalidTypeError, match="`x` must be an array"):
        validate([1.0, 2.0])
    with pytest.raises(InvalidTypeError, match="`x` must be an array"):
        is_finite(3.0)


def test_complex_arrays_are_checked() -> None:
    assert not is_finite(np.asarray([1 + 1j, complex(0, math.inf)]))
    with pytest.raises(NonFiniteError) as info:
        validate(np.asarray([complex(math.nan, 0)]))
    assert info.value.kind == "nan"


@pytest.mark.backend("torch")
def test_torch_half_precision() -> None:
    import torch

    with pytest.raises(NonFiniteError) as info:
        validate(torch.tensor([1.0, float("inf")], dtype=torch.bfloat16))
    assert info.value.kind == "inf"


@pytest.mark.backend("dask")
def test_dask_is_computed() -> None:
    import dask.array as da

    x = da.from_array(np.asarray([1.0, math.nan, 3.0]), chunks=1)
    assert not is_finite(x)
    with pytest.raises(NonFiniteError, match="1 NaN value\\(s\\) among 3"):
        validate(x)
    y = da.from_array(np.asarray([1.0, 2.0]), chunks=1)
    assert validate(y) is y


def test_non_finite_error_kind_is_checked_and_survives_pickling() -> None:
    error = NonFiniteError("nan", "entry `l1` is NaN")
    assert (error.kind, str(error)) == ("nan", "entry `l1` is NaN")
    assert str(NonFiniteError("inf")) == "array contains infinite values"
    assert str(NonFiniteError("nan")) == "array contains NaN values"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.kind, str(copy)) == (NonFiniteError, "nan", "entry `l1` is NaN")
    with pytest.raises(InvalidValueError, match="`kind` must be one of 'nan', 'inf'; got 'NaN'"):
        NonFiniteError("NaN")
