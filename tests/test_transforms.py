"""Gradient transforms (SPEC §9) on every backend: closed forms, trees, states, bad input.

Every expected value is computed here in numpy float64 from the formula in SPEC §9,
never by the code under test.
"""

from __future__ import annotations

import math
import pickle
from typing import Any, NamedTuple

import array_api_compat
import numpy as np
import pytest

from arraypenalties import ArrayPenaltiesError, InvalidTypeError, InvalidValueError
from arraypenalties import transforms as T
from arraypenalties._lib.namespace import get_xp
from arraypenalties.testing import assert_close, to_numpy, value_rtol
from arraypenalties.transforms._base import overwrite_updates


class Stats(NamedTuple):
    mu: Any
    scale: Any


def _host_tree(seed: int = 0) -> dict[str, Any]:
    """A nested tree with leaves of rank 0, 1, 2 and 4 (float64, on the host)."""
    rng = np.random.default_rng(seed)
    return {
        "dense": {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=(4,))},
        "convs": [rng.normal(size=(2, 3, 2, 2)), np.asarray(rng.normal())],
        "stats": Stats(mu=rng.normal(size=(5,)), scale=rng.normal(size=(1, 5))),
    }


def _map(fn: Any, *trees: Any) -> Any:
    """Leafwise map over the test trees (independent of the library's tree helper)."""
    first = trees[0]
    if isinstance(first, dict):
        return {key: _map(fn, *(tree[key] for tree in trees)) for key in first}
    if isinstance(first, Stats):
        return Stats(*(_map(fn, *items) for items in zip(*trees, strict=True)))
    if isinstance(first, list):
        return [_map(fn, *items) for items in zip(*trees, strict=True)]
    return fn(*trees)


def _leaves(tree: Any) -> list[Any]:
    out: list[Any] = []
    _map(out.append, tree)
    return out


def _to(xp: Any, host: Any, dtype_name: str) -> Any:
    return _map(lambda leaf: xp.asarray(leaf, dtype=getattr(xp, dtype_name)), host)


def _assert_tree_close(actual: Any, expected_host: Any, xp: Any, dtype_name: str) -> None:
    assert type(actual) is type(expected_host)
    pairs = zip(_leaves(actual), _leaves(expected_host), strict=True)
    for got, want in pairs:
        assert_close(
            got,
            xp.asarray(want, dtype=getattr(xp, dtype_name)),
            rtol=value_rtol(dtype_name),
            atol=1e-6 if dtype_name == "float32" else 1e-13,
        )


def _run(tx: Any, grads: Any, params: Any = None) -> tuple[Any, Any]:
    return tx.update(grads, tx.init(params if params is not None else grads), params)


# ---------------------------------------------------------------- decay


def test_l2_decay_closed_form(xp: Any, dtype_name: str) -> None:
    g_host, w_host = _host_tree(0), _host_tree(1)
    new, state = _run(
        T.add_l2_decay(decay=0.3), _to(xp, g_host, dtype_name), _to(xp, w_host, dtype_name)
    )
    _assert_tree_close(new, _map(lambda g, w: g + 0.3 * w, g_host, w_host), xp, dtype_name)
    assert state == T.EmptyState()


def test_l1_decay_uses_sign_with_sign_zero_zero(xp: Any, dtype_name: str) -> None:
    w_host = {"a": np.asarray([2.0, 0.0, -3.0, 0.0]), "b": np.asarray(-1.5)}
    g_host = {"a": np.asarray([0.1, 0.2, 0.3, 0.4]), "b": np.asarray(1.0)}
    new, _ = _run(
        T.add_l1_decay(decay=0.5), _to(xp, g_host, dtype_name), _to(xp, w_host, dtype_name)
    )
    expected = {"a": np.asarray([0.6, 0.2, -0.2, 0.4]), "b": np.asarray(0.5)}
    _assert_tree_close(new, expected, xp, dtype_name)


def test_elastic_net_decay_closed_form_and_endpoints(xp: Any, dtype_name: str) -> None:
    g_host, w_host = _host_tree(2), _host_tree(3)
    g, w = _to(xp, g_host, dtype_name), _to(xp, w_host, dtype_name)
    new, _ = _run(T.add_elastic_net_decay(decay=0.2, l1_ratio=0.25), g, w)
    expected = _map(lambda g, w: g + 0.2 * (0.25 * np.sign(w) + 0.75 * w), g_host, w_host)
    _assert_tree_close(new, expected, xp, dtype_name)
    pure_l1, _ = _run(T.add_elastic_net_decay(decay=0.2, l1_ratio=1.0), g, w)
    _assert_tree_close(
        pure_l1, _map(lambda g, w: g + 0.2 * np.sign(w), g_host, w_host), xp, dtype_name
    )
    pure_l2, _ = _run(T.add_elastic_net_decay(decay=0.2, l1_ratio=0.0), g, w)
    _assert_tree_close(pure_l2, _map(lambda g, w: g + 0.2 * w, g_host, w_host), xp, dtype_name)


# ---------------------------------------------------------------- clipping


@pytest.mark.parametrize("max_norm", [0.5, 1e6], ids=["clips", "no-op"])
def test_clip_by_global_norm_closed_form_and_state(
    xp: Any, dtype_name: str, max_norm: float
) -> None:
    g_host = _host_tree(4)
    norm = math.sqrt(sum(float(np.sum(leaf**2)) for leaf in _leaves(g_host)))
    new, state = _run(T.clip_by_global_norm(max_norm=max_norm), _to(xp, g_host, dtype_name))
    scale = min(1.0, max_norm / norm)
    _assert_tree_close(new, _map(lambda g: g * scale, g_host), xp, dtype_name)
    assert_close(
        state.norm, xp.asarray(norm, dtype=getattr(xp, dtype_name)), rtol=value_rtol(dtype_name)
    )


def test_clip_by_global_norm_initial_state_and_zero_gradients(xp: Any, dtype_name: str) -> None:
    zeros = _to(xp, _map(np.zeros_like, _host_tree(0)), dtype_name)
    tx = T.clip_by_global_norm(max_norm=1.0)
    state = tx.init(zeros)
    assert_close(state.norm, xp.asarray(0.0, dtype=getattr(xp, dtype_name)))
    new, state = tx.update(zeros, state)  # N = 0: no division by zero, gradients stay 0
    _assert_tree_close(new, _map(np.zeros_like, _host_tree(0)), xp, dtype_name)
    assert_close(state.norm, xp.asarray(0.0, dtype=getattr(xp, dtype_name)))


def test_clip_by_global_norm_zero_and_infinite_bounds(xp: Any) -> None:
    g = {"a": xp.asarray([3.0, 4.0], dtype=xp.float64)}
    zeroed, _ = _run(T.clip_by_global_norm(max_norm=0.0), g)
    assert_close(zeroed["a"], xp.asarray([0.0, 0.0], dtype=xp.float64))
    kept, state = _run(T.clip_by_global_norm(max_norm=math.inf), g)
    assert_close(kept["a"], g["a"])
    assert_close(state.norm, xp.asarray(5.0, dtype=xp.float64))


def _agc_reference(
    g: np.ndarray, w: np.ndarray, factor: float, eps: float, unit_axis: int
) -> np.ndarray:
    """SPEC §9 AGC, one unit at a time (a slow loop, deliberately unlike the library)."""
    if g.ndim <= 1:
        m = factor * max(np.linalg.norm(w), eps)
        return g * min(1.0, m / max(np.linalg.norm(g), 1e-6))
    out = np.empty_like(g)
    g_units, w_units = np.moveaxis(g, unit_axis, 0), np.moveaxis(w, unit_axis, 0)
    out_units = np.moveaxis(out, unit_axis, 0)  # a view: writes land in `out`
    for u in range(g_units.shape[0]):
        m = factor * max(np.linalg.norm(w_units[u]), eps)
        out_units[u] = g_units[u] * min(1.0, m / max(np.linalg.norm(g_units[u]), 1e-6))
    return out


@pytest.mark.parametrize("unit_axis", [0, -1, 1])
def test_adaptive_gradient_clipping_is_unit_wise(xp: Any, dtype_name: str, unit_axis: int) -> None:
    w_host = _host_tree(5)
    w_host["dense"]["w"][0] = 0.0  # a zero unit: the eps floor decides
    g_host = _map(lambda leaf: 0.3 * leaf, _host_tree(6))
    g, w = _to(xp, g_host, dtype_name), _to(xp, w_host, dtype_name)
    tx = T.adaptive_gradient_clipping(clip_factor=0.3, eps=1e-2, unit_axis=unit_axis)
    new, _ = _run(tx, g, w)
    expected = _map(lambda g, w: _agc_reference(g, w, 0.3, 1e-2, unit_axis), g_host, w_host)
    _assert_tree_close(new, expected, xp, dtype_name)
    # clipping happened somewhere but not everywhere, so the test is not vacuous
    ratios = [np.abs(e / o) for e, o in zip(_leaves(expected), _leaves(g_host), strict=True)]
    assert min(float(r.min()) for r in ratios) < 0.5 and max(float(r.max()) for r in ratios) == 1.0


def test_adaptive_gradient_clipping_differs_from_whole_tensor_clipping(xp: Any) -> None:
    # one big unit and one small one: whole-tensor AGC (the original's) would clip neither
    w = xp.asarray([[100.0, 0.0], [0.01, 0.0]], dtype=xp.float64)
    g = xp.asarray([[1.0, 0.0], [1.0, 0.0]], dtype=xp.float64)
    new, _ = _run(T.adaptive_gradient_clipping(clip_factor=0.1, eps=1e-3, unit_axis=0), g, w)
    assert_close(new, xp.asarray([[1.0, 0.0], [0.001, 0.0]], dtype=xp.float64))


# ---------------------------------------------------------------- centralize


def test_centralize_default_axes(xp: Any, dtype_name: str) -> None:
    g_host = _host_tree(7)

    def reference(g: np.ndarray) -> np.ndarray:
        if g.ndim <= 1:
            return g
        return g - g.mean(axis=tuple(range(1, g.ndim)), keepdims=True)

    new, state = _run(T.centralize(), _to(xp, g_host, dtype_name))
    _assert_tree_close(new, _map(reference, g_host), xp, dtype_name)
    assert state == T.EmptyState()


def test_centralize_explicit_axes(xp: Any, dtype_name: str) -> None:
    g_host = {"kernel": np.arange(24.0).reshape(2, 3, 4) ** 1.5, "bias": np.asarray([1.0, 2.0])}
    new, _ = _run(T.centralize(axes=(0, -2)), _to(xp, g_host, dtype_name))
    k = g_host["kernel"]
    expected = {"kernel": k - k.mean(axis=(0, 1), keepdims=True), "bias": g_host["bias"]}
    _assert_tree_close(new, expected, xp, dtype_name)


# ---------------------------------------------------------------- masked and chain


def test_masked_with_tree_and_function(xp: Any, dtype_name: str) -> None:
    g_host, w_host = _host_tree(8), _host_tree(9)
    g, w = _to(xp, g_host, dtype_name), _to(xp, w_host, dtype_name)
    by_rank = _map(lambda leaf: leaf.ndim > 1, w_host)
    expected = _map(lambda g, w: g + 0.5 * w if g.ndim > 1 else g, g_host, w_host)
    tree_mask = T.masked(T.add_l2_decay(decay=0.5), by_rank)
    new, state = _run(tree_mask, g, w)
    _assert_tree_close(new, expected, xp, dtype_name)
    assert isinstance(state, T.MaskedState)
    fn_mask = T.masked(T.add_l2_decay(decay=0.5), lambda tree: _map(lambda x: x.ndim > 1, tree))
    new, _ = _run(fn_mask, g, w)
    _assert_tree_close(new, expected, xp, dtype_name)


def test_masked_clip_measures_only_the_selected_leaves(xp: Any) -> None:
    g = {"a": xp.asarray([3.0, 4.0], dtype=xp.float64), "b": xp.asarray([100.0], dtype=xp.float64)}
    tx = T.masked(T.clip_by_global_norm(max_norm=1.0), {"a": True, "b": False})
    new, state = _run(tx, g)
    assert_close(new["a"], xp.asarray([0.6, 0.8], dtype=xp.float64))
    assert_close(new["b"], g["b"])
    assert_close(state.inner_state.norm, xp.asarray(5.0, dtype=xp.float64))


def test_chain_applies_in_reading_order(xp: Any) -> None:
    w = {"v": xp.asarray([3.0, 4.0], dtype=xp.float64)}
    g = {"v": xp.asarray([0.0, 0.0], dtype=xp.float64)}
    decay_then_clip = T.chain(T.add_l2_decay(decay=1.0), T.clip_by_global_norm(max_norm=1.0))
    clip_then_decay = T.chain(T.clip_by_global_norm(max_norm=1.0), T.add_l2_decay(decay=1.0))
    first, state = _run(decay_then_clip, g, w)
    second, _ = _run(clip_then_decay, g, w)
    # decay first: g + w = [3, 4], then clipped to norm 1; clip first: 0 stays 0, then + w
    assert_close(first["v"], xp.asarray([0.6, 0.8], dtype=xp.float64))
    assert_close(second["v"], xp.asarray([3.0, 4.0], dtype=xp.float64))
    assert isinstance(state, tuple) and len(state) == 2
    assert_close(state[1].norm, xp.asarray(5.0, dtype=xp.float64))


def test_empty_chain_is_identity_and_empty_tree_passes(xp: Any) -> None:
    g = [xp.asarray([1.0], dtype=xp.float32)]
    new, state = _run(T.chain(), g)
    assert new is g and state == ()
    for tx in (T.clip_by_global_norm(), T.centralize(), T.add_gradient_noise()):
        assert tx.update({}, tx.init({}))[0] == {}


# ---------------------------------------------------------------- results, purity, states


ALL_TRANSFORMS = [
    pytest.param(lambda: T.add_l2_decay(decay=0.1), id="l2"),
    pytest.param(lambda: T.add_l1_decay(decay=0.1), id="l1"),
    pytest.param(lambda: T.add_elastic_net_decay(), id="enet"),
    pytest.param(lambda: T.clip_by_global_norm(max_norm=0.1), id="clip"),
    pytest.param(lambda: T.adaptive_gradient_clipping(clip_factor=0.1), id="agc"),
    pytest.param(lambda: T.centralize(), id="centralize"),
    pytest.param(lambda: T.add_gradient_noise(variance=1.0, seed=3), id="noise"),
    pytest.param(
        lambda: T.masked(T.add_l2_decay(), lambda t: _map(lambda x: True, t)), id="masked"
    ),
]


@pytest.mark.parametrize("make", ALL_TRANSFORMS)
def test_results_keep_namespace_dtype_device_and_inputs_are_untouched(
    xp: Any, dtype_name: str, make: Any
) -> None:
    g_host, w_host = _host_tree(10), _host_tree(11)
    g, w = _to(xp, g_host, dtype_name), _to(xp, w_host, dtype_name)
    new, _ = _run(make(), g, w)
    for got, original in zip(_leaves(new), _leaves(g), strict=True):
        assert get_xp(got) is xp
        assert got.dtype == getattr(xp, dtype_name)
        assert tuple(got.shape) == tuple(original.shape)
        assert array_api_compat.device(got) == array_api_compat.device(original)
    for leaf, host in zip(_leaves(g), _leaves(g_host), strict=True):  # pure: inputs unchanged
        np.testing.assert_allclose(to_numpy(leaf), host, rtol=value_rtol(dtype_name))


@pytest.mark.parametrize("make", ALL_TRANSFORMS)
def test_overwrite_updates_gives_the_same_values(xp: Any, make: Any) -> None:
    g_host, w_host = _host_tree(12), _host_tree(13)
    expected, _ = _run(make(), _to(xp, g_host, "float64"), _to(xp, w_host, "float64"))
    with overwrite_updates():
        got, _ = _run(make(), _to(xp, g_host, "float64"), _to(xp, w_host, "float64"))
    for a, b in zip(_leaves(got), _leaves(expected), strict=True):
        assert_close(a, b)


def test_noise_is_reproducible_annealed_and_seeded(xp: Any, dtype_name: str) -> None:
    g = {
        "w": xp.zeros((200, 50), dtype=getattr(xp, dtype_name)),
        "b": xp.zeros((3,), dtype=getattr(xp, dtype_name)),
    }
    tx = T.add_gradient_noise(variance=0.04, decay=0.55, seed=7)
    first, state = _run(tx, g)
    again, _ = _run(tx, g)
    for a, b in zip(_leaves(first), _leaves(again), strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    other, _ = _run(T.add_gradient_noise(variance=0.04, decay=0.55, seed=8), g)
    assert not np.array_equal(to_numpy(other["w"]), to_numpy(first["w"]))
    second, state2 = tx.update(g, state)
    assert not np.array_equal(to_numpy(second["w"]), to_numpy(first["w"]))
    assert int(state.count) == 1 and int(state2.count) == 2 and state2.seed == 7
    # σ² = 0.04 / (1 + t)^0.55 at t = 0 and 1 (10 000 samples: 3% is > 4 standard errors)
    for noisy, t in ((first, 0), (second, 1)):
        samples = to_numpy(noisy["w"]).astype(np.float64)
        assert abs(samples.var() / (0.04 / (1 + t) ** 0.55) - 1) < 0.06
        assert abs(samples.mean()) < 0.01


def test_zero_variance_noise_leaves_gradients_unchanged(xp: Any) -> None:
    g = [xp.asarray([1.0, -2.0], dtype=xp.float64)]
    new, _ = _run(T.add_gradient_noise(variance=0.0), g)
    assert_close(new[0], g[0])


def test_states_are_checkpointable_plain_data(xp: Any) -> None:
    g_host, w_host = _host_tree(14), _host_tree(15)
    g, w = _to(xp, g_host, "float64"), _to(xp, w_host, "float64")
    tx = T.chain(
        T.add_gradient_noise(variance=0.1, seed=1),
        T.clip_by_global_norm(max_norm=1.0),
        T.masked(T.add_l2_decay(), lambda t: _map(lambda x: x.ndim > 1, t)),
    )
    _, state = tx.update(g, tx.init(w), w)
    for inner in (state[0], state[1], state[2]):
        assert isinstance(inner, tuple) and hasattr(inner, "_fields")  # NamedTuples
    host_state = (state[0], T.ClipByGlobalNormState(to_numpy(state[1].norm)), state[2])
    restored_host = pickle.loads(pickle.dumps(host_state))
    restored = (
        restored_host[0],
        T.ClipByGlobalNormState(xp.asarray(restored_host[1].norm)),
        restored_host[2],
    )
    continued, _ = tx.update(g, state, w)
    resumed, _ = tx.update(g, restored, w)
    for a, b in zip(_leaves(continued), _leaves(resumed), strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


# ---------------------------------------------------------------- bad input


BAD_OPTIONS = [
    (
        T.add_l2_decay,
        {"decay": -0.1},
        InvalidValueError,
        "`decay` must be finite, in \\[0.0, inf\\]; got -0.1",
    ),
    (T.add_l1_decay, {"decay": math.nan}, InvalidValueError, "`decay` must be finite"),
    (
        T.add_l2_decay,
        {"decay": "0.1"},
        InvalidTypeError,
        "`decay` must be a real number; got '0.1'",
    ),
    (
        T.add_elastic_net_decay,
        {"l1_ratio": 1.5},
        InvalidValueError,
        "`l1_ratio` must be finite, in \\[0.0, 1.0\\]; got 1.5",
    ),
    (T.add_elastic_net_decay, {"decay": -1.0}, InvalidValueError, "`decay` must be"),
    (
        T.clip_by_global_norm,
        {"max_norm": -1.0},
        InvalidValueError,
        "`max_norm` must be in \\[0.0, inf\\]; got -1.0",
    ),
    (
        T.clip_by_global_norm,
        {"max_norm": None},
        InvalidTypeError,
        "`max_norm` must be a real number",
    ),
    (
        T.adaptive_gradient_clipping,
        {"clip_factor": -0.01},
        InvalidValueError,
        "`clip_factor` must be finite, in",
    ),
    (T.adaptive_gradient_clipping, {"eps": -1.0}, InvalidValueError, "`eps` must be finite, in"),
    (
        T.adaptive_gradient_clipping,
        {"unit_axis": "out"},
        InvalidTypeError,
        "`unit_axis` must be an int .*; got 'out'",
    ),
    (
        T.adaptive_gradient_clipping,
        {"unit_axis": None},
        InvalidTypeError,
        "`unit_axis` must be an int",
    ),
    (
        T.adaptive_gradient_clipping,
        {"unit_axis": True},
        InvalidTypeError,
        "`unit_axis` must be an int",
    ),
    (T.add_gradient_noise, {"variance": -0.01}, InvalidValueError, "`variance` must be finite, in"),
    (T.add_gradient_noise, {"decay": -1.0}, InvalidValueError, "`decay` must be finite, in"),
    (
        T.add_gradient_noise,
        {"seed": -1},
        InvalidValueError,
        "`seed` must be a non-negative int below 2\\*\\*63; got -1",
    ),
    (
        T.add_gradient_noise,
        {"seed": 1.5},
        InvalidTypeError,
        "`seed` must be a non-negative int below 2\\*\\*63; got 1.5",
    ),
    (
        T.centralize,
        {"axes": "rows"},
        InvalidTypeError,
        "`axes` must be None, an int or a tuple of ints; got 'rows'",
    ),
    (T.centralize, {"axes": ()}, InvalidValueError, "`axes` must name at least one axis"),
]


@pytest.mark.parametrize(("factory", "options", "error", "message"), BAD_OPTIONS)
def test_bad_options_name_the_parameter(
    factory: Any, options: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        factory(**options)
    assert isinstance(info.value, ArrayPenaltiesError)
    assert isinstance(info.value, ValueError if error is InvalidValueError else TypeError)


def test_mismatched_trees_name_both_structures(xp: Any) -> None:
    g = {"a": xp.ones((2,), dtype=xp.float32), "b": [xp.ones((1,), dtype=xp.float32)]}
    w = {"a": xp.ones((2,), dtype=xp.float32), "c": [xp.ones((1,), dtype=xp.float32)]}
    for tx in (T.add_l2_decay(), T.adaptive_gradient_clipping(), T.clip_by_global_norm()):
        with pytest.raises(
            ValueError,
            match=r"`updates` \{'a': \*, 'b': \[\*\]\} and `params` \{'a': \*, 'c': \[\*\]\}",
        ):
            tx.update(g, tx.init(g), w)


def test_mismatched_leaf_shapes_raise(xp: Any) -> None:
    g = {"a": xp.ones((2, 3), dtype=xp.float32)}
    w = {"a": xp.ones((3, 2), dtype=xp.float32)}
    with pytest.raises(
        InvalidValueError,
        match=r"`updates\['a'\]` and `params\['a'\]` must have the same shape; "
        r"got \(2, 3\) and \(3, 2\)",
    ):
        _run(T.add_l2_decay(), g, w)


@pytest.mark.parametrize(
    "make", [T.add_l2_decay, T.add_l1_decay, T.add_elastic_net_decay, T.adaptive_gradient_clipping]
)
def test_transforms_needing_params_say_so(xp: Any, make: Any) -> None:
    g = [xp.ones((2,), dtype=xp.float32)]
    tx = make()
    with pytest.raises(
        InvalidValueError,
        match=r"`params` is required by .*: call `update\(updates, state, params\)`",
    ):
        tx.update(g, tx.init(g))


@pytest.mark.parametrize("make", ALL_TRANSFORMS)
def test_integer_gradients_raise(xp: Any, make: Any) -> None:
    g = {"w": xp.asarray([[1, 2], [3, 4]], dtype=xp.int32)}
    w = {"w": xp.asarray([[1.0, 2.0], [3.0, 4.0]], dtype=xp.float32)}
    tx = make()
    with pytest.raises(
        InvalidTypeError, match=r"`updates\['w'\]` must have a real floating dtype; got .*int32"
    ):
        tx.update(g, tx.init(w), w)


def test_non_array_leaves_and_mixed_namespaces_raise(case: Any) -> None:
    xp = case.xp
    tx = T.clip_by_global_norm()
    with pytest.raises(
        InvalidTypeError, match=r"`updates\['a'\]` must be an array .* got builtins.str"
    ):
        tx.update({"a": "not an array"}, tx.init({"a": xp.ones((1,), dtype=xp.float32)}))
    with pytest.raises(
        InvalidTypeError, match=r"`params\['a'\]` must be an array .* got builtins.str"
    ):
        tx.init({"a": "not an array"})
    if case.name == "numpy":
        pytest.skip("mixing needs a second namespace; the numpy case is the other side here")
    mixed = {"a": np.ones(2), "b": xp.ones((2,), dtype=xp.float64)}
    with pytest.raises(
        InvalidTypeError, match=r"`updates\['a'\]` is a numpy.ndarray but `updates\['b'\]` is a"
    ):
        T.centralize().update(mixed, T.EmptyState())


def test_unit_axis_out_of_range_names_the_leaf(xp: Any) -> None:
    g = {"conv": xp.ones((2, 3, 4), dtype=xp.float32), "bias": xp.ones((2,), dtype=xp.float32)}
    with pytest.raises(
        InvalidValueError,
        match=r"`unit_axis` 3 is out of range for the leaf `updates\['conv'\]` of shape "
        r"\(2, 3, 4\): allowed -3 to 2",
    ):
        _run(T.adaptive_gradient_clipping(unit_axis=3), g, g)


def test_centralize_axes_out_of_range_names_the_leaf(xp: Any) -> None:
    g = [xp.ones((2, 3), dtype=xp.float32)]
    with pytest.raises(
        InvalidValueError,
        match=r"`axes` \(0, 2\) is out of range for the leaf `updates\[0\]` of shape \(2, 3\)",
    ):
        _run(T.centralize(axes=(0, 2)), g)


def test_bad_masks_raise(xp: Any) -> None:
    g = {"a": xp.ones((2,), dtype=xp.float32), "b": xp.ones((2,), dtype=xp.float32)}
    with pytest.raises(
        InvalidValueError, match=r"`updates` \{'a': \*, 'b': \*\} and `mask` \{'a': \*\}"
    ):
        _run(T.masked(T.add_l2_decay(), {"a": True}), g, g)
    with pytest.raises(InvalidTypeError, match=r"`mask\['b'\]` must be a Python bool"):
        _run(T.masked(T.add_l2_decay(), {"a": True, "b": 1}), g, g)
    with pytest.raises(InvalidTypeError, match="`mask` must be a tree of bools or a callable"):
        T.masked(T.add_l2_decay(), "bias")
    with pytest.raises(InvalidTypeError, match="`transform` must be a GradientTransformation"):
        T.masked(object(), {"a": True})  # type: ignore[arg-type]


def test_chain_rejects_non_transforms_and_wrong_states() -> None:
    with pytest.raises(
        InvalidTypeError, match=r"`transforms\[1\]` must be a GradientTransformation"
    ):
        T.chain(T.centralize(), lambda g: g)  # type: ignore[arg-type]
    tx = T.chain(T.centralize(), T.centralize())
    with pytest.raises(
        InvalidValueError, match="`state` must hold 2 inner states for this chain; got 1"
    ):
        tx.update([np.ones(2)], (T.EmptyState(),))


WRONG_STATES = [
    "abcde",
    None,
    T.AddGradientNoiseState(count=0, seed=0),
    T.MaskedState(T.EmptyState()),
    T.ClipByGlobalNormState(0.0),
]


@pytest.mark.parametrize("make", ALL_TRANSFORMS)
def test_update_with_a_wrong_state_names_state(make: Any) -> None:
    g = {"w": np.ones((2, 3)), "b": np.ones(3)}
    tx = make()
    wrong_states = [wrong for wrong in WRONG_STATES if type(wrong) is not type(tx.init(g))]
    assert len(wrong_states) >= 4  # a string, None and states of other transforms
    for wrong in wrong_states:
        with pytest.raises(
            InvalidTypeError, match=r"^`state` must be the \w+ that \w+'s `init` returns; got "
        ):
            tx.update(g, wrong, g)


@pytest.mark.parametrize("wrong", ["abcde", None, T.ClipByGlobalNormState(0.0), {"a": 1}])
def test_chain_update_with_a_wrong_state_names_state(wrong: Any) -> None:
    tx = T.chain(T.centralize(), T.clip_by_global_norm(1.0))
    with pytest.raises(
        InvalidTypeError,
        match=r"^`state` must be the tuple of 2 inner states that this chain's `init` returns",
    ):
        tx.update([np.ones(2)], wrong)
    with pytest.raises(InvalidTypeError, match="`state` must be the ClipByGlobalNormState"):
        tx.update([np.ones(2)], (T.EmptyState(), T.EmptyState()))


def test_stateless_accepts_any_empty_state_and_checks_fn() -> None:
    optax = pytest.importorskip("optax", reason="optax is an optional dependency")
    tx = T.centralize()
    g = [np.asarray([[1.0, 3.0]])]
    for empty in (T.EmptyState(), optax.EmptyState(), ()):
        new, state = tx.update(g, empty)
        np.testing.assert_array_equal(new[0], [[-1.0, 1.0]])
        assert state is empty
    assert T.init_empty_state(g) == T.EmptyState()
    with pytest.raises(InvalidTypeError, match="`fn` must be a callable"):
        T.stateless(3)  # type: ignore[arg-type]


def test_main_hyperparameter_is_positional_and_other_options_keyword_only(xp: Any) -> None:
    """As optax: ``clip_by_global_norm(1.0)``; the rest by name only."""
    w = {"w": xp.asarray([[3.0, 4.0], [0.0, -2.0]], dtype=xp.float64)}
    g = {"w": xp.asarray([[1.0, -1.0], [2.0, 0.5]], dtype=xp.float64)}
    pairs = [
        (T.clip_by_global_norm(0.5), T.clip_by_global_norm(max_norm=0.5)),
        (T.add_l2_decay(0.3), T.add_l2_decay(decay=0.3)),
        (T.add_l1_decay(0.3), T.add_l1_decay(decay=0.3)),
        (T.add_elastic_net_decay(0.3, 0.2), T.add_elastic_net_decay(decay=0.3, l1_ratio=0.2)),
        (
            T.add_gradient_noise(0.5, 0.3, seed=4),
            T.add_gradient_noise(variance=0.5, decay=0.3, seed=4),
        ),
        (T.adaptive_gradient_clipping(0.1), T.adaptive_gradient_clipping(clip_factor=0.1)),
        (T.centralize(1), T.centralize(axes=1)),
    ]
    for positional, named in pairs:
        got, _ = _run(positional, g, w)
        want, _ = _run(named, g, w)
        assert_close(got["w"], want["w"], rtol=0.0, atol=0.0)
    # the closed form of one of them, so the pairs are not only equal to each other
    assert_close(
        _run(T.add_l2_decay(0.3), g, w)[0]["w"],
        xp.asarray([[1.9, 0.2], [2.0, -0.1]], dtype=xp.float64),
    )
    with pytest.raises(TypeError):
        T.add_gradient_noise(0.01, 0.55, 3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        T.adaptive_gradient_clipping(0.01, 1e-3)  # type: ignore[misc]


# ---------------------------------------------------------------- the tree helper


def test_tree_helper_round_trips_and_describes_structures() -> None:
    from arraypenalties.tree import flatten, leaf_paths, unflatten

    tree = {"z": [1, (2, None)], "a": Stats(mu=3, scale={"k": 4})}
    leaves, treedef = flatten(tree)
    assert leaves == [3, 4, 1, 2]  # dict keys sorted, as jax does
    assert str(treedef) == "{'a': Stats(mu=*, scale={'k': *}), 'z': [*, (*, None)]}"
    rebuilt = unflatten(treedef, [10, 20, 30, 40])
    assert rebuilt == {"z": [30, (40, None)], "a": Stats(mu=10, scale={"k": 20})}
    assert list(rebuilt) == ["z", "a"]  # insertion order of the original is kept
    assert type(rebuilt["a"]) is Stats
    assert leaf_paths(treedef) == ["['a'].mu", "['a'].scale['k']", "['z'][0]", "['z'][1][0]"]
    assert flatten({"b": 1, "a": 2})[1] == flatten({"a": 0, "b": 0})[1]
    with pytest.raises(InvalidValueError, match="`leaves` must have 4 items"):
        unflatten(treedef, [1])
