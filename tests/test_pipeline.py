"""Pipeline and MultiPipeline: SPEC §5 numbers on every backend, immutability, config, errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

import arraypenalties
from arraypenalties import (
    ArrayPenaltiesError,
    InvalidTypeError,
    InvalidValueError,
    MultiPipeline,
    NonFiniteError,
    Pipeline,
    UnknownNameError,
    l1,
    l2,
    pipeline,
    register_penalty,
)
from arraypenalties.testing import as_array, assert_close


def _rel(dtype_name: str) -> float:
    return 1e-6 if dtype_name == "float32" else 1e-12


def sum_of_x(x: Any) -> Any:  # registered below, so it can go into a config
    return x.__array_namespace__().sum(x) if hasattr(x, "__array_namespace__") else x.sum()


# ----------------------------------------------------------------------------- SPEC §5 parity
def test_single_l1_parity(xp: Any, dtype_name: str) -> None:
    total, metrics = (
        Pipeline().add("l1", "l1", weight=0.1).compute(as_array(xp, [1, -2, 3], dtype_name))
    )
    assert_close(total, as_array(xp, 0.6, dtype_name))
    assert list(metrics) == ["l1", "l1_weighted", "total"]
    assert metrics == pytest.approx({"l1": 6.0, "l1_weighted": 0.6, "total": 0.6}, rel=1e-6)
    assert all(type(value) is float for value in metrics.values())


def test_two_entries_and_disable(xp: Any, dtype_name: str) -> None:
    p = Pipeline().add("l1", l1, weight=0.1).add("l2", l2, weight=0.01)
    x = as_array(xp, [1, 2], dtype_name)
    total, metrics = p.compute(x)
    assert_close(total, as_array(xp, 0.35, dtype_name))
    assert metrics == pytest.approx(
        {"l1": 3.0, "l1_weighted": 0.3, "l2": 5.0, "l2_weighted": 0.05, "total": 0.35}, rel=1e-6
    )
    disabled = p.set_enabled("l2", False)
    total, metrics = disabled.compute(x)
    assert_close(total, as_array(xp, 0.3, dtype_name))
    assert set(metrics) == {"l1", "l1_weighted", "total"}
    assert_close(disabled.compute_total(x), as_array(xp, 0.3, dtype_name))
    assert_close(disabled.set_enabled("l2", True).compute_total(x), as_array(xp, 0.35, dtype_name))


def test_extra_args_override_opts(xp: Any, dtype_name: str) -> None:
    p = Pipeline().add("l1", "l1", opts={"lam": 0.5})
    x = as_array(xp, [1, -2, 3], dtype_name)
    total, metrics = p.compute(x, extra_args={"lam": 2.0})
    assert_close(total, as_array(xp, 12.0, dtype_name))
    assert metrics["l1"] == pytest.approx(12.0)
    assert_close(p.compute_total(x, extra_args={"lam": 2.0}), as_array(xp, 12.0, dtype_name))
    assert_close(p.compute_total(x), as_array(xp, 3.0, dtype_name))  # opts themselves unchanged


def test_empty_pipeline(xp: Any, dtype_name: str) -> None:
    x = as_array(xp, [1, 2], dtype_name)
    total, metrics = Pipeline().compute(x)
    assert_close(total, as_array(xp, 0.0, dtype_name))
    assert metrics == {"total": 0.0}
    assert_close(Pipeline().compute_total(x), as_array(xp, 0.0, dtype_name))


def test_weighted_sum_of_many_entries_matches_independent_sum(xp: Any, dtype_name: str) -> None:
    values = [[0.5, -1.0, 2.0], [-0.25, 0.0, 1.5]]
    p = (
        Pipeline()
        .add("l1", "l1", weight=0.3)
        .add("l2", "l2", weight=0.2, opts={"reduction": "mean"})
        .add("enet", "elastic_net", weight=-0.5, opts={"l1_ratio": 0.25})
    )
    flat = [v for row in values for v in row]
    l1_value = sum(abs(v) for v in flat)
    l2_mean = sum(v * v for v in flat) / len(flat)
    enet = 0.25 * l1_value + 0.75 * sum(v * v for v in flat)
    expected = 0.3 * l1_value + 0.2 * l2_mean - 0.5 * enet
    total, metrics = p.compute(as_array(xp, values, dtype_name))
    assert_close(total, as_array(xp, expected, dtype_name), rtol=10 * _rel(dtype_name))
    assert metrics["enet"] == pytest.approx(enet, rel=1e-6)
    assert metrics["enet_weighted"] == pytest.approx(-0.5 * enet, rel=1e-6)
    assert metrics["total"] == pytest.approx(expected, rel=1e-6)


def test_module_level_functions(xp: Any) -> None:
    p = Pipeline().add("l1", "l1", weight=0.1)
    x = as_array(xp, [1, -2, 3], "float64")
    total, metrics = arraypenalties.compute(p, x)
    assert metrics["total"] == pytest.approx(0.6)
    assert_close(arraypenalties.compute_total(p, x), total)


def test_gradient_of_total_torch_and_jax(ad_case: Any, dtype_name: str) -> None:
    xp = ad_case.xp
    p = Pipeline().add("l2", "l2", weight=0.01)
    x = as_array(xp, [1, 2, 3], dtype_name)
    if ad_case.name == "torch":
        leaf = x.detach().requires_grad_(True)
        p.compute_total(leaf).backward()
        grad = leaf.grad
    else:
        import jax

        grad = jax.grad(p.compute_total)(x)
    assert_close(grad, as_array(xp, [0.02, 0.04, 0.06], dtype_name))


def test_compute_total_is_differentiable_through_compute_torch() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    total, _ = Pipeline().add("l2", "l2", weight=0.01).compute(x, track_grad_norms=True)
    total.backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.02, 0.04, 0.06], dtype=torch.float64))


# ----------------------------------------------------------------------------- immutability
def test_methods_return_new_pipelines() -> None:
    base = Pipeline().add("l1", "l1")
    grown = base.add("l2", "l2", weight=0.5)
    assert base.names == ("l1",) and grown.names == ("l1", "l2")
    reweighted = grown.update_weight("l2", 2.0)
    assert grown.get("l2").weight == 0.5 and reweighted.get("l2").weight == 2.0
    assert reweighted.remove("l1").names == ("l2",) and reweighted.names == ("l1", "l2")
    off = grown.set_enabled("l1", False)
    assert grown.get("l1").enabled and not off.get("l1").enabled
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
        off.get("l1").weight = 3.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        off.get("l1").opts["lam"] = 3.0  # type: ignore[index]
    assert len(grown) == 2 and "l2" in grown and "l3" not in grown
    assert [entry.name for entry in grown] == ["l1", "l2"]


def test_opts_are_copied() -> None:
    opts = {"lam": 1.0}
    p = Pipeline().add("l1", "l1", opts=opts)
    opts["lam"] = 5.0
    assert p.get("l1").opts["lam"] == 1.0


# ----------------------------------------------------------------------------- errors
def test_duplicate_name_raises() -> None:
    p = Pipeline().add("l1", "l1")
    with pytest.raises(InvalidValueError, match=r"'l1' already exists"):
        p.add("l1", "l2")


@pytest.mark.parametrize("method", ["remove", "update_weight", "set_enabled", "get"])
def test_unknown_entry_name_lists_known_names(method: str) -> None:
    p = Pipeline().add("l1", "l1").add("l2", "l2")
    args = {"remove": (), "get": (), "update_weight": (2.0,), "set_enabled": (False,)}[method]
    with pytest.raises(KeyError) as info:
        getattr(p, method)("l3", *args)
    assert isinstance(info.value, ArrayPenaltiesError) and isinstance(info.value, ValueError)
    assert "'l3'" in str(info.value) and "['l1', 'l2']" in str(info.value)


def test_unknown_builtin_name() -> None:
    with pytest.raises(KeyError, match=r"'l3' is not a built-in penalty.*'l1'"):
        Pipeline().add("x", "l3")
    with pytest.raises(UnknownNameError, match="'nope' is not a built-in"):
        pipeline(["nope"])


@pytest.mark.parametrize("builtin", ["kl", "js", "consistency", "kl_estimate"])
def test_two_input_builtins_rejected_in_single_input_pipeline(builtin: str) -> None:
    with pytest.raises(InvalidValueError, match="use MultiPipeline"):
        pipeline([builtin])
    with pytest.raises(InvalidValueError, match="use MultiPipeline"):
        Pipeline().add("d", builtin)


def test_unknown_spec_keys_raise() -> None:
    with pytest.raises(InvalidValueError, match=r"unknown keys \['wieght'\]"):
        pipeline([("l1", {"wieght": 0.1})])
    with pytest.raises(InvalidTypeError, match="built-in name or"):
        pipeline([("l1", 0.1)])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"weight": "1"}, InvalidTypeError, "`weight` must be a real number"),
        ({"weight": math.nan}, InvalidValueError, "`weight` must be finite"),
        ({"enabled": 1}, InvalidTypeError, "`enabled` must be True or False; got 1 of type int"),
        (
            {"differentiable": "yes"},
            InvalidTypeError,
            "`differentiable` must be True or False; got 'yes' of type str",
        ),
        ({"opts": [("lam", 1)]}, InvalidTypeError, "`opts` of entry 'a' must be a mapping"),
    ],
)
def test_bad_entry_options(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Pipeline().add("a", "l1", **kwargs)


def test_bad_fn_and_name() -> None:
    with pytest.raises(InvalidTypeError, match="`fn` of entry 'a' must be callable"):
        Pipeline().add("a", 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`name` must be a non-empty str"):
        Pipeline().add("", "l1")
    with pytest.raises(UnknownNameError, match="nothing named in a config is imported"):
        Pipeline().add("a", "arraypenalties.penalties:l1")  # import paths are not names


def test_non_scalar_output_names_the_entry(xp: Any) -> None:
    p = Pipeline().add("l1", "l1").add("rows", "l1", opts={"reduction": "none"})
    x = as_array(xp, [1, 2], "float64")
    with pytest.raises(ValueError, match=r"entry 'rows' must return a 0-d array; got shape \(2,\)"):
        p.compute(x)
    with pytest.raises(ValueError, match="entry 'rows' must return a 0-d array"):
        p.compute_total(x)


def test_integer_input_raises(xp: Any) -> None:
    with pytest.raises(TypeError, match="`x` must have a real floating dtype"):
        Pipeline().add("l1", "l1").compute(xp.asarray([1, 2]))


def test_bad_flags() -> None:
    import numpy as np

    with pytest.raises(
        TypeError, match="`track_grad_norms` must be True or False; got 1 of type int"
    ):
        Pipeline().compute(np.ones(2), track_grad_norms=1)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match="`check_finite` must be True or False; got 'yes' of type str"
    ):
        Pipeline().compute(np.ones(2), check_finite="yes")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- check_finite
@pytest.mark.parametrize(("bad", "kind"), [(math.nan, "nan"), (math.inf, "inf")])
def test_check_finite_names_the_entry(xp: Any, bad: float, kind: str) -> None:
    p = Pipeline().add("ok", "l1").add("bad", "l2")
    x = as_array(xp, [1.0, bad], "float64")
    _, metrics = p.compute(x)  # no check: the non-finite metrics are reported as they are
    assert not math.isfinite(metrics["bad"])
    with pytest.raises(NonFiniteError, match="entry 'ok'") as info:
        p.compute(x, check_finite=True)
    assert info.value.kind == kind
    finite_first = Pipeline().add("fine", lambda x: xp.sum(x[:1])).add("bad", "l2")
    with pytest.raises(NonFiniteError, match="entry 'bad'") as info:
        finite_first.compute(x, check_finite=True)
    assert info.value.kind == kind


# ----------------------------------------------------------------------------- config
def test_config_round_trip_through_json() -> None:
    p = (
        Pipeline(name="reg")
        .add("l1", "l1", weight=1e-3)
        .add("sq", l2, weight=0.5, opts={"reduction": "mean"}, enabled=False)
        .add("custom", sum_of_x, differentiable=False)
    )
    with pytest.raises(InvalidValueError, match="entry 'custom' cannot be written"):
        p.to_config()  # an unregistered function has no name a config could hold
    register_penalty("test_pipeline.sum_of_x", sum_of_x)
    config = json.loads(json.dumps(p.to_config()))
    assert config["entries"][0] == {
        "name": "l1",
        "fn": "l1",
        "weight": 1e-3,
        "opts": {},
        "enabled": True,
        "differentiable": True,
    }
    assert config["entries"][1]["fn"] == "l2"  # the function object maps back to its built-in
    assert config["entries"][2]["fn"] == "test_pipeline.sum_of_x"
    rebuilt = Pipeline.from_config(config)
    assert rebuilt.name == "reg" and rebuilt.names == p.names
    for old, new in zip(p, rebuilt, strict=True):
        assert (old.fn, old.weight, dict(old.opts), old.enabled, old.differentiable) == (
            new.fn,
            new.weight,
            dict(new.opts),
            new.enabled,
            new.differentiable,
        )


def test_builder_matches_add_chain() -> None:
    built = pipeline(
        [("l1", {"weight": 1e-3}), ("elastic_net", {"opts": {"l1_ratio": 0.2}, "name": "en"}), "l2"]
    )
    by_hand = (
        Pipeline()
        .add("l1", "l1", weight=1e-3)
        .add("en", "elastic_net", opts={"l1_ratio": 0.2})
        .add("l2", "l2")
    )
    assert built == by_hand


def test_config_errors() -> None:
    with pytest.raises(InvalidValueError, match=r"unknown keys \['extra'\]"):
        Pipeline.from_config({"entries": [], "extra": 1})
    with pytest.raises(InvalidValueError, match=r"unknown keys \['inputs'\]"):
        Pipeline.from_config({"entries": [{"name": "a", "fn": "l1", "inputs": ["x"]}]})
    with pytest.raises(InvalidValueError, match="needs 'name' and 'fn'"):
        Pipeline.from_config({"entries": [{"name": "a"}]})
    with pytest.raises(InvalidValueError, match="cannot be written to a config"):
        Pipeline().add("lam", lambda x: x.sum()).to_config()


# ----------------------------------------------------------------------------- MultiPipeline
def test_multipipeline_values(xp: Any, dtype_name: str) -> None:
    p = (
        MultiPipeline()
        .add("mse", "consistency", inputs=("a", "b"), weight=2.0)
        .add("reg", "l2", inputs=("a",), weight=0.5)
    )
    a, b = as_array(xp, [1, 2, 3], dtype_name), as_array(xp, [1.5, 2.5, 3.5], dtype_name)
    total, metrics = p.compute({"a": a, "b": b})
    assert metrics == pytest.approx(
        {"mse": 0.25, "mse_weighted": 0.5, "reg": 14.0, "reg_weighted": 7.0, "total": 7.5},
        rel=1e-6,
    )
    assert_close(total, as_array(xp, 7.5, dtype_name))
    assert_close(p.compute_total({"a": a, "b": b}), as_array(xp, 7.5, dtype_name))


def test_multipipeline_missing_input_names_entry_and_input(xp: Any) -> None:
    p = MultiPipeline().add("mse", "consistency", inputs=("student", "teacher"))
    with pytest.raises(KeyError, match=r"entry 'mse' needs input 'teacher'.*\['student'\]"):
        p.compute({"student": as_array(xp, [1.0], "float64")})


def test_multipipeline_config_round_trip() -> None:
    p = MultiPipeline(name="distill").add("kl", "kl", inputs=["s", "t"], opts={"axis": -1})
    config = json.loads(json.dumps(p.to_config()))
    assert config["entries"][0]["inputs"] == ["s", "t"]
    assert MultiPipeline.from_config(config) == p


def test_multipipeline_bad_inputs() -> None:
    import numpy as np

    p = MultiPipeline().add("mse", "consistency", inputs=("a", "b"))
    with pytest.raises(InvalidTypeError, match="`inputs` must be a mapping"):
        p.compute(np.ones(2))
    with pytest.raises(InvalidTypeError, match="`inputs` of entry 'x' must be a non-empty tuple"):
        MultiPipeline().add("x", "l1", inputs="a")
    with pytest.raises(TypeError, match=r"keyword-only|missing"):
        MultiPipeline().add("x", "l1")  # type: ignore[call-arg]


def test_multipipeline_mixed_namespaces_raise() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    import numpy as np

    p = MultiPipeline().add("mse", "consistency", inputs=("a", "b"))
    with pytest.raises(TypeError, match=r"inputs\['a'\].*inputs\['b'\]"):
        p.compute({"a": np.ones(2), "b": torch.ones(2, dtype=torch.float64)})
