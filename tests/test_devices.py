"""Every public function of the norm, gradient and validation modules keeps its input's device.

The ``device`` fixture gives a non-default device where a backend has one
(array-api-strict ``Device("device1")``, torch ``"meta"``); results must live
there, with the input's dtype and the documented shape.
"""

from __future__ import annotations

from typing import Any

import pytest

from arraypenalties import (
    elastic_net,
    gradient_penalty,
    interpolated_gradient_penalty,
    l1,
    l2,
    output_magnitude_penalty,
    validate,
)
from arraypenalties._lib.namespace import device_of, get_xp
from arraypenalties.backends import primitives
from arraypenalties.testing import as_array

VALUES = [[0.5, -1.0, 2.0], [1.5, 0.0, -0.25]]


def _square_sum(v: Any) -> Any:
    return primitives.reduce(v * v, "sum", xp=get_xp(v))


def _calls(x: Any, xp: Any) -> dict[str, Any]:
    return {
        "l1": l1(x),
        "l2": l2(x, center="mean", clip=1.0),
        "l2 none": l2(x, reduction="none"),
        "elastic_net": elastic_net(x, l1_ratio=0.3),
        "output_magnitude_penalty": output_magnitude_penalty(x),
        "output_magnitude_penalty none": output_magnitude_penalty(x, reduction="none"),
        "logsumexp": primitives.logsumexp(x, axis=-1, xp=xp),
        "stop_gradient": primitives.stop_gradient(x),
        "normals": primitives.standard_normals([x], 3, 1)[0],
    }


def test_penalties_keep_the_device(device_case: Any, device: Any, dtype_name: str) -> None:
    xp = device_case.xp
    x = as_array(xp, VALUES, dtype_name, device=device)
    for name, result in _calls(x, xp).items():
        assert device_of(result) == device_of(x), name
        assert result.dtype == x.dtype, name
        assert tuple(result.shape) in {(), (2,), (2, 3)}, name


def test_gradient_penalties_keep_the_device(device_case: Any, device: Any) -> None:
    xp = device_case.xp
    x = as_array(xp, VALUES, "float64", device=device)
    alpha = as_array(xp, [[0.25], [0.75]], "float64", device=device)
    if device_case.name == "torch":
        results = [
            gradient_penalty(_square_sum, x),
            interpolated_gradient_penalty(_square_sum, x, x, alpha=alpha),
            interpolated_gradient_penalty(_square_sum, x, x, rng=0),
        ]
    else:  # finite differences: approximate, and they say so
        with pytest.warns(UserWarning, match="finite differences"):
            results = [
                gradient_penalty(_square_sum, x),
                interpolated_gradient_penalty(_square_sum, x, x, alpha=alpha),
                interpolated_gradient_penalty(_square_sum, x, x, rng=0),
            ]
    for result in results:
        assert device_of(result) == device_of(x)
        assert result.dtype == x.dtype and tuple(result.shape) == ()


def test_validate_keeps_the_array(device_case: Any, device: Any) -> None:
    if device_case.name == "torch":
        pytest.skip("meta tensors hold no values for validate to check")
    x = as_array(device_case.xp, VALUES, "float64", device=device)
    assert validate(x) is x
