"""The jax train step: values against a hand-written step, one compilation, sharding, errors."""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from arraypenalties import (
    InvalidTypeError,
    InvalidValueError,
    UnknownNameError,
    l1,
    l2,
    pipeline,
)
from arraypenalties import transforms as T
from arraypenalties.schedules import linear, weight_schedule

pytestmark = pytest.mark.backend("jax")
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _setup(dtype: str = "float32") -> tuple[Any, Any, Any]:
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    params = {
        "hidden": {
            "kernel": jnp.asarray(rng.normal(size=(5, 8)), dtype=dtype),
            "bias": jnp.asarray(rng.normal(size=8) * 0.1, dtype=dtype),
        },
        "head": {
            "kernel": jnp.asarray(rng.normal(size=(8, 3)), dtype=dtype),
            "bias": jnp.zeros(3, dtype=dtype),
        },
    }
    x = jnp.asarray(rng.normal(size=(16, 5)), dtype=dtype)
    y = jnp.asarray(rng.integers(0, 3, size=16))
    return params, x, y


def _apply(params: Any, x: Any) -> tuple[Any, Any]:
    import jax

    h = jax.nn.relu(x @ params["hidden"]["kernel"] + params["hidden"]["bias"])
    logits = h @ params["head"]["kernel"] + params["head"]["bias"]
    return jax.nn.log_softmax(logits), {"hidden": {"act": (h,)}}


def _nll(logprobs: Any, y: Any) -> Any:
    import jax.numpy as jnp

    return -jnp.mean(jnp.take_along_axis(logprobs, y[:, None], axis=1))


def _hand_written(x: Any, y: Any, w_ent: float, w_l2: float, w_act: float) -> Any:
    """The same loss written out in plain jax (no arraypenalties): jitted value and grad."""
    import jax
    import jax.numpy as jnp

    def loss(params: Any) -> Any:
        logprobs, inter = _apply(params, x)
        h = inter["hidden"]["act"][0]
        neg_entropy = jnp.mean(jnp.sum(jnp.exp(logprobs) * logprobs, axis=-1))  # bonus = -H
        l2_kernels = sum(jnp.sum(p["kernel"] ** 2) for p in params.values())
        return (
            _nll(logprobs, y)
            + w_ent * neg_entropy
            + w_l2 * l2_kernels
            + w_act * jnp.sum(jnp.abs(h))
        )

    return jax.jit(jax.value_and_grad(loss))


def _step(**changes: Any) -> Any:
    import optax

    from arraypenalties.integrations.jax import make_train_step

    options: dict[str, Any] = {
        "penalties": pipeline([("entropy", {"weight": 0.1, "opts": {"mode": "bonus"}})]),
        "parameter_penalties": {"l2": (l2, 1e-3, {"exclude": r"bias$"})},
        "activity": {"hidden": (l1, 1e-2)},
        "has_aux": True,
        "transforms": [T.clip_by_global_norm(max_norm=1.0)],
    }
    options.update(changes)
    return make_train_step(_apply, _nll, optax.sgd(0.1), **options)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step_matches_hand_written_jitted_step(dtype: str) -> None:
    import jax
    import optax

    params, x, y = _setup(dtype)
    step = _step()
    opt_state = step.init(params)
    reference_opt = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1))
    ref_params, ref_state = params, reference_opt.init(params)
    rtol = 2e-5 if dtype == "float32" else 1e-12
    reference = _hand_written(x, y, 0.1, 1e-3, 1e-2)
    for index in range(3):
        before = params
        params, opt_state, metrics = step(params, opt_state, (x, y), index)
        value, grads = reference(ref_params)
        updates, ref_state = reference_opt.update(grads, ref_state, ref_params)
        ref_params = optax.apply_updates(ref_params, updates)
        np.testing.assert_allclose(np.asarray(metrics["loss"]), np.asarray(value), rtol=rtol)
        assert metrics["loss"].dtype == np.dtype(dtype) and metrics["loss"].shape == ()
        for mine, ref in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params), strict=True):
            assert mine.dtype == np.dtype(dtype)
            np.testing.assert_allclose(np.asarray(mine), np.asarray(ref), rtol=rtol, atol=1e-7)
    assert set(metrics) == {
        "loss",
        "base_loss",
        "penalty_total",
        "entropy",
        "entropy_weighted",
        "total",
        "param/l2",
        "param/l2_weighted",
        "activity/hidden",
        "activity/hidden_weighted",
    }
    assert all(isinstance(v, jax.Array) and v.shape == () for v in metrics.values())
    np.testing.assert_allclose(
        np.asarray(metrics["loss"]),
        np.asarray(metrics["base_loss"] + metrics["penalty_total"]),
        rtol=rtol,
    )
    # the raw l2 skips the biases: an independent numpy sum over the kernels
    kernels = sum((np.asarray(p["kernel"], dtype=np.float64) ** 2).sum() for p in before.values())
    np.testing.assert_allclose(float(metrics["param/l2"]), kernels, rtol=rtol)


@contextlib.contextmanager
def _compilations() -> Iterator[list[str]]:
    """The XLA compilations that happen inside the block (jax's monitoring events)."""
    import jax

    events: list[str] = []

    def listen(name: str, duration: float, **kwargs: Any) -> None:
        if name == "/jax/core/compile/backend_compile_duration":
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


def test_scheduled_weight_compiles_once_over_100_steps() -> None:
    params, x, y = _setup()
    traces: list[int] = []

    def counted_apply(params: Any, x: Any) -> Any:
        traces.append(1)  # runs once per trace, never per compiled call
        return _apply(params, x)

    import optax

    from arraypenalties.integrations.jax import make_train_step

    step = make_train_step(
        counted_apply,
        _nll,
        optax.adam(1e-3),
        parameter_penalties={"l2": (l2, 0.0)},
        weight_schedules=weight_schedule({"l2": linear(0.0, 1e-2, steps=50)}),
        transforms=T.clip_by_global_norm(max_norm=1.0),
        has_aux=True,
    )
    opt_state = step.init(params)
    seen = []
    with _compilations() as compiled:
        for index in range(100):
            params, opt_state, metrics = step(params, opt_state, (x, y), index)
            seen.append(float(metrics["weight/l2"]))
            if index == 0:
                first = len(compiled)
    # everything compiles on the first step (the listener does see it); 99 more add nothing
    assert first >= 1 and len(compiled) == first
    assert len(traces) == 1
    expected = [1e-2 * min(i / 50, 1.0) for i in range(100)]  # the linear ramp, by hand
    np.testing.assert_allclose(seen, expected, rtol=1e-6, atol=1e-12)


def test_scheduled_weight_changes_the_update() -> None:
    """Weight 0 at step 0 gives exactly the unpenalised update; later steps do not."""
    import jax
    import optax

    from arraypenalties.integrations.jax import make_train_step

    params, x, y = _setup()
    plain = make_train_step(lambda p, v: _apply(p, v)[0], _nll, optax.sgd(0.1))
    ramped = make_train_step(
        lambda p, v: _apply(p, v)[0],
        _nll,
        optax.sgd(0.1),
        parameter_penalties={"l2": (l2, 1.0)},
        weight_schedules={"l2": {"kind": "linear", "init": 0.0, "end": 1.0}},
        total_steps=10,
    )
    first, _, _ = plain(params, plain.init(params), (x, y), 0)
    at_zero, _, metrics = ramped(params, ramped.init(params), (x, y), 0)
    at_five, _, _ = ramped(params, ramped.init(params), (x, y), 5)
    assert float(metrics["param/l2_weighted"]) == 0.0
    for a, b, c in zip(*(jax.tree.leaves(t) for t in (first, at_zero, at_five)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        if a.ndim == 2:  # kernels are non-zero, so the l2 gradient moves them
            assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_disabled_entries_and_no_penalties() -> None:
    import jax.numpy as jnp
    import optax

    from arraypenalties.integrations.jax import make_train_step

    params, x, y = _setup()
    p = pipeline(["l1", ("entropy", {"weight": 0.5})]).set_enabled("l1", False)
    step = make_train_step(lambda q, v: _apply(q, v)[0], _nll, optax.sgd(0.1), penalties=p)
    _, _, metrics = step(params, step.init(params), (x, y), 0)
    assert "l1" not in metrics
    logprobs = _apply(params, x)[0]
    expected = 0.5 * jnp.mean(jnp.sum(jnp.exp(logprobs) * logprobs, axis=-1))
    np.testing.assert_allclose(float(metrics["total"]), float(expected), rtol=1e-6)
    bare = make_train_step(lambda q, v: _apply(q, v)[0], _nll, optax.sgd(0.1))
    _, _, metrics = bare(params, bare.init(params), (x, y), 0)
    assert float(metrics["penalty_total"]) == 0.0 and metrics["penalty_total"].dtype == jnp.float32


def test_bad_arguments() -> None:
    import optax

    from arraypenalties.integrations.jax import make_train_step

    with pytest.raises(InvalidTypeError, match="`optimizer` must be an optax"):
        make_train_step(_apply, _nll, "adam")
    with pytest.raises(InvalidTypeError, match="`apply_fn` must be callable"):
        make_train_step(None, _nll, optax.sgd(0.1))
    with pytest.raises(InvalidTypeError, match="`penalties` must be a Pipeline"):
        make_train_step(_apply, _nll, optax.sgd(0.1), penalties=[l1])
    with pytest.raises(InvalidValueError, match="need `has_aux=True`"):
        make_train_step(_apply, _nll, optax.sgd(0.1), activity={"hidden": (l1, 1.0)})
    with pytest.raises(UnknownNameError, match="'l3', which matches no"):
        _step(weight_schedules={"l3": 1.0})
    with pytest.raises(InvalidValueError, match="unknown options"):
        _step(parameter_penalties={"l2": (l2, 1.0, {"exclde": "bias"})})
    with pytest.raises(InvalidTypeError, match="must be \\(penalty, weight\\)"):
        _step(parameter_penalties={"l2": l2})
    params, x, y = _setup()
    step = _step(activity={"hiden": (l1, 1.0)})
    with pytest.raises(UnknownNameError, match=r"'hiden'.*closest: \['hidden/act'\]"):
        step(params, step.init(params), (x, y), 0)
    scheduled = _step(weight_schedules={"l2": 1.0})
    with pytest.raises(InvalidValueError, match="`step_index` must be an integer >= 0"):
        scheduled(params, scheduled.init(params), (x, y), -1)


def test_penalty_returning_non_scalar_is_named() -> None:
    params, x, y = _setup()
    step = _step(penalties=pipeline([("l1", {"opts": {"reduction": "none"}})]))
    with pytest.raises(InvalidValueError, match="penalty 'l1' must return a 0-d array"):
        step(params, step.init(params), (x, y), 0)


SHARDED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from arraypenalties import l2, l1, pipeline
    from arraypenalties import transforms as T
    from arraypenalties.integrations.jax import make_train_step
    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    params = {"w1": jnp.asarray(rng.normal(size=(16, 32)), jnp.float32),
              "b1": jnp.zeros(32, jnp.float32),
              "w2": jnp.asarray(rng.normal(size=(32, 4)), jnp.float32)}
    x = jnp.asarray(rng.normal(size=(64, 16)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(64, 4)), jnp.float32)
    def apply(p, v):
        h = jax.nn.relu(v @ p["w1"] + p["b1"])
        return h @ p["w2"], {"h": (h,)}
    step = make_train_step(apply, lambda o, t: jnp.mean((o - t) ** 2), optax.adam(1e-2),
        penalties=pipeline([("l1", {"weight": 1e-3})]),
        parameter_penalties={"l2": (l2, 1e-4, {"exclude": "b"})},
        activity={"h": (l1, 1e-3)}, has_aux=True,
        weight_schedules={"l2": {"kind": "linear", "init": 0.0, "end": 1e-3, "steps": 4}},
        transforms=[T.adaptive_gradient_clipping(unit_axis=-1)])
    def run(params, x, y):
        state = step.init(params)
        for i in range(5):
            params, state, metrics = step(params, state, (x, y), i)
        return params, metrics
    plain_params, plain_metrics = run(params, x, y)
    mesh = Mesh(np.asarray(jax.devices()).reshape(4, 2), ("data", "model"))
    shardings = {"w1": NamedSharding(mesh, P(None, "model")), "b1": NamedSharding(mesh, P("model")),
                 "w2": NamedSharding(mesh, P("model", None))}
    sharded = jax.device_put(params, shardings)
    xs = jax.device_put(x, NamedSharding(mesh, P("data", None)))
    ys = jax.device_put(y, NamedSharding(mesh, P("data", None)))
    out_params, out_metrics = run(sharded, xs, ys)
    for name in params:
        assert out_params[name].sharding.is_equivalent_to(shardings[name], params[name].ndim), (
            name, out_params[name].sharding)
        np.testing.assert_allclose(np.asarray(out_params[name]), np.asarray(plain_params[name]),
                                   rtol=2e-5, atol=1e-6)
    for key in plain_metrics:
        np.testing.assert_allclose(float(out_metrics[key]), float(plain_metrics[key]), rtol=2e-5)
    print("ok", len(plain_metrics))
    """
)


def test_sharded_over_8_cpu_devices_matches_unsharded() -> None:
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }
    result = subprocess.run(
        [sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["ok", "11"]


IMPORTS = textwrap.dedent(
    """
    import sys, importlib
    FRAMEWORKS = ("torch", "jax", "optax", "flax", "keras", "dask", "array_api_strict")
    import arraypenalties, arraypenalties.schedules, arraypenalties.transforms
    import arraypenalties.tree, arraypenalties.integrations
    before = sorted(m for m in FRAMEWORKS if m in sys.modules)
    importlib.import_module(sys.argv[1])
    print(before, sorted(m for m in FRAMEWORKS if m in sys.modules))
    """
)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("arraypenalties.integrations.jax", ["jax", "optax"]),
        ("arraypenalties.integrations.flax", ["flax", "jax"]),
        ("arraypenalties.integrations.keras", ["jax", "keras"]),  # keras's jax backend
    ],
)
def test_each_integration_is_the_only_importer_of_its_framework(
    module: str, expected: list[str]
) -> None:
    env = {**os.environ, "KERAS_BACKEND": "jax"}  # keras reads its backend at import
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS, module], capture_output=True, text=True, env=env, check=True
    )
    before, after = result.stdout.strip().split("] [")
    assert before == "["
    loaded = [name.strip("'[] ") for name in after.split(",")]
    assert loaded == expected


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "constant", "value": 0.3},
        {"kind": "linear", "init": 0.0, "end": 1.0, "steps": 7, "begin": 2},
        {"kind": "linear", "init": 1.0, "end": 0.5},
        {"kind": "warmup", "peak": 1.0, "steps": 4, "init": 0.1},
        {"kind": "warmup", "peak": 1.0, "steps": 4, "then": {"kind": "cosine", "init": 1.0}},
        {"kind": "exponential_decay", "init": 1.0, "rate": 0.5, "steps": 3, "end": 0.2},
        {"kind": "exponential_decay", "init": 0.1, "rate": 2.0, "steps": 3, "staircase": True},
        {"kind": "cosine", "init": 1.0, "end": 0.1, "steps": 10},
    ],
    ids=lambda spec: spec["kind"],
)
def test_traced_schedules_match_the_host_schedules(spec: dict[str, Any]) -> None:
    import jax
    import jax.numpy as jnp

    from arraypenalties.integrations._traced_schedules import traced_weight
    from arraypenalties.schedules import schedule

    options = {k: v for k, v in spec.items() if k != "kind"}
    host = schedule(spec["kind"], **options)
    traced = jax.jit(lambda s: traced_weight(host, s, 20, jnp.float64))
    for step in range(20):
        np.testing.assert_allclose(float(traced(step)), host(step, 20), rtol=1e-12, atol=1e-15)


def test_step_inside_a_scan_with_a_traced_step_index() -> None:
    import jax
    import jax.numpy as jnp
    import optax

    from arraypenalties.integrations.jax import make_train_step

    params, x, y = _setup("float64")
    step = make_train_step(
        lambda p, v: _apply(p, v)[0],
        _nll,
        optax.sgd(0.1),
        parameter_penalties={"l2": (l2, 0.0)},
        weight_schedules={"l2": {"kind": "linear", "init": 0.0, "end": 1e-2}},
        total_steps=6,
    )

    @jax.jit
    def run(params: Any, opt_state: Any) -> Any:
        def body(carry: Any, index: Any) -> Any:
            params, opt_state = carry
            params, opt_state, metrics = step(params, opt_state, (x, y), index)
            return (params, opt_state), metrics["weight/l2"]

        return jax.lax.scan(body, (params, opt_state), jnp.arange(6))

    (scanned, _), weights = run(params, step.init(params))
    np.testing.assert_allclose(np.asarray(weights), [1e-2 * i / 6 for i in range(6)], rtol=1e-12)
    host_params, state = params, step.init(params)
    for index in range(6):
        host_params, state, _ = step(host_params, state, (x, y), index)
    for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(host_params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10)
