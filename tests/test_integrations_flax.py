"""flax activity penalties over sown values: linen and nnx modules, and in the jax train step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arraypenalties import InvalidTypeError, InvalidValueError, UnknownNameError, l1, l2

pytestmark = pytest.mark.backend("jax")
flax = pytest.importorskip("flax", reason="flax is an optional test dependency")


def _linen_model() -> Any:
    from flax import linen as nn

    class Block(nn.Module):
        width: int

        @nn.compact
        def __call__(self, x: Any) -> Any:
            h = nn.relu(nn.Dense(self.width)(x))
            self.sow("intermediates", "act", h)
            self.sow("intermediates", "pre", x)
            return h

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            block = Block(4, name="block")
            h = block(block(x))  # called twice: two values sown under block/act
            h = nn.LayerNorm(name="norm")(h)
            return nn.Dense(3, name="head")(Block(4, name="other")(h))

    return Net()


def _x(dtype: str = "float32") -> Any:
    import jax.numpy as jnp

    return jnp.asarray(np.random.default_rng(0).normal(size=(6, 4)), dtype=dtype)


def test_linen_paths_sum_every_sown_value() -> None:
    import jax

    from arraypenalties.integrations.flax import activity_penalty

    model, x = _linen_model(), _x()
    params = model.init(jax.random.key(0), x)
    _, state = model.apply(params, x, mutable=["intermediates"])
    inter = state["intermediates"]
    acts = [np.asarray(v, dtype=np.float64) for v in inter["block"]["act"]]
    pres = [np.asarray(v, dtype=np.float64) for v in inter["block"]["pre"]]
    assert len(acts) == 2
    l1_acts = sum(np.abs(a).sum() for a in acts)
    l1_block = l1_acts + sum(np.abs(p).sum() for p in pres)
    l2_other = (np.asarray(inter["other"]["act"][0], dtype=np.float64) ** 2).sum()
    value = activity_penalty(inter, {"block/act": (l1, 0.5), "other/act": (l2, 2.0)})
    np.testing.assert_allclose(float(value), 0.5 * l1_acts + 2.0 * l2_other, rtol=1e-5)
    # a module path takes every name sown below it; the whole `state` is accepted too
    whole = activity_penalty(state, {"block": (l1, 1.0)})
    np.testing.assert_allclose(float(whole), l1_block, rtol=1e-5)
    with_opts = activity_penalty(inter, {"block/act": (l1, 1.0, {"reduction": "mean"})})
    np.testing.assert_allclose(float(with_opts), sum(np.abs(a).mean() for a in acts), rtol=1e-5)


def test_linen_gradient_reaches_the_parameters() -> None:
    import jax
    import jax.numpy as jnp

    from arraypenalties.integrations.flax import activity_penalty

    model, x = _linen_model(), _x("float64")
    params = model.init(jax.random.key(1), x)

    def ours(params: Any) -> Any:
        _, state = model.apply(params, x, mutable=["intermediates"])
        return activity_penalty(state["intermediates"], {"other/act": (l2, 0.5)})

    def by_hand(params: Any) -> Any:
        _, state = model.apply(params, x, mutable=["intermediates"])
        return 0.5 * jnp.sum(state["intermediates"]["other"]["act"][0] ** 2)

    mine, ref = jax.grad(ours)(params), jax.grad(by_hand)(params)
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)
    assert any(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(mine))


def test_nnx_intermediate_state() -> None:
    import jax
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.dense = nnx.Linear(4, 4, rngs=rngs)

        def __call__(self, x: Any) -> Any:
            h = jax.nn.relu(self.dense(x))
            self.sow(nnx.Intermediate, "act", h)
            return h

    class Net(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.encoder = Block(rngs)
            self.head = nnx.Linear(4, 2, rngs=rngs)

        def __call__(self, x: Any) -> Any:
            return self.head(self.encoder(self.encoder(x)))

    from arraypenalties.integrations.flax import activity_penalty

    model, x = Net(nnx.Rngs(0)), _x()
    _, inter = nnx.capture(model, nnx.Intermediate)(x)
    acts = nnx.to_pure_dict(inter)["encoder"]["act"]
    assert len(acts) == 2
    expected = 0.1 * sum(np.abs(np.asarray(a, dtype=np.float64)).sum() for a in acts)
    value = activity_penalty(inter, {"encoder/act": (l1, 0.1)})
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    np.testing.assert_allclose(
        float(activity_penalty(inter, {"encoder": (l1, 0.1)})), expected, rtol=1e-5
    )


def test_bad_paths_and_specs() -> None:
    import jax

    from arraypenalties.integrations.flax import activity_penalty

    model, x = _linen_model(), _x()
    _, state = model.apply(model.init(jax.random.key(0), x), x, mutable=["intermediates"])
    inter = state["intermediates"]
    with pytest.raises(UnknownNameError, match=r"'blok/act'.*closest: \['block/act'"):
        activity_penalty(inter, {"blok/act": (l1, 1.0)})
    with pytest.raises(UnknownNameError, match="'norm'"):  # a module that sowed nothing
        activity_penalty(inter, {"norm": (l1, 1.0)})
    with pytest.raises(InvalidValueError, match="non-empty mapping"):
        activity_penalty(inter, {})
    with pytest.raises(InvalidTypeError, match=r"\(penalty, weight\)"):
        activity_penalty(inter, {"block": l1})
    with pytest.raises(InvalidTypeError, match="non-empty str"):
        activity_penalty(inter, {"": (l1, 1.0)})


def test_linen_model_in_the_jax_train_step() -> None:
    import jax
    import jax.numpy as jnp
    import optax

    from arraypenalties.integrations.jax import make_train_step

    model, x = _linen_model(), _x()
    y = jnp.asarray(np.random.default_rng(1).normal(size=(6, 3)), dtype=jnp.float32)
    variables = model.init(jax.random.key(0), x)

    def apply(params: Any, inputs: Any) -> Any:
        return model.apply(params, inputs, mutable=["intermediates"])

    def mse(out: Any, target: Any) -> Any:
        return jnp.mean((out - target) ** 2)

    step = make_train_step(
        apply,
        mse,
        optax.adam(1e-2),
        parameter_penalties={"l2": (l2, 1e-3, {"exclude": r"bias$|norm/"})},
        activity={"block/act": (l1, 1e-2)},
        has_aux=True,
    )
    _, state = apply(variables, x)
    acts = state["intermediates"]["block"]["act"]
    expected_act = sum(np.abs(np.asarray(a, dtype=np.float64)).sum() for a in acts)
    kernels = [
        np.asarray(v, dtype=np.float64)
        for path, v in jax.tree_util.tree_leaves_with_path(variables)
        if jax.tree_util.keystr(path).endswith("['kernel']")
    ]
    assert len(kernels) == 3  # block, other, head; biases and the norm's scale are left out
    params, opt_state, metrics = step(variables, step.init(variables), (x, y), 0)
    np.testing.assert_allclose(float(metrics["activity/block/act"]), expected_act, rtol=1e-5)
    np.testing.assert_allclose(
        float(metrics["param/l2"]), sum((k**2).sum() for k in kernels), rtol=1e-5
    )
    losses = [float(metrics["loss"])]
    for index in range(1, 20):
        params, opt_state, metrics = step(params, opt_state, (x, y), index)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < losses[0]
