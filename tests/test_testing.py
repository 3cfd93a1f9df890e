"""The public test helpers: backend selection and assert_close."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import arraypenalties.testing as testing
from arraypenalties import InvalidValueError, UnknownNameError
from arraypenalties.testing import assert_close, select_backends


def test_default_selection_is_every_installed_backend() -> None:
    names = [case.name for case in select_backends(None)]
    assert "numpy" in names
    assert all(case.installed() for case in select_backends(None))


def test_selection_by_name() -> None:
    assert [case.name for case in select_backends("numpy, array_api_strict")] == [
        "numpy",
        "array_api_strict",
    ]


def test_unknown_backend_name_fails() -> None:
    with pytest.raises(UnknownNameError, match="unknown backend 'tensorflow'"):
        select_backends("numpy,tensorflow")


def test_requested_backend_that_cannot_import_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = dataclasses.replace(
        testing.BACKENDS[0], name="ghost", module="arraypenalties_no_such_framework"
    )
    monkeypatch.setattr(testing, "BACKENDS", (*testing.BACKENDS, missing))
    assert "ghost" not in [case.name for case in select_backends(None)]
    with pytest.raises(InvalidValueError, match="asks for 'ghost', which cannot be imported"):
        select_backends("numpy,ghost")


def test_requested_unusable_backend_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_less = dataclasses.replace(testing.BACKENDS[0], name="nogpu", usable=lambda: False)
    monkeypatch.setattr(testing, "BACKENDS", (*testing.BACKENDS, gpu_less))
    with pytest.raises(InvalidValueError, match="asks for 'nogpu'"):
        select_backends("nogpu")


def test_assert_close_checks_metadata_before_values(xp: Any) -> None:
    x = xp.asarray([1.0, 2.0], dtype=xp.float32)
    assert_close(x, xp.asarray([1.0, 2.0 + 1e-6], dtype=xp.float32))
    with pytest.raises(AssertionError, match="dtype: got"):
        assert_close(x, xp.asarray([1.0, 2.0], dtype=xp.float64))
    with pytest.raises(AssertionError, match="shape: got"):
        assert_close(x, xp.asarray([[1.0, 2.0]], dtype=xp.float32))
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        assert_close(x, xp.asarray([1.0, 2.1], dtype=xp.float32))


def test_assert_close_checks_namespace(case: Any) -> None:
    if case.name == "numpy":
        other = testing.BACKENDS[1].xp  # array_api_strict
    else:
        import array_api_compat.numpy as other
    x = case.xp.asarray([1.0], dtype=case.xp.float64)
    with pytest.raises(AssertionError, match="namespace: got"):
        assert_close(x, other.asarray([1.0], dtype=other.float64))


def test_assert_close_checks_device() -> None:
    import array_api_strict as xp

    other_device = xp.Device("device1")
    x = xp.asarray([1.0], dtype=xp.float64)
    with pytest.raises(AssertionError, match="device: got"):
        assert_close(x, xp.asarray([1.0], dtype=xp.float64, device=other_device))


def test_to_numpy_of_bfloat16_and_integers(case: Any) -> None:
    xp = case.xp
    host = testing.to_numpy(xp.asarray([1, 2], dtype=xp.int32))
    assert host.dtype == np.int32 and host.tolist() == [1, 2]
