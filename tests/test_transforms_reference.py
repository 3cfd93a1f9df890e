"""The transforms against optax (jax) and torch.nn.utils.clip_grad_norm_ on shared fixtures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arraypenalties import transforms as T
from arraypenalties.tree import flatten


def _flax_shapes() -> dict[str, tuple[int, ...]]:
    """flax layouts: conv [kh, kw, in, out], dense [in, out], biases and scales 1-D."""
    return {
        "conv": (3, 3, 4, 8),
        "conv_bias": (8,),
        "dense": (32, 10),
        "dense_bias": (10,),
        "scale": (),
        "conv3d": (2, 2, 2, 3, 5),
    }


def _tree(shapes: dict[str, tuple[int, ...]], seed: int, scale: float = 1.0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {name: scale * rng.normal(size=shape) for name, shape in shapes.items()}


def _jax_tree(host: dict[str, Any], dtype_name: str) -> dict[str, Any]:
    import jax.numpy as jnp

    return {key: jnp.asarray(value, dtype=getattr(jnp, dtype_name)) for key, value in host.items()}


def _assert_trees_close(ours: Any, theirs: Any, dtype_name: str) -> None:
    rtol = 1e-5 if dtype_name == "float32" else 1e-12
    ours_leaves, theirs_leaves = flatten(ours)[0], flatten(theirs)[0]
    assert len(ours_leaves) == len(theirs_leaves)
    for a, b in zip(ours_leaves, theirs_leaves, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=rtol * 1e-2)


def _optax_update(tx: Any, grads: Any, params: Any) -> Any:
    return tx.update(grads, tx.init(params), params)[0]


@pytest.mark.backend("jax")
@pytest.mark.parametrize("max_norm", [0.1, 1e4])
def test_clip_by_global_norm_equals_optax(dtype_name: str, max_norm: float) -> None:
    import optax

    grads = _jax_tree(_tree(_flax_shapes(), 0), dtype_name)
    ours, state = T.clip_by_global_norm(max_norm).update(grads, T.ClipByGlobalNormState(0.0))
    _assert_trees_close(
        ours, _optax_update(optax.clip_by_global_norm(max_norm), grads, grads), dtype_name
    )
    np.testing.assert_allclose(
        np.asarray(state.norm),
        np.asarray(optax.tree.norm(grads)),
        rtol=1e-5 if dtype_name == "float32" else 1e-12,
    )


@pytest.mark.backend("jax")
def test_adaptive_gradient_clipping_equals_optax_with_matching_axis(dtype_name: str) -> None:
    import optax

    params = _jax_tree(_tree(_flax_shapes(), 1), dtype_name)
    grads = _jax_tree(_tree(_flax_shapes(), 2, scale=0.05), dtype_name)
    ours = T.adaptive_gradient_clipping(0.05, eps=1e-3, unit_axis=-1).update(
        grads, T.EmptyState(), params
    )[0]
    # optax's rank-based defaults reduce every axis but the last for ranks 1, 2, 4 and 5
    theirs_default = _optax_update(optax.adaptive_grad_clip(0.05, eps=1e-3), grads, params)
    _assert_trees_close(ours, theirs_default, dtype_name)
    # and with the axis given explicitly, leaf by leaf
    for name in ("conv", "dense"):
        axis = tuple(range(grads[name].ndim - 1))
        explicit = optax.adaptive_grad_clip(0.05, eps=1e-3, axis=axis)
        theirs = _optax_update(explicit, {name: grads[name]}, {name: params[name]})
        _assert_trees_close({name: ours[name]}, theirs, dtype_name)
    kept = np.concatenate(
        [np.isclose(np.asarray(ours[k]), np.asarray(grads[k])).ravel() for k in grads]
    )
    assert kept.any() and not kept.all()  # some units clipped, some not


@pytest.mark.backend("jax")
def test_adaptive_gradient_clipping_and_optax_differ_on_leaves_with_one_long_axis() -> None:
    """optax squeezes singleton axes: a leaf with at most one axis longer than 1 is one unit."""
    import jax.numpy as jnp
    import optax

    w, g = jnp.asarray([[3.0, 4.0]]), jnp.asarray([[1.0, 1.0]])
    ours = T.adaptive_gradient_clipping(0.1, unit_axis=-1).update(g, T.EmptyState(), w)[0]
    theirs = _optax_update(optax.adaptive_grad_clip(0.1), g, w)
    # ours per column: 0.1 * [3, 4] / [1, 1]; optax whole leaf: 0.1 * 5 / sqrt(2) each
    np.testing.assert_allclose(np.asarray(ours), [[0.3, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(theirs), [[0.5 / np.sqrt(2)] * 2], rtol=1e-6)
    # optax with the axis given explicitly does not squeeze, and then agrees with ours
    explicit = _optax_update(optax.adaptive_grad_clip(0.1, axis=0), g, w)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(explicit), rtol=1e-6)
    # rank 4 with two long axes after squeezing: optax reduces (0, 1, 2) as we do
    rng = np.random.default_rng(0)
    w4 = jnp.asarray(rng.normal(size=(1, 1, 4, 8)), dtype=jnp.float32)
    g4 = jnp.asarray(rng.normal(size=(1, 1, 4, 8)), dtype=jnp.float32)
    ours4 = T.adaptive_gradient_clipping(0.05, unit_axis=-1).update(g4, T.EmptyState(), w4)[0]
    theirs4 = _optax_update(optax.adaptive_grad_clip(0.05), g4, w4)
    np.testing.assert_allclose(np.asarray(ours4), np.asarray(theirs4), rtol=1e-6)
    assert not np.allclose(np.asarray(ours4), np.asarray(g4))  # some clipping happened


@pytest.mark.backend("jax")
def test_centralize_equals_optax(dtype_name: str) -> None:
    import optax

    grads = _jax_tree(_tree(_flax_shapes(), 3), dtype_name)
    ours = T.centralize().update(grads, T.EmptyState())[0]
    _assert_trees_close(ours, _optax_update(optax.centralize(), grads, grads), dtype_name)


@pytest.mark.backend("jax")
def test_l2_decay_equals_optax_add_decayed_weights(dtype_name: str) -> None:
    import optax

    params = _jax_tree(_tree(_flax_shapes(), 4), dtype_name)
    grads = _jax_tree(_tree(_flax_shapes(), 5), dtype_name)
    ours = T.add_l2_decay(0.03).update(grads, T.EmptyState(), params)[0]
    _assert_trees_close(
        ours, _optax_update(optax.add_decayed_weights(0.03), grads, params), dtype_name
    )


@pytest.mark.backend("jax")
def test_gradient_noise_statistics_match_optax_add_noise() -> None:
    import jax.numpy as jnp
    import optax

    grads = {"w": jnp.zeros((400, 500), dtype=jnp.float32)}
    ours_tx = T.add_gradient_noise(variance=0.3, decay=0.55, seed=0)
    theirs_tx = optax.add_noise(0.3, 0.55, key=0)
    ours_state, theirs_state = ours_tx.init(grads), theirs_tx.init(grads)
    for t in range(3):
        ours, ours_state = ours_tx.update(grads, ours_state)
        theirs, theirs_state = theirs_tx.update(grads, theirs_state)
        expected_var = 0.3 / (1 + t) ** 0.55
        for sample in (
            np.asarray(ours["w"], dtype=np.float64),
            np.asarray(theirs["w"], dtype=np.float64),
        ):
            # 200 000 draws: the standard error of the variance is 0.3 %, of the mean 0.2 % of σ
            assert abs(sample.var() / expected_var - 1) < 0.015
            assert abs(sample.mean()) < 0.01 * np.sqrt(expected_var)
    assert int(ours_state.count) == 3 and ours_state.count.dtype == jnp.int32


@pytest.mark.backend("jax")
def test_transforms_trace_under_jax_jit() -> None:
    import jax
    import jax.numpy as jnp

    params = _jax_tree(_tree(_flax_shapes(), 6), "float32")
    grads = _jax_tree(_tree(_flax_shapes(), 7), "float32")
    tx = T.chain(
        T.add_gradient_noise(variance=0.01, seed=3),
        T.adaptive_gradient_clipping(unit_axis=-1),
        T.clip_by_global_norm(max_norm=1.0),
        T.masked(T.add_l2_decay(decay=0.1), lambda tree: {k: v.ndim > 1 for k, v in tree.items()}),
        T.centralize(),
    )
    state = tx.init(params)
    eager, eager_state = tx.update(grads, state, params)
    jitted, jitted_state = jax.jit(tx.update)(grads, state, params)
    _assert_trees_close(jitted, eager, "float32")
    np.testing.assert_allclose(
        np.asarray(jitted_state[2].norm), np.asarray(eager_state[2].norm), rtol=1e-6
    )
    assert jitted_state[0].count.dtype == jnp.int32
    # a second jitted step continues the noise stream exactly as the eager one
    again, _ = jax.jit(tx.update)(grads, jitted_state, params)
    eager_again, _ = tx.update(grads, eager_state, params)
    _assert_trees_close(again, eager_again, "float32")


@pytest.mark.backend("torch")
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
def test_clip_by_global_norm_equals_torch_clip_grad_norm(dtype_name: str, max_norm: float) -> None:
    import torch

    dtype = getattr(torch, dtype_name)
    shapes = {"conv": (8, 4, 3, 3), "bias": (8,), "fc": (10, 32), "scale": ()}
    host = _tree(shapes, 8)
    grads = {k: torch.asarray(v, dtype=dtype) for k, v in host.items()}
    params = {k: torch.nn.Parameter(torch.zeros_like(v)) for k, v in grads.items()}
    for name, param in params.items():
        param.grad = grads[name].clone()
    total = torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm, foreach=True)
    ours, state = T.clip_by_global_norm(max_norm).update(grads, T.ClipByGlobalNormState(0.0))
    # torch divides by N + 1e-6 where we divide by N: a relative difference of 1e-6 / N
    for name in shapes:
        torch.testing.assert_close(ours[name], params[name].grad, rtol=2e-6, atol=1e-9)
    torch.testing.assert_close(state.norm, total)
