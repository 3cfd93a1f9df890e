"""arraypenalties.tinker: specs, compose, the report, tracking, errors and telemetry.

Expected numbers are the Tinkex parity cases (SPEC §12 / the issue) or closed forms.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from arraypenalties import (
    ArrayPenaltiesError,
    GradientTrackingWarning,
    InvalidTypeError,
    InvalidValueError,
    NonFiniteError,
    telemetry,
)
from arraypenalties.tinker import (
    EVENTS,
    RegularizerError,
    RegularizerSpec,
    as_custom_loss_fn,
    compose,
    compute_grad_norm,
    grad_norm_for_regularizer,
    total_grad_norm,
)


@dataclass
class FakeDatum:
    loss_fn_inputs: dict[str, Any] = field(default_factory=dict)


def leaf(values: list[float], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, requires_grad=True)


def const(value: float) -> Any:
    """A term whose value is ``value`` and whose gradient is zero but defined."""
    return lambda data, lps: value + 0.0 * lps[0].sum()


def spec(name: str, fn: Any, weight: float = 1.0, **kwargs: Any) -> RegularizerSpec:
    return RegularizerSpec(fn, weight, name, **kwargs)


SUM_SQ = spec("l2", lambda data, lps: (lps[0] ** 2).sum(), weight=0.5)


# ------------------------------------------------------------------ parity (Tinkex tests)
def test_base_negative_mean_gives_loss_total_2() -> None:
    total, report = compose(None, [leaf([-1.0, -2.0, -3.0])], lambda d, lps: -lps[0].mean())
    assert total.item() == pytest.approx(2.0)
    assert report.loss_total == pytest.approx(2.0)
    assert report.base_loss.value == pytest.approx(2.0) and report.regularizer_total == 0.0


def test_weighted_regularizers_sum_parity() -> None:
    regs = [spec("a", const(10.0), 0.1), spec("b", const(20.0), 0.5)]
    total, report = compose(None, [leaf([1.0])], const(1.0), regularizers=regs)
    assert report.loss_total == pytest.approx(12.0)
    assert report.regularizer_total == pytest.approx(11.0)
    assert total.item() == pytest.approx(12.0)
    assert report.regularizers["a"].contribution == pytest.approx(1.0)
    assert report.regularizers["b"].contribution == pytest.approx(10.0)
    assert list(report.regularizers) == ["a", "b"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tracking_parity_sum_plus_l2(dtype: torch.dtype) -> None:
    x = leaf([1.0, 2.0, 3.0], dtype)
    total, report = compose(
        None, [x], lambda d, lps: lps[0].sum(), regularizers=[SUM_SQ], track_grad_norms=True
    )
    reg = report.regularizers["l2"]
    assert reg.value == pytest.approx(14.0) and reg.contribution == pytest.approx(7.0)
    assert report.loss_total == pytest.approx(13.0)
    assert report.base_loss.grad_norm == pytest.approx(math.sqrt(3))
    assert reg.grad_norm == pytest.approx(math.sqrt(56))
    assert reg.grad_norm_weighted == pytest.approx(math.sqrt(56) / 2)
    assert report.total_grad_norm == pytest.approx(math.sqrt(29))
    assert total.dtype == dtype
    total.backward()  # the gradient attached by linearity: 1 + x
    assert x.grad is not None
    assert x.grad.tolist() == pytest.approx([2.0, 3.0, 4.0])


def test_tracking_parity_mean_plus_two_sums() -> None:
    regs = [spec("a", lambda d, lps: lps[0].sum()), spec("b", lambda d, lps: lps[0].sum())]
    _, report = compose(
        None,
        [leaf([1.0, 2.0, 3.0])],
        lambda d, lps: lps[0].mean(),
        regularizers=regs,
        track_grad_norms=True,
    )
    assert report.total_grad_norm == pytest.approx(7 / 3 * math.sqrt(3))
    assert total_grad_norm(
        lambda d, lps: lps[0].mean(), regs, None, [torch.tensor([1.0, 2.0, 3.0])]
    ) == pytest.approx(7 / 3 * math.sqrt(3))


def test_duplicate_names_raise_naming_them() -> None:
    regs = [spec("kl", const(1.0)), spec("l1", const(1.0)), spec("kl", const(2.0))]
    with pytest.raises(InvalidValueError, match=r"duplicated: \['kl'\]"):
        compose(None, [leaf([1.0])], None, regularizers=regs)
    with pytest.raises(ValueError, match="kl"):
        as_custom_loss_fn(None, regs)


# ------------------------------------------------------------------ the tracker functions
def test_compute_grad_norm_parity() -> None:
    x = torch.tensor([1.0, 2.0, 3.0])
    assert compute_grad_norm(lambda t: t.abs().sum(), torch.tensor([1.0, -2.0, 3.0])) == (
        pytest.approx(math.sqrt(3))
    )
    assert compute_grad_norm(lambda t: (t**2).sum(), x) == pytest.approx(math.sqrt(56))
    assert compute_grad_norm(torch.mean, x) == pytest.approx(math.sqrt(1 / 3))
    # a list: one norm over every datum
    lists = [torch.tensor([3.0]), torch.tensor([4.0])]
    assert compute_grad_norm(lambda lps: (lps[0] ** 2 + lps[1] ** 2).sum() / 2, lists) == (
        pytest.approx(5.0)
    )
    assert not x.requires_grad  # the caller's tensor is left alone


def test_grad_norm_for_regularizer_is_unweighted() -> None:
    norm = grad_norm_for_regularizer(SUM_SQ, None, [torch.tensor([1.0, 2.0, 3.0])])
    assert norm == pytest.approx(math.sqrt(56))


def test_failed_norm_is_none_with_warning_never_zero() -> None:
    cut = spec("cut", lambda d, lps: torch.tensor(lps[0].sum().item()))  # graph cut
    with pytest.warns(GradientTrackingWarning, match="'cut'"):
        assert grad_norm_for_regularizer(cut, None, [torch.tensor([1.0])]) is None
    with pytest.warns(GradientTrackingWarning):
        assert total_grad_norm(None, [cut, SUM_SQ], None, [torch.tensor([1.0])]) is None
    with pytest.warns(GradientTrackingWarning):
        assert compute_grad_norm(lambda t: torch.argmax(t), torch.tensor([1.0, 2.0])) is None


def test_failed_norm_in_report_and_metrics() -> None:
    cut = spec("cut", lambda d, lps: torch.tensor(lps[0].sum().item()), weight=2.0)
    x = leaf([1.0, 2.0])
    with pytest.warns(GradientTrackingWarning):
        total, report = compose(
            None, [x], lambda d, lps: lps[0].sum(), regularizers=[cut], track_grad_norms=True
        )
    assert report.regularizers["cut"].grad_norm is None
    assert report.regularizers["cut"].grad_norm_weighted is None
    assert report.total_grad_norm is None
    assert report.base_loss.grad_norm == pytest.approx(math.sqrt(2))
    metrics = report.to_metrics()
    assert metrics["reg/cut/grad_norm_error"] == 1.0 and "reg/cut/grad_norm" not in metrics
    assert metrics["total_grad_norm_error"] == 1.0 and "total_grad_norm" not in metrics
    assert report.to_dict()["total_grad_norm"] is None
    total.backward()  # the graph total still gives the real gradient of what is differentiable
    assert x.grad is not None and x.grad.tolist() == [1.0, 1.0]


def test_total_grad_norm_empty_is_zero() -> None:
    assert total_grad_norm(None, [], None, [torch.tensor([1.0])]) == 0.0


# ------------------------------------------------------------------ the total and the graph
def test_total_touches_every_datum_even_when_terms_read_one() -> None:
    first = spec("first", lambda d, lps: lps[0].sum())
    for track in (False, True):
        lps = [leaf([1.0, 2.0]), leaf([3.0]), leaf([[0.1, 0.2]])]
        total, _ = compose(None, lps, None, regularizers=[first], track_grad_norms=track)
        total.backward()
        grads = [lp.grad for lp in lps]
        assert all(g is not None for g in grads), track
        assert grads[0].tolist() == [1.0, 1.0]  # type: ignore[union-attr]
        assert grads[1].tolist() == [0.0] and grads[2].tolist() == [[0.0, 0.0]]  # type: ignore[union-attr]


def test_touch_is_exact_at_minus_inf() -> None:
    # 0 · logprobs would give NaN at -inf; the anchor gives an exact zero gradient
    lps = [leaf([1.0]), leaf([-math.inf, -1.0])]
    total, _ = compose(None, lps, lambda d, lps: lps[0].sum())
    total.backward()
    assert total.item() == 1.0 and lps[1].grad is not None
    assert lps[1].grad.tolist() == [0.0, 0.0]


def test_no_terms_gives_zero_connected_total() -> None:
    lps = [leaf([1.0, 2.0])]
    total, report = compose(None, lps, None)
    assert total.ndim == 0 and total.item() == 0.0
    total.backward()
    assert lps[0].grad is not None and lps[0].grad.tolist() == [0.0, 0.0]
    assert report.to_dict() == {
        "loss_total": 0.0,
        "base_loss": {"value": 0.0, "grad_norm": None, "custom": {}},
        "regularizers": {},
        "regularizer_total": 0.0,
    }


def test_tracking_without_requires_grad_still_tracks() -> None:
    _, report = compose(
        None, [torch.tensor([1.0, 2.0, 3.0])], None, regularizers=[SUM_SQ], track_grad_norms=True
    )
    assert report.regularizers["l2"].grad_norm == pytest.approx(math.sqrt(56))


def test_tracked_gradient_equals_untracked() -> None:
    torch.manual_seed(0)
    base = [torch.randn(5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)]
    regs = [
        spec("sq", lambda d, lps: (lps[0] ** 2).sum() + lps[1].exp().sum(), 0.3),
        spec("cube", lambda d, lps: (lps[1] ** 3).mean(), 2.0),
    ]
    grads = []
    for track in (False, True):
        lps = [b.clone().requires_grad_(True) for b in base]
        total, _ = compose(
            None, lps, lambda d, lps: -lps[0].mean(), regularizers=regs, track_grad_norms=track
        )
        total.backward()
        grads.append([lp.grad for lp in lps])
    for plain, tracked in zip(*grads, strict=True):
        torch.testing.assert_close(tracked, plain)


def test_disabled_specs_are_neither_computed_nor_reported() -> None:
    def boom(data: Any, lps: Any) -> Any:
        raise AssertionError("computed")

    off = spec("off", boom, enabled=False)
    _, report = compose(None, [leaf([1.0])], None, regularizers=[off, SUM_SQ])
    assert list(report.regularizers) == ["l2"]


# ------------------------------------------------------------------ report and metrics
def test_metrics_keys_and_plain_floats() -> None:
    def base(data: Any, lps: Any) -> Any:
        loss = -lps[0].mean()
        return loss, {
            "nll": loss.detach(),
            "ok": True,
            "count": 3,
            "note": "dropped",
            "vector": torch.ones(2),
        }

    def reg(data: Any, lps: Any) -> Any:
        value = (lps[0] ** 2).sum()
        return value, {"peak": lps[0].max()}

    loss_fn = as_custom_loss_fn(
        base, [spec("sq", reg, 0.5)], track_grad_norms=True, metrics_prefix="train/"
    )
    _, metrics = loss_fn([FakeDatum()], [leaf([1.0, 2.0])])
    assert set(metrics) == {
        "train/loss_total",
        "train/base_loss",
        "train/regularizer_total",
        "train/total_grad_norm",
        "train/base/grad_norm",
        "train/base/nll",
        "train/base/ok",
        "train/base/count",
        "train/reg/sq/value",
        "train/reg/sq/weight",
        "train/reg/sq/contribution",
        "train/reg/sq/grad_norm",
        "train/reg/sq/grad_norm_weighted",
        "train/reg/sq/peak",
    }
    assert all(type(v) is float for v in metrics.values())
    assert all(":" not in k for k in metrics)
    assert metrics["train/base/nll"] == pytest.approx(-1.5)
    assert metrics["train/base/ok"] == 1.0 and metrics["train/reg/sq/peak"] == 2.0
    assert metrics["train/loss_total"] == pytest.approx(-1.5 + 0.5 * 5)


def test_untracked_metrics_have_no_grad_keys_and_dict_omits_total_norm() -> None:
    _, report = compose(None, [leaf([1.0])], None, regularizers=[SUM_SQ])
    assert not any("grad_norm" in key for key in report.to_metrics())
    as_dict = report.to_dict()
    assert "total_grad_norm" not in as_dict
    assert as_dict["regularizers"]["l2"]["grad_norm"] is None
    assert json.loads(json.dumps(as_dict)) == as_dict


def test_to_dict_is_the_tinkex_shape_with_tracking() -> None:
    _, report = compose(
        None,
        [leaf([1.0, 2.0, 3.0])],
        lambda d, lps: lps[0].sum(),
        regularizers=[SUM_SQ],
        track_grad_norms=True,
    )
    as_dict = report.to_dict()
    assert set(as_dict) == {
        "loss_total",
        "base_loss",
        "regularizers",
        "regularizer_total",
        "total_grad_norm",
    }
    assert set(as_dict["regularizers"]["l2"]) == {
        "value",
        "weight",
        "contribution",
        "grad_norm",
        "grad_norm_weighted",
        "custom",
    }
    assert as_dict["total_grad_norm"] == pytest.approx(math.sqrt(29))


def test_report_sink_gets_the_report() -> None:
    seen = []
    loss_fn = as_custom_loss_fn(None, [SUM_SQ], report_sink=seen.append)
    loss_fn(None, [leaf([2.0])])
    assert len(seen) == 1 and seen[0].regularizers["l2"].value == 4.0


# ------------------------------------------------------------------ errors
def test_failing_regularizer_raises_regularizer_error_with_cause() -> None:
    def broken(data: Any, lps: Any) -> Any:
        raise KeyError("advantages")

    with pytest.raises(RegularizerError, match="'broken'") as info:
        compose(None, [leaf([1.0])], None, regularizers=[spec("broken", broken)])
    assert isinstance(info.value.__cause__, KeyError)
    assert isinstance(info.value, ArrayPenaltiesError) and isinstance(info.value, RuntimeError)


@pytest.mark.parametrize(
    "result",
    [lambda x: x[0], lambda x: 3.0, lambda x: (x[0].sum(), {}, 1), lambda x: (x[0].sum(), 5)],
    ids=["vector", "float", "3-tuple", "bad-metrics"],
)
def test_non_scalar_term_is_a_failure(result: Any) -> None:
    bad = spec("bad", lambda data, lps: result(lps))
    with pytest.raises(RegularizerError, match="'bad'"):
        compose(None, [leaf([1.0, 2.0])], None, regularizers=[bad])


def test_metric_names_with_colon_are_refused() -> None:
    bad = spec("bad", lambda data, lps: (lps[0].sum(), {"loss:sum": 1.0}))
    with pytest.raises(RegularizerError, match="':'"):
        compose(None, [leaf([1.0])], None, regularizers=[bad])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fn": 3, "weight": 1.0, "name": "a"}, InvalidTypeError, "`fn`"),
        ({"fn": print, "weight": math.inf, "name": "a"}, InvalidValueError, "`weight`"),
        ({"fn": print, "weight": -0.1, "name": "a"}, InvalidValueError, "`weight`"),
        ({"fn": print, "weight": True, "name": "a"}, InvalidTypeError, "`weight`"),
        ({"fn": print, "weight": "1", "name": "a"}, InvalidTypeError, "`weight`"),
        ({"fn": print, "weight": 1.0, "name": ""}, InvalidValueError, "`name`"),
        ({"fn": print, "weight": 1.0, "name": "a:b"}, InvalidValueError, "`name`"),
        ({"fn": print, "weight": 1.0, "name": 3}, InvalidTypeError, "`name`"),
        ({"fn": print, "weight": 1.0, "name": "a", "enabled": 1}, InvalidTypeError, "`enabled`"),
    ],
)
def test_spec_validation(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        RegularizerSpec(**kwargs)


def test_spec_is_frozen() -> None:
    with pytest.raises(AttributeError):
        SUM_SQ.weight = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: compose(None, [leaf([1.0])], None, on_nonfinite="ignore"),
            InvalidValueError,
            "`on_nonfinite`",
        ),
        (
            lambda: compose(None, [leaf([1.0])], None, track_grad_norms=1),
            InvalidTypeError,
            "`track_grad_norms`",
        ),
        (
            lambda: compose(None, [leaf([1.0])], None, regularizers=[print]),
            InvalidTypeError,
            "RegularizerSpec",
        ),
        (
            lambda: compose([FakeDatum()], [leaf([1.0]), leaf([2.0])], None),
            InvalidValueError,
            "1 datums and 2",
        ),
        (lambda: compose(None, leaf([1.0]), None), InvalidTypeError, "`logprobs_list`"),
        (lambda: compose(None, [torch.tensor([1, 2])], None), InvalidTypeError, "floating"),
        (lambda: compose(None, [torch.zeros(1, 1, 1)], None), InvalidValueError, r"\[T\]"),
        (lambda: compose(None, [], None), InvalidValueError, "empty"),
        (lambda: compose(None, [leaf([1.0])], 3), InvalidTypeError, "`base_loss_fn`"),
        (lambda: as_custom_loss_fn(None, metrics_prefix="a:"), InvalidValueError, "`prefix`"),
        (lambda: as_custom_loss_fn(None, report_sink=3), InvalidTypeError, "`report_sink`"),
        (lambda: as_custom_loss_fn(None, on_nonfinite="x"), InvalidValueError, "`on_nonfinite`"),
    ],
)
def test_bad_options(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ non-finite values
NAN_TERM = spec("nan", lambda data, lps: lps[0].sum() * math.nan, 0.5)


def test_nonfinite_raise_names_the_term() -> None:
    with pytest.raises(NonFiniteError, match="'nan'") as info:
        compose(None, [leaf([1.0])], None, regularizers=[NAN_TERM])
    assert info.value.kind == "nan"
    with pytest.raises(NonFiniteError, match="base loss") as info:
        compose(None, [leaf([1.0])], lambda d, lps: lps[0].sum() + math.inf)
    assert info.value.kind == "inf"


def test_nonfinite_warn_keeps_the_value() -> None:
    with pytest.warns(RuntimeWarning, match="'nan'"):
        total, report = compose(
            None, [leaf([1.0])], None, regularizers=[NAN_TERM], on_nonfinite="warn"
        )
    assert math.isnan(total.item()) and math.isnan(report.regularizers["nan"].value)


@pytest.mark.parametrize("track", [False, True])
def test_nonfinite_zero_drops_value_and_gradient(track: bool) -> None:
    x = leaf([1.0, 2.0])
    total, report = compose(
        None,
        [x],
        lambda d, lps: lps[0].sum(),
        regularizers=[NAN_TERM, SUM_SQ],
        on_nonfinite="zero",
        track_grad_norms=track,
    )
    assert report.regularizers["nan"].value == 0.0
    assert report.regularizers["nan"].contribution == 0.0
    assert total.item() == pytest.approx(3.0 + 2.5) and report.loss_total == pytest.approx(5.5)
    total.backward()
    assert x.grad is not None and x.grad.tolist() == pytest.approx([2.0, 3.0])
    if track:
        assert report.regularizers["nan"].grad_norm == 0.0
        assert report.total_grad_norm == pytest.approx(math.sqrt(13))


# ------------------------------------------------------------------ telemetry
@pytest.fixture
def events() -> Iterator[list[tuple[Any, ...]]]:
    seen: list[tuple[Any, ...]] = []
    telemetry.attach("tinker-test", list(EVENTS), lambda *args: seen.append(args))
    yield seen
    telemetry.detach("tinker-test")


def test_telemetry_events(events: list[tuple[Any, ...]]) -> None:
    compose(
        None,
        [leaf([1.0, 2.0, 3.0])],
        lambda d, lps: lps[0].sum(),
        regularizers=[SUM_SQ],
        track_grad_norms=True,
    )
    names = [event[-1] for event, _, _ in events]
    assert names == ["start", "start", "stop", "stop"]
    (start, _, meta), (rstart, _, rmeta), (_, rmeas, _), (stop, meas, _) = events
    assert start == ("arraypenalties", "custom_loss", "start")
    assert meta == {"regularizer_count": 1, "track_grad_norms": True}
    assert rstart == ("arraypenalties", "regularizer", "compute", "start")
    assert rmeta == {"regularizer_name": "l2", "weight": 0.5}
    assert rmeas["value"] == 14.0 and rmeas["contribution"] == 7.0
    assert rmeas["grad_norm"] == pytest.approx(math.sqrt(56)) and rmeas["duration"] >= 0
    assert stop == ("arraypenalties", "custom_loss", "stop")
    assert meas["loss_total"] == pytest.approx(13.0) and meas["regularizer_total"] == 7.0
    assert meas["duration"] > 0


def test_telemetry_exception_events(events: list[tuple[Any, ...]]) -> None:
    def broken(data: Any, lps: Any) -> Any:
        raise RuntimeError("boom")

    with pytest.raises(RegularizerError):
        compose(None, [leaf([1.0])], None, regularizers=[spec("broken", broken)])
    names = [event for event, _, _ in events]
    assert names[-2:] == [
        ("arraypenalties", "regularizer", "compute", "exception"),
        ("arraypenalties", "custom_loss", "exception"),
    ]
    _, _, metadata = events[-2]
    assert metadata["regularizer_name"] == "broken" and metadata["kind"] is RuntimeError


# ------------------------------------------------------------------ the public surface
def test_all_matches_the_public_names_and_each_has_a_docstring() -> None:
    import types

    from arraypenalties import tinker as apt

    public = {
        name
        for name, value in vars(apt).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(apt.__all__) == public
    for name in apt.__all__:
        value = getattr(apt, name)
        if callable(value):
            assert value.__doc__, name


def test_non_leaf_log_probs_get_their_gradient_through() -> None:
    # log-probs computed from a parameter (not leaves): the anchor/graph logic still holds
    param = torch.tensor([0.5, -0.5], requires_grad=True)
    lps = [param * 2.0, param * 3.0]
    first = spec("first", lambda d, lps: (lps[0] ** 2).sum())
    total, _ = compose(None, lps, None, regularizers=[first])
    total.backward()
    assert param.grad is not None
    assert param.grad.tolist() == pytest.approx([4.0, -4.0])  # d/dp (2p)² = 8p
