"""Weight schedules: closed forms, by step and by epoch, weight_schedule and bad input."""

from __future__ import annotations

import math
from typing import Any

import pytest

from arraypenalties import (
    ArrayPenaltiesError,
    InvalidTypeError,
    InvalidValueError,
    Pipeline,
    UnknownNameError,
)
from arraypenalties.schedules import (
    SCHEDULE_KINDS,
    Schedule,
    apply_scheduled_weights,
    constant,
    cosine,
    exponential_decay,
    linear,
    schedule,
    warmup,
    weight_schedule,
)


@pytest.mark.parametrize(
    ("built", "step", "total", "expected"),
    [
        (constant(0.3), 7, None, 0.3),
        (linear(1.0, 3.0, steps=4), 1, None, 1.5),
        (linear(1.0, 3.0, steps=4), 9, None, 3.0),
        (linear(1.0, 3.0, steps=4, begin=2), 1, None, 1.0),
        (linear(1.0, 3.0, steps=4, begin=2), 4, None, 2.0),
        (linear(0.0, 1.0), 2.5, 10, 0.25),  # fractional epoch, whole run
        (warmup(2.0, steps=8), 2, None, 0.5),
        (warmup(2.0, steps=8, init=1.0), 4, None, 1.5),
        (warmup(2.0, steps=8), 100, None, 2.0),
        (exponential_decay(2.0, rate=0.1, steps=3), 6, None, 2.0 * 0.1**2),
        (exponential_decay(2.0, rate=0.1, steps=3), 1.5, None, 2.0 * 0.1**0.5),
        (exponential_decay(2.0, rate=0.1, steps=3, staircase=True), 5, None, 0.2),
        (exponential_decay(2.0, rate=0.1, steps=3, end=0.05), 30, None, 0.05),
        (exponential_decay(1.0, rate=2.0, steps=1, end=5.0), 10, None, 5.0),
        (exponential_decay(2.0, rate=0.5, steps=1, begin=3), 2, None, 2.0),
        (cosine(1.0, steps=8), 2, None, 0.5 * (1 + math.cos(math.pi / 4))),
        (cosine(1.0, end=0.2, steps=8), 8, None, 0.2),
        (cosine(1.0), 3, 12, 0.5 * (1 + math.cos(math.pi / 4))),
        (warmup(1.0, steps=2, then=cosine(1.0)), 5, 10, 0.5 * (1 + math.cos(math.pi * 3 / 8))),
    ],
)
def test_closed_forms(built: Schedule, step: float, total: Any, expected: float) -> None:
    value = built(step, total)
    assert type(value) is float
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_per_step_and_per_epoch_are_the_same_curve() -> None:
    per_step = cosine(0.1, steps=1000)  # 10 epochs of 100 steps
    per_epoch = cosine(0.1, steps=10)
    for epoch in range(11):
        assert per_step(epoch * 100) == pytest.approx(per_epoch(epoch), rel=1e-12, abs=1e-15)
    assert per_step(250) == pytest.approx(per_epoch(2.5), rel=1e-12)


def test_schedule_by_name_matches_the_factories() -> None:
    assert set(SCHEDULE_KINDS) == {"constant", "linear", "warmup", "exponential_decay", "cosine"}
    assert schedule("cosine", init=1.0, steps=4)(1) == cosine(1.0, steps=4)(1)
    nested = schedule(
        "warmup", peak=1.0, steps=2, then={"kind": "linear", "init": 1.0, "end": 0.0, "steps": 4}
    )
    assert nested(4) == pytest.approx(0.5)


def test_weight_schedule_and_apply_scheduled_weights() -> None:
    weights = weight_schedule(
        {"l1": 1e-3, "entropy": {"kind": "linear", "init": 0.0, "end": 0.2}, "kl": cosine(0.1)}
    )
    got = weights(5, 10)
    assert list(got) == ["l1", "entropy", "kl"]
    assert got == pytest.approx({"l1": 1e-3, "entropy": 0.1, "kl": 0.05})

    class StandIn:
        """Immutable, like Pipeline: update_weight returns a new object."""

        def __init__(self, weights: dict[str, float]) -> None:
            self.weights = weights

        def update_weight(self, name: str, weight: float) -> StandIn:
            if name not in self.weights:
                raise KeyError(name)
            return StandIn({**self.weights, name: weight})

    original = StandIn({"l1": 0.0, "entropy": 0.0, "kl": 0.0})
    updated = apply_scheduled_weights(original, got)
    assert updated.weights == got and original.weights == {"l1": 0.0, "entropy": 0.0, "kl": 0.0}
    with pytest.raises(KeyError):
        apply_scheduled_weights(original, {"missing": 1.0})
    with pytest.raises(InvalidTypeError, match="`pipeline` must have an update_weight"):
        apply_scheduled_weights(object(), got)  # type: ignore[type-var]


def test_apply_scheduled_weights_to_a_real_pipeline(xp: Any) -> None:
    p = Pipeline().add("l1", "l1", weight=0.0).add("l2", "l2", weight=0.0)
    schedule = weight_schedule({"l1": {"kind": "linear", "init": 0.0, "end": 1.0}, "l2": 0.5})
    x = xp.asarray([1.0, -2.0, 3.0], dtype=xp.float64)
    totals = []
    for step in (0, 2, 4):
        scheduled = apply_scheduled_weights(p, schedule(step, 4))
        totals.append(scheduled.compute(x)[1]["total"])
    # l1 = 6, l2 = 14: weights (0, .5), (.5, .5), (1, .5)
    assert totals == pytest.approx([7.0, 10.0, 13.0])
    assert [e.weight for e in p] == [0.0, 0.0]  # the original pipeline is unchanged
    with pytest.raises(UnknownNameError, match=r"no entry named 'kl'; entries are \['l1', 'l2'\]"):
        apply_scheduled_weights(p, {"kl": 1.0})


def test_unknown_kind_is_a_value_and_key_error() -> None:
    with pytest.raises(
        UnknownNameError, match=r"`kind` must be one of 'constant', 'linear', .*; got 'step'"
    ) as info:
        weight_schedule({"l1": {"kind": "step", "init": 1.0}})
    assert isinstance(info.value, ArrayPenaltiesError)
    assert isinstance(info.value, ValueError) and isinstance(info.value, KeyError)
    assert str(info.value).startswith("`kind`")  # no KeyError quoting


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: linear(0.0, 1.0, steps=0), InvalidValueError, "`steps` must be > 0"),
        (lambda: linear(0.0, 1.0, steps=-1), InvalidValueError, "`steps` must be finite, in"),
        (lambda: linear("a", 1.0), InvalidTypeError, "`init` must be a real number"),
        (lambda: warmup(1.0, steps=None), InvalidValueError, "`steps` must be a number for warmup"),  # type: ignore[arg-type]
        (
            lambda: warmup(1.0, steps=2, then=0.5),
            InvalidTypeError,
            "`then` must be a Schedule or None",
        ),  # type: ignore[arg-type]
        (
            lambda: exponential_decay(1.0, rate=0.0, steps=1),
            InvalidValueError,
            "`rate` must be > 0",
        ),
        (
            lambda: exponential_decay(1.0, rate=-0.5, steps=1),
            InvalidValueError,
            "`rate` must be finite, in",
        ),
        (
            lambda: exponential_decay(1.0, rate=0.5, steps=1, staircase=1),
            InvalidTypeError,
            "`staircase` must be True or False",
        ),  # type: ignore[arg-type]
        (lambda: cosine(math.nan), InvalidValueError, "`init` must be finite"),
        (
            lambda: cosine(1.0)(3),
            InvalidValueError,
            "`steps` is None \\(the whole run\\), so call the schedule with `total`",
        ),
        (
            lambda: cosine(1.0, steps=2)(-1),
            InvalidValueError,
            "`step` must be finite, in \\[0.0, inf\\]; got -1",
        ),
        (lambda: cosine(1.0)(1, 0), InvalidValueError, "`total` must be > 0"),
        (
            lambda: schedule("cosine", init=1.0, decay=3),
            InvalidTypeError,
            "`decay` is not an option of schedule 'cosine'; allowed: init, end, steps",
        ),
        (
            lambda: schedule("linear", init="a", end=1.0),
            InvalidTypeError,
            "^`init` must be a real number; got 'a'",
        ),
        (
            lambda: schedule("linear", init=0.0),
            InvalidTypeError,
            "`end` is required by schedule 'linear' \\(options: init, end, steps, begin\\)",
        ),
        (
            lambda: weight_schedule({"l1": {"kind": "constant", 1: 2.0}}),
            InvalidTypeError,
            "`specs\\['l1'\\]` keys must be option names \\(str\\); got 1",
        ),
        (lambda: Schedule("step", {}), UnknownNameError, "`kind` must be one of 'constant'"),
        (lambda: weight_schedule({"l1": {"init": 1.0}}), InvalidValueError, "needs a 'kind' key"),
        (
            lambda: weight_schedule({"l1": "cosine"}),
            InvalidTypeError,
            "must be a Schedule, a number or a",
        ),
        (lambda: weight_schedule([("l1", 1.0)]), InvalidTypeError, "`specs` must be a mapping"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_names_the_parameter(build: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build()


def test_repr_shows_kind_and_options() -> None:
    assert repr(cosine(0.1, steps=10)) == "cosine(init=0.1, end=0.0, steps=10.0)"
