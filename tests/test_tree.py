"""tree_penalty: sums over pytrees and named pairs, masks, gradients, tracing, bad input."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest

from arraypenalties import (
    FiniteDifferenceWarning,
    InvalidTypeError,
    InvalidValueError,
    get_backend,
    l1,
    l2,
    tree_penalty,
)
from arraypenalties.testing import as_array, assert_close, to_numpy

W = np.array([[1.0, -2.0], [0.5, 3.0]])
B = np.array([0.25, -1.5])
S = np.array(4.0)


class Pair(NamedTuple):
    kernel: Any
    bias: Any


def _tree(xp: Any, dtype_name: str) -> dict[str, Any]:
    """Nested dict / list / NamedTuple / None; sum of squares = 15.25 + 2.3125 + 16."""
    return {
        "dense": Pair(as_array(xp, W, dtype_name), as_array(xp, B, dtype_name)),
        "extra": [as_array(xp, S, dtype_name), None],
    }


SQUARES = {"kernel": float((W**2).sum()), "bias": float((B**2).sum()), "scale": 16.0}


def test_sum_over_nested_tree(xp: Any, dtype_name: str) -> None:
    result = tree_penalty(l2, _tree(xp, dtype_name), lam=0.5)
    expected = 0.5 * sum(SQUARES.values())
    assert_close(result, as_array(xp, expected, dtype_name))
    if hasattr(result, "compute"):  # dask stays lazy until asked
        assert hasattr(result, "dask")


def test_options_reach_every_leaf(xp: Any, dtype_name: str) -> None:
    result = tree_penalty(l1, _tree(xp, dtype_name), reduction="mean")
    expected = np.abs(W).mean() + np.abs(B).mean() + 4.0
    assert_close(result, as_array(xp, expected, dtype_name))


def test_mask_tree_and_callable_agree(xp: Any, dtype_name: str) -> None:
    tree = _tree(xp, dtype_name)
    as_tree = {"dense": Pair(True, False), "extra": [False, None]}
    by_path = tree_penalty(l2, tree, mask=lambda path, leaf: path == ("dense", "kernel"))
    by_tree = tree_penalty(l2, tree, mask=as_tree)
    expected = as_array(xp, SQUARES["kernel"], dtype_name)
    assert_close(by_path, expected)
    assert_close(by_tree, expected)


def test_mask_callable_sees_paths_and_leaves(xp: Any) -> None:
    seen: list[tuple[Any, tuple[int, ...]]] = []

    def mask(path: tuple[Any, ...], leaf: Any) -> bool:
        seen.append((path, tuple(leaf.shape)))
        return True

    tree_penalty(l2, _tree(xp, "float64"), mask=mask)
    assert seen == [(("dense", "kernel"), (2, 2)), (("dense", "bias"), (2,)), (("extra", 0), ())]


def test_fully_masked_is_zero_of_first_leaf_dtype(xp: Any) -> None:
    tree = {"a": as_array(xp, B, "float32"), "b": as_array(xp, W, "float64")}
    result = tree_penalty(l2, tree, mask=lambda path, leaf: False)
    assert_close(result, as_array(xp, 0.0, "float32"))


def test_mixed_precision_leaves_promote(xp: Any) -> None:
    tree = {"a": as_array(xp, B, "float32"), "b": as_array(xp, W, "float64")}
    result = tree_penalty(l2, tree)
    assert_close(result, as_array(xp, SQUARES["kernel"] + SQUARES["bias"], "float64"), rtol=1e-7)


def test_named_pairs_read_as_dict_by_name(xp: Any, dtype_name: str) -> None:
    pairs = [
        ("layer.weight", as_array(xp, W, dtype_name)),
        ("layer.bias", as_array(xp, B, dtype_name)),
    ]
    paths: list[tuple[Any, ...]] = []

    def no_bias(path: tuple[Any, ...], leaf: Any) -> bool:
        paths.append(path)
        return not path[0].endswith("bias")

    result = tree_penalty(l2, iter(pairs), mask=no_bias)
    assert_close(result, as_array(xp, SQUARES["kernel"], dtype_name))
    assert sorted(paths) == [("layer.bias",), ("layer.weight",)]
    masked = tree_penalty(l2, pairs, mask={"layer.weight": False, "layer.bias": True})
    assert_close(masked, as_array(xp, SQUARES["bias"], dtype_name))


def test_a_single_array_and_a_plain_iterable(xp: Any) -> None:
    x = as_array(xp, W, "float64")
    assert_close(tree_penalty(l2, x), as_array(xp, SQUARES["kernel"], "float64"))
    both = tree_penalty(l2, iter([x, as_array(xp, B, "float64")]))
    assert_close(both, as_array(xp, SQUARES["kernel"] + SQUARES["bias"], "float64"))


def test_gradient_matches_closed_form(grad_xp: Any, dtype_name: str) -> None:
    w, b = as_array(grad_xp, W, dtype_name), as_array(grad_xp, B, dtype_name)
    backend = get_backend(w)

    def loss(x: Any) -> Any:  # d/dx of 0.5·(Σx² + Σb²) with the bias masked out: x
        return tree_penalty(l2, {"w": x, "b": b}, lam=0.5, mask={"w": True, "b": False})

    if backend.exact:
        grad = backend.grad(loss, w)
    else:
        with pytest.warns(FiniteDifferenceWarning):
            grad = backend.grad(loss, w)
    rtol = 1e-4 if (dtype_name == "float32" or not backend.exact) else 1e-12
    np.testing.assert_allclose(to_numpy(grad), W, rtol=rtol, atol=1e-6)


@pytest.mark.backend("jax")
def test_traces_under_jax_jit_and_grad() -> None:
    import jax
    import jax.numpy as jnp

    params = {"kernel": jnp.asarray(W, dtype=jnp.float32), "bias": jnp.asarray(B, jnp.float32)}
    traces = []

    @jax.jit
    def loss(params: Any) -> Any:
        traces.append(1)
        return tree_penalty(l2, params, mask=lambda path, leaf: leaf.ndim > 1, lam=0.5)

    value, grads = jax.value_and_grad(loss)(params)
    np.testing.assert_allclose(float(value), 0.5 * SQUARES["kernel"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grads["kernel"]), W, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(grads["bias"]), np.zeros(2))
    loss(params)
    assert len(traces) == 1


@pytest.mark.backend("torch")
def test_named_parameters_and_torch_compile_fullgraph() -> None:
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    kernel = model[0].weight

    def no_bias_or_norm(path: tuple[Any, ...], leaf: Any) -> bool:
        return not (path[0].endswith("bias") or path[0].startswith("1."))

    eager = tree_penalty(l2, model.named_parameters(), mask=no_bias_or_norm)
    expected = (kernel.detach().double() ** 2).sum()
    np.testing.assert_allclose(float(eager.detach()), float(expected), rtol=1e-6)
    eager.backward()
    np.testing.assert_allclose(kernel.grad.numpy(), 2 * kernel.detach().numpy(), rtol=1e-6)
    assert model[0].bias.grad is None

    params = dict(model.named_parameters())
    compiled = torch.compile(
        lambda p: tree_penalty(l2, p, mask=no_bias_or_norm), fullgraph=True, backend="eager"
    )
    np.testing.assert_allclose(float(compiled(params).detach()), float(expected), rtol=1e-6)


def test_bad_input(xp: Any) -> None:
    x = as_array(xp, W, "float64")
    with pytest.raises(InvalidValueError, match="`tree` must hold at least one array"):
        tree_penalty(l2, {"a": [], "b": None})
    with pytest.raises(InvalidTypeError, match="`tree` must be"):
        tree_penalty(l2, "weights")
    with pytest.raises(InvalidTypeError, match="`penalty` must be callable"):
        tree_penalty("l2", {"a": x})
    with pytest.raises(InvalidValueError, match="`mask` and `tree` must have the same"):
        tree_penalty(l2, {"a": x, "b": x}, mask={"a": True})
    with pytest.raises(InvalidTypeError, match=r"`mask` must give a Python bool.*\('a',\)"):
        tree_penalty(l2, {"a": x}, mask=lambda path, leaf: xp.asarray(True))
    with pytest.raises(InvalidValueError, match="names 'w' twice"):
        tree_penalty(l2, [("w", x), ("w", x)])
    with pytest.raises(InvalidValueError, match=r"0-d array.*\('a',\).*shape \(2, 2\)"):
        tree_penalty(l2, {"a": x}, reduction="none")
    with pytest.raises(InvalidTypeError, match="must have a real floating dtype"):
        tree_penalty(l2, {"a": xp.asarray([1, 2])})


def test_mixed_namespaces_name_both_leaves() -> None:
    torch = pytest.importorskip("torch", reason="a second namespace is needed")
    tree = {"a": np.ones(2), "b": torch.ones(2)}
    with pytest.raises(InvalidTypeError, match=r"tree leaf \('a',\).*tree leaf \('b',\)"):
        tree_penalty(l2, tree)
