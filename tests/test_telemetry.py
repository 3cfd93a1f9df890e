"""Telemetry (SPEC §8): events of Pipeline.compute and the tracker, failing handlers detached."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from arraypenalties import GradientTrackingWarning, Pipeline, grad_norm, telemetry

COMPUTE = ("arraypenalties", "pipeline", "compute")
START, STOP, EXCEPTION = (*COMPUTE, "start"), (*COMPUTE, "stop"), (*COMPUTE, "exception")
GRADIENT = ("arraypenalties", "gradient")
COMPUTED, FAILED = (*GRADIENT, "computed"), (*GRADIENT, "failed")


@pytest.fixture
def events() -> Iterator[list[tuple[Any, ...]]]:
    seen: list[tuple[Any, ...]] = []
    telemetry.attach(
        "test", list(telemetry.EVENTS), lambda e, m, md: seen.append((e, dict(m), dict(md)))
    )
    yield seen
    telemetry.detach("test")


def test_compute_emits_start_and_stop(events: list[tuple[Any, ...]]) -> None:
    before = time.time_ns()
    p = Pipeline(name="reg").add("l1", "l1", weight=0.1)
    _, metrics = p.compute(np.array([1.0, -2.0, 3.0]))
    assert [e for e, _, _ in events] == [START, STOP]
    (_, start_m, start_md), (_, stop_m, stop_md) = events
    assert before <= start_m["system_time"] <= time.time_ns()
    assert start_md == {"pipeline_name": "reg", "entry_count": 1}
    assert isinstance(stop_m["duration"], int) and stop_m["duration"] > 0
    assert stop_md["metrics"] == metrics and stop_md["total"] == pytest.approx(0.6)
    assert stop_md["pipeline_name"] == "reg" and stop_md["entry_count"] == 1


def test_compute_emits_exception_and_reraises(events: list[tuple[Any, ...]]) -> None:
    p = Pipeline().add("rows", "l1", opts={"reduction": "none"})
    with pytest.raises(ValueError, match="entry 'rows'"):
        p.compute(np.array([1.0, 2.0]))
    assert [e for e, _, _ in events] == [START, EXCEPTION]
    _, measurements, metadata = events[1]
    assert measurements["duration"] > 0
    assert issubclass(metadata["kind"], ValueError)
    assert "entry 'rows'" in str(metadata["reason"])
    assert any("entry 'rows'" in line for line in metadata["stacktrace"])


def test_gradient_events(events: list[tuple[Any, ...]]) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    p = Pipeline().add("l1", "l1").add("am", lambda x: torch.argmax(x))
    with pytest.warns(GradientTrackingWarning):
        p.compute(torch.tensor([1.0, 1.0, 1.0]), track_grad_norms=True)
    kinds = [e for e, _, _ in events]
    assert kinds == [START, COMPUTED, FAILED, STOP]
    _, computed_m, computed_md = events[1]
    assert computed_md == {"name": "l1"}
    assert computed_m["grad_norm"] == pytest.approx(math.sqrt(3)) and computed_m["duration"] > 0
    _, _, failed_md = events[2]
    assert failed_md["name"] == "am" and "InvalidTypeError" in failed_md["reason"]
    events.clear()
    grad_norm(lambda x: torch.sum(x * x), torch.tensor([1.0, 2.0, 3.0]))
    assert [e for e, _, _ in events] == [COMPUTED]
    assert events[0][1]["grad_norm"] == pytest.approx(math.sqrt(56))


def test_failing_handler_is_detached_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def broken(event: Any, measurements: Any, metadata: Any) -> None:
        calls.append(event)
        raise RuntimeError("handler bug")

    telemetry.attach("broken", [START, STOP], broken)
    p = Pipeline().add("l1", "l1")
    with caplog.at_level(logging.ERROR, logger="arraypenalties.telemetry"):
        _, metrics = p.compute(np.array([1.0, -1.0]))
    assert metrics["total"] == 2.0  # the computation went on
    assert calls == [START] and "broken" not in telemetry.handlers()
    assert "'broken' raised" in caplog.text and "handler bug" in caplog.text
    p.compute(np.array([1.0]))
    assert calls == [START]


def test_attach_detach_errors() -> None:
    handler = lambda *args: None  # noqa: E731
    telemetry.attach("h", [STOP], handler)
    try:
        assert telemetry.handlers() == {"h": (STOP,)} and telemetry.is_observed(STOP)
        with pytest.raises(ValueError, match="'h' is already attached"):
            telemetry.attach("h", [STOP], handler)
    finally:
        assert telemetry.detach("h") is True
    assert telemetry.detach("h") is False and not telemetry.is_observed(STOP)
    with pytest.raises(TypeError, match="tuple of strings"):
        telemetry.attach("x", ["arraypenalties.pipeline"], handler)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one event"):
        telemetry.attach("x", [], handler)
    with pytest.raises(TypeError, match="`handler` must be callable"):
        telemetry.attach("x", [STOP], 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`handler_id` must be a str"):
        telemetry.attach(1, [STOP], handler)  # type: ignore[arg-type]
    assert telemetry.handlers() == {}


def test_no_handlers_no_events() -> None:
    assert telemetry.handlers() == {}
    assert not any(telemetry.is_observed(event) for event in telemetry.EVENTS)
