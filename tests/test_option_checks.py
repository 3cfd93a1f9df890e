"""One validation layer: every bool option gives one message, numpy ints count as ints.

Each case here failed on the code before the layer was unified: five private bool
checkers said "must be a bool; got 1" or "must be True or False; got 1 of type int"
depending on the module, and `axis` refused numpy integers that `batch_axis` took.
"""

from __future__ import annotations

import ast
import pathlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import arraypenalties as ap
from arraypenalties import InvalidTypeError, schedules
from arraypenalties.divergences import entropy, entropy_value, js_divergence, kl_divergence
from arraypenalties.testing import as_array

SRC = pathlib.Path(ap.__file__).parent
LP = np.log(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))
LQ = np.log(np.array([[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]))


def _pipeline_enabled(value: Any) -> Any:
    return ap.Pipeline().add("l1", "l1", enabled=value)


def _pipeline_compute(value: Any) -> Any:
    return ap.Pipeline().add("l1", "l1").compute(np.ones(2), track_grad_norms=value)


def _staircase(value: Any) -> Any:
    return schedules.exponential_decay(1.0, rate=0.5, steps=1, staircase=value)


BOOL_OPTIONS: list[tuple[str, Callable[[Any], Any]]] = [
    ("symmetric", lambda v: kl_divergence(LP, LQ, symmetric=v)),
    ("from_logits", lambda v: js_divergence(LP, LQ, from_logits=v)),
    ("normalize", lambda v: entropy_value(LP, normalize=v)),
    ("enabled", _pipeline_enabled),
    ("track_grad_norms", _pipeline_compute),
    ("staircase", _staircase),
]


@pytest.mark.parametrize(("name", "call"), BOOL_OPTIONS, ids=[n for n, _ in BOOL_OPTIONS])
@pytest.mark.parametrize("value", [1, "yes", None, np.bool_(True)])
def test_every_bool_option_has_one_message(
    name: str, call: Callable[[Any], Any], value: Any
) -> None:
    expected = f"`{name}` must be True or False; got {value!r} of type {type(value).__name__}"
    with pytest.raises(InvalidTypeError) as caught:
        call(value)
    assert str(caught.value) == expected


def test_no_module_defines_its_own_bool_check() -> None:
    """Only ``_lib/checks.py`` may define a function that checks for a bool option."""
    own = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).as_posix() == "_lib/checks.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and re.fullmatch(r"_?check_bool", node.name):
                own.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert own == []


@pytest.mark.parametrize("axis", [np.int64(-1), np.int32(1), np.intp(-1)])
def test_axis_accepts_numpy_integers(xp: Any, axis: Any) -> None:
    lp, lq = as_array(xp, LP), as_array(xp, LQ)
    assert float(kl_divergence(lp, lq, axis=axis)) == float(kl_divergence(lp, lq, axis=-1))
    assert float(js_divergence(lp, lq, axis=axis)) == float(js_divergence(lp, lq, axis=-1))
    assert float(entropy(lp, axis=axis)) == float(entropy(lp, axis=-1))


@pytest.mark.parametrize("axis", [True, 1.0, "1", np.float64(1.0)])
def test_axis_still_refuses_non_integers(axis: Any) -> None:
    with pytest.raises(InvalidTypeError, match="`axis` must be an int; got"):
        kl_divergence(LP, LQ, axis=axis)
