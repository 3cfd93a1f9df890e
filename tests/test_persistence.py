"""Persistence (SPEC §10): transforms, their states and schedules pickle and deep-copy.

A copy computes exactly what the original computes (bit for bit), and a run
saved half-way and resumed from the pickled bytes matches the uninterrupted
run bit for bit. Configs of schedules are data: loading one imports nothing.
"""

from __future__ import annotations

import copy
import json
import pickle
import sys
from typing import Any

import numpy as np
import pytest

from arraypenalties import UnknownNameError
from arraypenalties import transforms as T
from arraypenalties.schedules import (
    Schedule,
    WeightSchedule,
    constant,
    cosine,
    exponential_decay,
    linear,
    schedule,
    warmup,
    weight_schedule,
)
from arraypenalties.testing import to_numpy


def _halve(updates: Any, params: Any) -> Any:
    """A module-level function for ``stateless`` (so the transform pickles)."""
    del params
    return {key: value / 2 for key, value in updates.items()}


def _factories() -> list[Any]:
    """Every factory of ``arraypenalties.transforms`` (and the combinators), built once each."""
    return [
        pytest.param(lambda: T.add_l2_decay(0.1), id="l2"),
        pytest.param(lambda: T.add_l1_decay(0.1), id="l1"),
        pytest.param(lambda: T.add_elastic_net_decay(0.1, 0.3), id="enet"),
        pytest.param(lambda: T.clip_by_global_norm(0.5), id="clip"),
        pytest.param(lambda: T.adaptive_gradient_clipping(0.05, unit_axis=-1), id="agc"),
        pytest.param(lambda: T.centralize(), id="centralize"),
        pytest.param(lambda: T.add_gradient_noise(0.5, seed=3), id="noise"),
        pytest.param(lambda: T.masked(T.add_l2_decay(0.2), {"w": True, "b": False}), id="masked"),
        pytest.param(lambda: T.stateless(_halve), id="stateless"),
        pytest.param(
            lambda: T.chain(T.add_gradient_noise(0.1, seed=1), T.clip_by_global_norm(1.0)),
            id="chain",
        ),
        pytest.param(lambda: T.chain(), id="empty-chain"),
    ]


def _trees(xp: Any, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    host_g = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=(3,))}
    host_w = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=(3,))}
    as_xp = {k: xp.asarray(v, dtype=xp.float64) for k, v in host_g.items()}
    return as_xp, {k: xp.asarray(v, dtype=xp.float64) for k, v in host_w.items()}


def _flat(tree: Any) -> list[np.ndarray]:
    """Every array-like leaf of a tree (dicts, tuples, NamedTuples) on the host, in order."""
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in _flat(tree[key])]
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _flat(item)]
    return [np.asarray(to_numpy(tree)) if hasattr(tree, "shape") else np.asarray(tree)]


def _assert_identical(a: Any, b: Any) -> None:
    left, right = _flat(a), _flat(b)
    assert len(left) == len(right)
    for x, y in zip(left, right, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("make", _factories())
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_every_transform_round_trips_with_identical_results(xp: Any, make: Any, how: str) -> None:
    tx = make()
    clone = pickle.loads(pickle.dumps(tx)) if how == "pickle" else copy.deepcopy(tx)
    assert type(clone) is T.GradientTransformation
    grads, params = _trees(xp, 0)
    state, clone_state = tx.init(params), clone.init(params)
    _assert_identical(state, clone_state)
    for _ in range(2):  # two steps: the noise count moves on
        new, state = tx.update(grads, state, params)
        new_clone, clone_state = clone.update(grads, clone_state, params)
        _assert_identical(new, new_clone)
        _assert_identical(state, clone_state)
    assert _flat(new)  # something was compared


def test_states_round_trip_and_continue_identically(xp: Any) -> None:
    tx = T.chain(
        T.add_gradient_noise(0.3, seed=9),
        T.clip_by_global_norm(0.7),
        T.masked(T.centralize(), {"w": True, "b": False}),
    )
    grads, params = _trees(xp, 1)
    _, state = tx.update(grads, tx.init(params), params)
    for restored in (pickle.loads(pickle.dumps(state)), copy.deepcopy(state)):
        assert type(restored[0]) is T.AddGradientNoiseState
        assert type(restored[1]) is T.ClipByGlobalNormState
        assert type(restored[2]) is T.MaskedState
        _assert_identical(restored, state)
        _assert_identical(tx.update(grads, restored, params), tx.update(grads, state, params))


def _sgd_run(tx: Any, params: Any, grads_at: Any, steps: range, state: Any) -> Any:
    for step in steps:
        updates, state = tx.update(grads_at(step, params), state, params)
        params = {key: params[key] - 0.1 * updates[key] for key in params}
    return params, state


def _chain_for_checkpoints() -> T.GradientTransformation:
    return T.chain(
        T.add_gradient_noise(0.01, 0.55, seed=123),
        T.adaptive_gradient_clipping(0.05, unit_axis=0),
        T.clip_by_global_norm(1.0),
        T.masked(T.add_l2_decay(1e-2), {"w": True, "b": False}),
        T.centralize(),
    )


def _grads_at(step: int, params: Any) -> Any:
    """A gradient that depends on the parameters and the step."""
    return {key: 2.0 * value + 0.01 * (step + 1) for key, value in params.items()}


@pytest.mark.parametrize("name", ["numpy", "jax"])
def test_save_load_continue_matches_an_uninterrupted_run_bit_for_bit(name: str) -> None:
    if name == "jax":
        pytest.importorskip("jax", reason="jax is an optional backend")
        import jax.numpy as xp
    else:
        import numpy as xp
    _, params = _trees(xp, 2)
    grads_at = _grads_at
    tx = _chain_for_checkpoints()
    straight, straight_state = _sgd_run(tx, params, grads_at, range(8), tx.init(params))

    half, half_state = _sgd_run(tx, params, grads_at, range(4), tx.init(params))
    saved = pickle.dumps({"tx": tx, "state": half_state, "params": half})
    del tx, half, half_state
    loaded = pickle.loads(saved)
    resumed, resumed_state = _sgd_run(
        loaded["tx"], loaded["params"], grads_at, range(4, 8), loaded["state"]
    )
    _assert_identical(resumed, straight)
    _assert_identical(resumed_state, straight_state)
    assert int(resumed_state[0].count) == 8


@pytest.mark.backend("jax")
def test_jitted_save_load_continue_matches_bit_for_bit() -> None:
    import jax
    import jax.numpy as jnp

    _, params = _trees(jnp, 3)
    tx = _chain_for_checkpoints()
    grads = {key: 2.0 * value for key, value in params.items()}
    step = jax.jit(tx.update)
    state = tx.init(params)
    outputs = []
    for _ in range(6):
        updates, state = step(grads, state, params)
        outputs.append(updates)
    state = tx.init(params)
    for _ in range(3):
        _, state = step(grads, state, params)
    loaded_tx, loaded_state = pickle.loads(pickle.dumps((tx, state)))
    loaded_step = jax.jit(loaded_tx.update)
    for index in range(3, 6):
        updates, loaded_state = loaded_step(grads, loaded_state, params)
        _assert_identical(updates, outputs[index])


def test_masked_with_a_function_deep_copies_and_a_lambda_mask_does_not_pickle() -> None:
    tx = T.masked(T.add_l2_decay(0.5), lambda tree: {key: key == "w" for key in tree})
    grads, params = _trees(np, 4)
    clone = copy.deepcopy(tx)
    _assert_identical(
        clone.update(grads, clone.init(params), params), tx.update(grads, tx.init(params), params)
    )
    with pytest.raises((pickle.PicklingError, AttributeError), match="lambda"):
        pickle.dumps(tx)


# ---------------------------------------------------------------- schedules


SCHEDULES = [
    constant(0.3),
    linear(1.0, 3.0, steps=4, begin=2),
    linear(0.0, 1.0),
    warmup(2.0, steps=8, init=1.0),
    warmup(1.0, steps=2, then=cosine(1.0, end=0.1)),
    exponential_decay(2.0, rate=0.1, steps=3, staircase=True, end=0.05, begin=1),
    cosine(1.0, end=0.2, steps=8),
]


@pytest.mark.parametrize("built", SCHEDULES, ids=repr)
def test_schedules_pickle_deepcopy_and_config_round_trip(built: Schedule) -> None:
    config = json.loads(json.dumps(built.to_config()))  # JSON-ready data
    copies = [
        pickle.loads(pickle.dumps(built)),
        copy.deepcopy(built),
        Schedule.from_config(config),
        schedule(config.pop("kind"), **config),
    ]
    for clone in copies:
        assert repr(clone) == repr(built)
        for step in (0, 1, 2.5, 3, 7, 9, 20):
            assert clone(step, total=20) == built(step, total=20)


def test_weight_schedule_pickles_deep_copies_and_round_trips_its_config() -> None:
    weights = weight_schedule(
        {
            "l1": 1e-3,
            "entropy": {
                "kind": "warmup",
                "peak": 0.1,
                "steps": 5,
                "then": {"kind": "cosine", "init": 0.1},
            },
            "kl": exponential_decay(1.0, rate=0.5, steps=2),
        }
    )
    text = json.dumps(weights.to_config())
    copies = [
        pickle.loads(pickle.dumps(weights)),
        copy.deepcopy(weights),
        WeightSchedule.from_config(json.loads(text)),
    ]
    for clone in copies:
        assert list(clone(0, 10)) == ["l1", "entropy", "kl"]
        for step in range(11):
            assert clone(step, 10) == weights(step, 10)
    assert weights(7, 10)["entropy"] == pytest.approx(0.1 * 0.5 * (1 + np.cos(np.pi * 2 / 5)))


@pytest.mark.parametrize(
    "kind", ["os:system", "subprocess.run", "arraypenalties.schedules:cosine", "this"]
)
def test_a_schedule_config_names_only_known_kinds_and_imports_nothing(kind: str) -> None:
    before = set(sys.modules)
    with pytest.raises(UnknownNameError, match="`kind` must be one of 'constant'"):
        WeightSchedule.from_config({"l1": {"kind": kind, "command": "touch pwned"}})
    with pytest.raises(UnknownNameError):
        Schedule.from_config({"kind": kind})
    assert set(sys.modules) == before
