"""Trust (SPEC §10) for pipelines: sharing between threads, names, options, loading,
complex values, telemetry copies, pickle and deepcopy, gradient requests that cannot work."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle
import sys
import threading
import warnings
from collections.abc import MutableMapping
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

from arraypenalties import (
    ArrayPenaltiesError,
    BackendError,
    GradientTrackingWarning,
    InvalidTypeError,
    InvalidValueError,
    MultiPipeline,
    Pipeline,
    get_backend,
    grad_norm,
    pipeline,
    pipeline_grad_norms,
    register_penalty,
    telemetry,
    total_grad_norm,
)
from arraypenalties.testing import BackendCase, as_array, assert_close


def squares(x: Any) -> Any:  # module level: pickled by reference
    return array_namespace(x).sum(x * x)


def scaled_squares(x: Any, *, scale: float = 1.0) -> Any:
    return scale * array_namespace(x).sum(x * x)


def diff_squares(a: Any, b: Any) -> Any:
    return array_namespace(a).sum((a - b) * (a - b))


# ----------------------------------------------------------------------------- sharing
@pytest.mark.backend("torch")
def test_one_pipeline_from_eight_threads_keeps_each_calls_layout() -> None:
    """An entry differentiable for some inputs only: each call's norms are its own."""
    import torch

    def b(x: Any) -> Any:  # ∇Σx² = 2x for 2 elements; an integer (argmax) otherwise
        return torch.sum(x * x) if x.shape[0] == 2 else torch.argmax(x)

    p = Pipeline().add("a", "l1").add("b", b)
    inputs = {2: torch.tensor([1.0, 1.0]), 3: torch.tensor([1.0, 3.0, 2.0])}
    wrong: list[Any] = []
    barrier = threading.Barrier(8)

    def work(index: int) -> None:
        barrier.wait()
        for step in range(60):
            n = 2 if (index + step) % 2 else 3
            try:
                _, metrics = p.compute(inputs[n], track_grad_norms=True)
            except Exception as exc:
                wrong.append((n, repr(exc)))
                continue
            norm = metrics["b_grad_norm"]
            if n == 2 and (norm is None or abs(norm - 2 * math.sqrt(2)) > 1e-6):
                wrong.append((n, norm))
            if n == 3 and (norm is not None or metrics.get("b_grad_norm_error") is not True):
                wrong.append((n, norm))
            if metrics["a_grad_norm"] is None or abs(metrics["a_grad_norm"] - math.sqrt(n)) > 1e-6:
                wrong.append((n, metrics["a_grad_norm"]))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: races show up in every run
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GradientTrackingWarning)
            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []


@pytest.mark.backend("jax")
def test_jax_layout_belongs_to_each_trace() -> None:
    """Differentiability that depends on the shape: calls A, B, A each report their own."""
    import jax.numpy as jnp

    def b(x: Any) -> Any:
        return jnp.sum(x * x) if x.shape[0] == 2 else jnp.argmax(x)

    p = Pipeline().add("a", "l1").add("b", b)
    a_input, b_input = jnp.asarray([1.0, 1.0]), jnp.asarray([1.0, 3.0, 2.0])
    _, first = p.compute(a_input, track_grad_norms=True)
    with pytest.warns(GradientTrackingWarning, match="'b'"):
        _, second = p.compute(b_input, track_grad_norms=True)
    _, third = p.compute(a_input, track_grad_norms=True)
    for metrics in (first, third):
        assert metrics["b_grad_norm"] == pytest.approx(2 * math.sqrt(2))
        assert metrics["a_grad_norm"] == pytest.approx(math.sqrt(2))
        assert metrics["total_grad_norm"] == pytest.approx(math.sqrt(2 * 9))  # 1 + 2x = 3
        assert "b_grad_norm_error" not in metrics
    assert second["b_grad_norm"] is None and second["b_grad_norm_error"] is True
    assert second["a_grad_norm"] == pytest.approx(math.sqrt(3))
    with pytest.warns(GradientTrackingWarning, match="'b'"):  # a cached trace warns again
        _, again = p.compute(b_input, track_grad_norms=True)
    assert again == second


# ----------------------------------------------------------------------------- gradients
@pytest.mark.backend("torch")
def test_tracking_inside_torch_inference_mode_raises_backend_error() -> None:
    import torch

    p = Pipeline().add("l1", "l1").add("l2", "l2")
    with torch.inference_mode():
        x = torch.tensor([1.0, 2.0, 3.0])
        with pytest.raises(BackendError):
            p.compute(x, track_grad_norms=True)
        with pytest.raises(BackendError):
            pipeline_grad_norms(p, x)


def test_backend_error_propagates_from_every_tracking_path(
    ad_case: BackendCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gradient the backend refuses raises; it never becomes a `_grad_norm_error` flag."""
    xp = ad_case.xp
    x = as_array(xp, [1.0, 2.0])
    backend = get_backend(x)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise BackendError("gradients cannot be computed here")

    monkeypatch.setattr(backend, "per_term_grads", refuse)
    p = Pipeline().add("l1", "l1").add("sq", squares)
    multi = MultiPipeline().add("d", diff_squares, inputs=("a", "b"))
    calls = [
        lambda: p.compute(x, track_grad_norms=True),
        lambda: pipeline_grad_norms(p, x),
        lambda: total_grad_norm(p, x),
        lambda: grad_norm(squares, x),
        lambda: multi.compute({"a": x, "b": x}, track_grad_norms=True),
    ]
    for call in calls:
        with pytest.raises(BackendError, match="cannot be computed here"):
            call()


# ----------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("first", "second", "match"),
    [
        (None, "total", "pipeline's own metric key 'total'"),
        (None, "total_grad_norm", "pipeline's own metric key 'total_grad_norm'"),
        ("a", "a_weighted", "share the metric key 'a_weighted' with entry 'a'"),
        ("a_weighted", "a", "share the metric key 'a_weighted' with entry 'a_weighted'"),
        ("a", "a_grad_norm", "share the metric key 'a_grad_norm'"),
        ("a", "a_grad_norm_error", "share the metric key 'a_grad_norm_error'"),
        (None, "mod:fn", "must not contain ':'"),
    ],
)
def test_names_whose_metric_keys_collide_raise_at_add(
    first: str | None, second: str, match: str
) -> None:
    base = Pipeline() if first is None else Pipeline().add(first, "l1")
    with pytest.raises(InvalidValueError, match=match):
        base.add(second, "l2")
    multi = MultiPipeline() if first is None else MultiPipeline().add(first, "l1", inputs=("x",))
    with pytest.raises(InvalidValueError, match=match):
        multi.add(second, "l2", inputs=("x",))


def test_names_that_only_look_alike_are_fine() -> None:
    p = Pipeline().add("a", "l1").add("ab", "l2").add("total2", "l1").add("weighted", "l2")
    _, metrics = p.compute(np.array([1.0, -2.0]))
    assert metrics["total"] == pytest.approx(3 + 5 + 3 + 5)


# ----------------------------------------------------------------------------- options
def test_unknown_option_raises_at_add_naming_entry_and_option() -> None:
    with pytest.raises(InvalidValueError, match=r"entry 'reg': option 'lamda' .*'lam'"):
        Pipeline().add("reg", "l1", opts={"lamda": 0.1})
    with pytest.raises(InvalidValueError, match=r"entry 'mine': option 'scal' .*\['scale'\]"):
        Pipeline().add("mine", scaled_squares, opts={"scal": 2.0})
    with pytest.raises(InvalidValueError, match=r"entry 'kl': option 'directon' .*'direction'"):
        MultiPipeline().add("kl", "kl", inputs=("p", "q"), opts={"directon": "forward"})

    def anything(x: Any, **kwargs: Any) -> Any:  # **kwargs: every option is accepted
        return (x * kwargs.get("scale", 1.0)).sum()

    assert Pipeline().add("any", anything, opts={"scale": 2.0}).get("any").opts["scale"] == 2.0


def test_extra_args_reach_only_the_entries_that_accept_them(xp: Any) -> None:
    x = as_array(xp, [[0.0, math.log(0.5), math.log(0.5)]])  # log-probs: entropy ln 2
    p = Pipeline().add("l1", "l1").add("ent", "entropy", opts={"mode": "value"})
    base = math.log(0.5) * -2
    _, metrics = p.compute(x, extra_args={"lam": 2.0})
    assert metrics["l1"] == pytest.approx(2 * base, rel=1e-12)
    assert metrics["ent"] == pytest.approx(math.log(2), rel=1e-12)  # unchanged, no TypeError
    assert_close(p.compute_total(x, extra_args={"lam": 2.0}), as_array(xp, 2 * base + math.log(2)))
    with pytest.raises(InvalidValueError, match=r"`extra_args` option 'lamda' is accepted by no"):
        p.compute(x, extra_args={"lamda": 2.0})
    with pytest.raises(InvalidValueError, match="`extra_args` option 'lamda'"):
        p.compute_total(x, extra_args={"lamda": 2.0})
    with pytest.raises(InvalidTypeError, match="`extra_args` must be a mapping"):
        p.compute(x, extra_args=[("lam", 2.0)])  # type: ignore[arg-type]


def test_entry_options_are_read_only_and_not_shared() -> None:
    base = Pipeline().add("l1", "l1", opts={"lam": 0.5})
    derived = base.add("l2", "l2")
    entry = base.get("l1")
    with pytest.raises(TypeError):
        entry.opts["lam"] = 5.0  # type: ignore[index]
    # no public attribute of an entry is a mutable mapping another pipeline could share
    public = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry)}
    public.update({k: v for k, v in vars(entry).items() if not k.startswith("_")})
    assert not [k for k, v in public.items() if isinstance(v, MutableMapping)]
    assert float(derived.compute_total(np.array([1.0, -2.0]))) == pytest.approx(1.5 + 5.0)


# ----------------------------------------------------------------------------- loading
def test_from_config_checks_everything_at_load() -> None:
    def load_multi(entry: dict[str, Any]) -> Any:
        return MultiPipeline.from_config({"entries": [entry]})

    with pytest.raises(InvalidValueError, match="entry 'kl' of a MultiPipeline needs `inputs`"):
        load_multi({"name": "kl", "fn": "kl"})
    with pytest.raises(InvalidValueError, match="use MultiPipeline"):
        Pipeline.from_config({"entries": [{"name": "kl", "fn": "kl"}]})
    with pytest.raises(InvalidValueError, match=r"entry 'r': option 'lamda'"):
        Pipeline.from_config({"entries": [{"name": "r", "fn": "l1", "opts": {"lamda": 1.0}}]})
    with pytest.raises(InvalidValueError, match=r"entry 'kl': 'kl' takes 2 array\(s\)"):
        load_multi({"name": "kl", "fn": "kl", "inputs": ["p"]})
    with pytest.raises(InvalidValueError, match=r"entry 'l1': 'l1' takes 1 array\(s\)"):
        load_multi({"name": "l1", "fn": "l1", "inputs": ["p", "q"]})
    register_penalty("trust.diff_squares", diff_squares, inputs=2)
    with pytest.raises(InvalidValueError, match=r"'trust\.diff_squares' takes 2"):
        load_multi({"name": "d", "fn": "trust.diff_squares", "inputs": ["a"]})
    with pytest.raises(InvalidValueError, match=r"'trust\.diff_squares' compares two arrays"):
        Pipeline.from_config({"entries": [{"name": "d", "fn": "trust.diff_squares"}]})
    with pytest.raises(InvalidValueError, match=r"entry 'd': its `fn` 'diff_squares' takes 2"):
        Pipeline.from_config(
            {"entries": [{"name": "d", "fn": "mine"}]}, registry={"mine": diff_squares}
        )
    with pytest.raises(InvalidValueError, match="pipeline's own metric key 'total'"):
        Pipeline.from_config({"entries": [{"name": "total", "fn": "l1"}]})
    loaded = load_multi({"name": "d", "fn": "trust.diff_squares", "inputs": ["a", "b"]})
    total = loaded.compute_total({"a": np.array([1.0, 2.0]), "b": np.array([0.0, 0.0])})
    assert float(total) == 5.0


def test_builder_reads_a_mapping_of_names_to_options_faithfully() -> None:
    built = pipeline({"l1": {"weight": 0.1}, "l2": {"weight": 0.01, "name": "sq"}})
    assert built == Pipeline().add("l1", "l1", weight=0.1).add("sq", "l2", weight=0.01)
    assert float(built.compute_total(np.array([1.0, 2.0]))) == pytest.approx(0.35)
    with pytest.raises(InvalidTypeError, match="`specs` must be a list"):
        pipeline("l1")  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="each spec must be"):
        pipeline({"l1": 0.1})  # type: ignore[dict-item]


# ----------------------------------------------------------------------------- values
def test_complex_entry_raises_naming_the_entry(xp: Any) -> None:
    def rotated(x: Any) -> Any:
        return xp.astype(xp.sum(x), xp.complex64) * (1 + 1j)

    p = Pipeline().add("ok", "l1").add("rot", rotated)
    x = as_array(xp, [1.0, 2.0])
    with pytest.raises(InvalidTypeError, match=r"entry 'rot' must return a real 0-d array"):
        p.compute(x)
    with pytest.raises(InvalidTypeError, match="entry 'rot'"):
        p.compute_total(x)


def test_complex_entry_raises_while_tracking(grad_case: BackendCase) -> None:
    xp = grad_case.xp

    def rotated(x: Any) -> Any:
        return xp.astype(xp.sum(x), xp.complex64) * (1 + 1j)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # finite-difference notices
        with pytest.raises(InvalidTypeError, match="entry 'rot'"):
            Pipeline().add("rot", rotated).compute(as_array(xp, [1.0]), track_grad_norms=True)


def test_telemetry_handlers_receive_copies() -> None:
    stop = ("arraypenalties", "pipeline", "compute", "stop")
    seen: list[dict[str, Any]] = []

    def vandal(event: Any, measurements: Any, metadata: Any) -> None:
        metadata["metrics"]["total"] = -1.0
        metadata["metrics"].clear()
        metadata["total"] = -1.0

    def witness(event: Any, measurements: Any, metadata: Any) -> None:
        seen.append(dict(metadata["metrics"]))

    telemetry.attach("vandal", [stop], vandal)
    telemetry.attach("witness", [stop], witness)
    try:
        _, metrics = Pipeline().add("l1", "l1").compute(np.array([1.0, -2.0]))
    finally:
        telemetry.detach("vandal")
        telemetry.detach("witness")
    assert metrics == {"l1": 3.0, "l1_weighted": 3.0, "total": 3.0}
    assert seen == [metrics]


# ----------------------------------------------------------------------------- persistence
def _pipelines() -> tuple[Pipeline, MultiPipeline]:
    single = (
        Pipeline(name="reg")
        .add("l1", "l1", weight=0.1, opts={"lam": 2.0})
        .add("sq", squares, weight=0.5)
        .add("scaled", scaled_squares, opts={"scale": 3.0}, enabled=False)
    )
    multi = (
        MultiPipeline(name="pair")
        .add("kl", "kl", inputs=("p", "q"))
        .add("d", diff_squares, inputs=("p", "q"), weight=2.0)
    )
    return single, multi


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_and_deepcopy_round_trip_with_identical_results(xp: Any, how: str) -> None:
    single, multi = _pipelines()
    x = as_array(xp, [0.5, -1.0, 2.0])
    lp = as_array(xp, [math.log(0.5), math.log(0.25), math.log(0.25)])
    lq = as_array(xp, [math.log(0.25), math.log(0.5), math.log(0.25)])
    single.compute(x)  # a pipeline that has computed (its cache filled) still copies
    for original, arg in ((single, x), (multi, {"p": lp, "q": lq})):
        if how == "pickle":
            restored = pickle.loads(pickle.dumps(original))
        else:
            restored = copy.deepcopy(original)
        assert restored == original and restored is not original
        assert [e.fn for e in restored] == [e.fn for e in original]  # by reference
        expected_total, expected = original.compute(arg)
        total, got = restored.compute(arg)
        assert got == expected
        assert_close(total, expected_total, rtol=0.0, atol=0.0)


def test_lambda_or_closure_entry_fails_to_pickle_naming_the_entry() -> None:
    scale = 2.0

    def closure(x: Any) -> Any:
        return scale * x.sum()

    for fn, entry in ((lambda x: x.sum(), "lam"), (closure, "clo")):
        p = Pipeline().add("ok", squares).add(entry, fn)
        with pytest.raises(InvalidTypeError, match=f"entry {entry!r} cannot be pickled") as info:
            pickle.dumps(p)
        assert isinstance(info.value, ArrayPenaltiesError)
        copied = copy.deepcopy(p)  # deepcopy needs no name: it keeps the function
        assert copied.get(entry).fn is fn
    multi = MultiPipeline().add("lam", lambda a, b: (a - b).sum(), inputs=("a", "b"))
    with pytest.raises(InvalidTypeError, match="entry 'lam' cannot be pickled"):
        pickle.dumps(multi)


def test_pickled_config_names_survive_json_too() -> None:
    single, _ = _pipelines()
    register_penalty("trust.squares", squares)
    register_penalty("trust.scaled_squares", scaled_squares)
    config = json.loads(json.dumps(pickle.loads(pickle.dumps(single)).to_config()))
    assert Pipeline.from_config(config) == single
