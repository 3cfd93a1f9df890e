"""The gradient penalty trains: it is differentiated again into the critic's parameters
(and a generator's), against hand-written torch.autograd.grad(create_graph=True) and
nested jax.grad references, with train-mode BatchNorm, torch.func, jax.jit, and the
error for operations without double backward.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from arraypenalties import (
    ArrayPenaltiesError,
    BackendError,
    gradient_penalty,
    interpolated_gradient_penalty,
)

LAM = 10.0
BATCH, FEATURES, HIDDEN, NOISE = 8, 3, 16, 4
HOST = np.random.default_rng(7)
FAKE, REAL, NOISE_HOST = (
    HOST.normal(size=(BATCH, FEATURES)),
    HOST.normal(size=(BATCH, FEATURES)),
    HOST.normal(size=(BATCH, NOISE)),
)
ALPHA = HOST.uniform(size=(BATCH, 1))
TOLERANCE = {"float64": 1e-6, "float32": 1e-4}


# ---------------------------------------------------------------- torch


def _torch_critic(dtype: Any, batch_norm: bool = False) -> Any:
    import torch

    torch.manual_seed(0)
    layers: list[Any] = [torch.nn.Linear(FEATURES, HIDDEN)]
    if batch_norm:
        layers.append(torch.nn.BatchNorm1d(HIDDEN))
    layers += [torch.nn.Tanh(), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.Softplus()]
    layers.append(torch.nn.Linear(HIDDEN, 1, bias=False))  # a bias has no gradient here
    return torch.nn.Sequential(*layers).to(dtype).train()


def _torch_reference_gp(critic: Any, fake: Any, real: Any, alpha: Any) -> Any:
    """WGAN-GP as usually hand-written in torch."""
    import torch

    interpolates = alpha * fake + (1 - alpha) * real
    if not interpolates.requires_grad:
        interpolates.requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(interpolates).sum(), interpolates, create_graph=True)
    return ((grads.norm(2, dim=1) - 1) ** 2).mean()


def _torch_parameter_grads(loss: Any, parameters: list[Any]) -> list[np.ndarray]:
    import torch

    return [g.detach().numpy() for g in torch.autograd.grad(loss, parameters)]


def _assert_all_close(actual: list[np.ndarray], desired: list[np.ndarray], rtol: float) -> None:
    assert len(actual) == len(desired)
    for a, d in zip(actual, desired, strict=True):
        np.testing.assert_allclose(a, d, rtol=rtol, atol=rtol * 1e-2)
        assert np.any(d != 0)  # the penalty really reaches every parameter


@pytest.mark.backend("torch")
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
@pytest.mark.parametrize("method", ["auto", "torch.func"])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batchnorm"])
def test_torch_parameter_gradients_match_hand_written(
    dtype_name: str, method: str, batch_norm: bool
) -> None:
    import torch

    if method == "torch.func" and batch_norm:
        pytest.skip("torch.func cannot run train-mode BatchNorm (tested to raise below)")
    dtype = getattr(torch, dtype_name)
    critic = _torch_critic(dtype, batch_norm)
    reference_critic = copy.deepcopy(critic)  # BatchNorm updates its buffers per call
    fake, real, alpha = (torch.asarray(a, dtype=dtype) for a in (FAKE, REAL, ALPHA))

    def critic_loss(model: Any, gp: Any) -> Any:
        return model(fake).mean() - model(real).mean() + LAM * gp

    ours = interpolated_gradient_penalty(
        lambda v: critic(v).sum(), fake, real, alpha=alpha, method=method
    )
    assert ours.requires_grad and ours.dtype == dtype and ours.shape == ()
    ours_grads = _torch_parameter_grads(critic_loss(critic, ours), list(critic.parameters()))
    reference = _torch_reference_gp(reference_critic, fake, real, alpha)
    reference_grads = _torch_parameter_grads(
        critic_loss(reference_critic, reference), list(reference_critic.parameters())
    )
    np.testing.assert_allclose(
        ours.detach().numpy(), reference.detach().numpy(), rtol=TOLERANCE[dtype_name]
    )
    _assert_all_close(ours_grads, reference_grads, TOLERANCE[dtype_name])
    if batch_norm:  # train mode really ran: running statistics moved the same way
        np.testing.assert_allclose(
            critic[1].running_mean.numpy(), reference_critic[1].running_mean.numpy(), rtol=1e-6
        )


@pytest.mark.backend("torch")
@pytest.mark.parametrize("method", ["auto", "torch.func"])
def test_torch_gradients_reach_the_generator(method: str) -> None:
    import torch

    critic = _torch_critic(torch.float64)
    torch.manual_seed(1)
    generator = torch.nn.Sequential(torch.nn.Linear(NOISE, FEATURES), torch.nn.Tanh()).double()
    noise, real = torch.asarray(NOISE_HOST), torch.asarray(REAL)
    seed = 123

    fake = generator(noise)  # not detached
    ours = interpolated_gradient_penalty(
        lambda v: critic(v).sum(), fake, real, rng=seed, method=method
    )
    parameters = list(generator.parameters()) + list(critic.parameters())
    ours_grads = _torch_parameter_grads(ours, parameters)

    alpha = torch.rand(
        (BATCH, 1), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    reference = _torch_reference_gp(critic, generator(noise), real, alpha)
    _assert_all_close(ours_grads, _torch_parameter_grads(reference, parameters), 1e-6)


@pytest.mark.backend("torch")
def test_torch_gradient_penalty_of_detached_input_reaches_parameters() -> None:
    import torch

    critic = _torch_critic(torch.float64)
    x = torch.asarray(REAL)  # no requires_grad: the penalty still depends on the parameters
    ours = gradient_penalty(lambda v: critic(v).sum(), x, batch_axis=0)
    leaf = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(leaf).sum(), leaf, create_graph=True)
    reference = ((g.norm(2, dim=1) - 1) ** 2).mean()
    parameters = list(critic.parameters())
    _assert_all_close(
        _torch_parameter_grads(ours, parameters),
        _torch_parameter_grads(reference, parameters),
        1e-6,
    )
    assert not x.requires_grad and x.grad is None


@pytest.mark.backend("torch")
def test_torch_func_refuses_train_mode_batchnorm() -> None:
    import torch

    critic = _torch_critic(torch.float64, batch_norm=True)
    x = torch.asarray(REAL)
    with pytest.raises(BackendError, match=r"'torch.func' .*BatchNorm.*method='auto'"):
        gradient_penalty(lambda v: critic(v).sum(), x, batch_axis=0, method="torch.func")
    critic.eval()  # no buffer updates in eval mode: torch.func works
    ours = gradient_penalty(lambda v: critic(v).sum(), x, batch_axis=0, method="torch.func")
    auto = gradient_penalty(lambda v: critic(v).sum(), x, batch_axis=0)
    torch.testing.assert_close(ours, auto)


def _attention_fn() -> Any:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    weight = torch.randn(8, 8, dtype=torch.float32, requires_grad=True)

    def fn(v: Any) -> Any:
        h = v @ weight
        return F.scaled_dot_product_attention(h, h, h).sum()

    return fn


@pytest.mark.backend("torch")
def test_torch_missing_double_backward_names_op_and_workarounds() -> None:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    fn = _attention_fn()
    x = torch.randn(2, 2, 6, 8)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            fn(x)
    except RuntimeError as error:  # pragma: no cover - depends on the build
        pytest.skip(f"this torch build has no flash attention kernel on the CPU: {error}")
    with (
        sdpa_kernel(SDPBackend.FLASH_ATTENTION),
        pytest.raises(BackendError, match="without double backward") as info,
    ):
        gradient_penalty(fn, x, batch_axis=0)
    message = str(info.value)
    assert "aten::_scaled_dot_product_flash_attention" in message  # the operation
    assert "SDPBackend.MATH" in message and "output_magnitude_penalty" in message  # workarounds
    assert isinstance(info.value, ArrayPenaltiesError)
    with sdpa_kernel(SDPBackend.MATH):  # the first workaround works
        penalty = gradient_penalty(fn, x, batch_axis=0)
        penalty.backward()
    assert torch.isfinite(penalty)


# ---------------------------------------------------------------- jax


def _jax_init(dtype: Any) -> dict[str, Any]:
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    shapes = {"w1": (FEATURES, HIDDEN), "b1": (HIDDEN,), "w2": (HIDDEN, HIDDEN), "w3": (HIDDEN, 1)}
    return {name: jnp.asarray(0.5 * rng.normal(size=s), dtype=dtype) for name, s in shapes.items()}


def _jax_critic(params: dict[str, Any], x: Any) -> Any:
    import jax
    import jax.numpy as jnp

    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jax.nn.softplus(h @ params["w2"]) @ params["w3"]


def _jax_reference_gp(params: dict[str, Any], fake: Any, real: Any, alpha: Any) -> Any:
    """WGAN-GP as usually hand-written in jax: nested jax.grad."""
    import jax
    import jax.numpy as jnp

    interpolates = alpha * fake + (1 - alpha) * real
    grads = jax.grad(lambda v: jnp.sum(_jax_critic(params, v)))(interpolates)
    norms = jnp.sqrt(jnp.sum(grads**2, axis=1))
    return jnp.mean((norms - 1) ** 2)


def _jax_flat(tree: dict[str, Any]) -> list[np.ndarray]:
    return [np.asarray(tree[name]) for name in sorted(tree)]


@pytest.mark.backend("jax")
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
def test_jax_parameter_gradients_match_nested_grad(dtype_name: str) -> None:
    import jax
    import jax.numpy as jnp

    params = _jax_init(dtype_name)
    fake, real, alpha = (jnp.asarray(a, dtype=dtype_name) for a in (FAKE, REAL, ALPHA))

    def loss(params: dict[str, Any], gp: Any) -> Any:
        return jnp.mean(_jax_critic(params, fake)) - jnp.mean(_jax_critic(params, real)) + LAM * gp

    def ours(params: dict[str, Any]) -> Any:
        fn = lambda v: jnp.sum(_jax_critic(params, v))  # noqa: E731
        return loss(params, interpolated_gradient_penalty(fn, fake, real, alpha=alpha))

    def reference(params: dict[str, Any]) -> Any:
        return loss(params, _jax_reference_gp(params, fake, real, alpha))

    # jitted: eager second order dispatches hundreds of tiny ops (seconds per call);
    # eager nesting is covered by test_zero_gradient_has_finite_second_order
    ours_value, ours_grads = jax.jit(jax.value_and_grad(ours))(params)
    reference_value, reference_grads = jax.jit(jax.value_and_grad(reference))(params)
    assert ours_value.dtype == jnp.dtype(dtype_name)
    rtol = TOLERANCE[dtype_name]
    np.testing.assert_allclose(np.asarray(ours_value), np.asarray(reference_value), rtol=rtol)
    _assert_all_close(_jax_flat(ours_grads), _jax_flat(reference_grads), rtol)


@pytest.mark.backend("jax")
def test_jax_jit_with_key_argument_and_generator_gradients() -> None:
    import jax
    import jax.numpy as jnp

    critic_params = _jax_init("float64")
    generator_params = {"w": jnp.asarray(np.random.default_rng(2).normal(size=(NOISE, FEATURES)))}
    noise, real = jnp.asarray(NOISE_HOST), jnp.asarray(REAL)

    def fake_of(gp: dict[str, Any]) -> Any:
        return jnp.tanh(noise @ gp["w"])

    def ours(params: Any, key: Any) -> Any:
        critic, gen = params
        fn = lambda v: jnp.sum(_jax_critic(critic, v))  # noqa: E731
        return interpolated_gradient_penalty(fn, fake_of(gen), real, rng=key)

    def reference(params: Any, key: Any) -> Any:
        critic, gen = params
        alpha = jax.random.uniform(key, (BATCH, 1), dtype=jnp.float64)
        return _jax_reference_gp(critic, fake_of(gen), real, alpha)

    params = (critic_params, generator_params)
    step = jax.jit(jax.value_and_grad(ours))
    key = jax.random.key(42)
    value, (critic_grads, generator_grads) = step(params, key)
    ref_value, (ref_critic, ref_generator) = jax.jit(jax.value_and_grad(reference))(params, key)
    np.testing.assert_allclose(np.asarray(value), np.asarray(ref_value), rtol=1e-10)
    _assert_all_close(_jax_flat(critic_grads), _jax_flat(ref_critic), 1e-6)
    _assert_all_close(_jax_flat(generator_grads), _jax_flat(ref_generator), 1e-6)
    # same key, same penalty (also compiled); another key, another penalty
    np.testing.assert_array_equal(np.asarray(step(params, key)[0]), np.asarray(value))
    assert np.asarray(step(params, jax.random.key(43))[0]) != np.asarray(value)
    # an int seed is static: it works under jit too
    seeded = jax.jit(lambda p: ours(p, 42))(params)
    np.testing.assert_allclose(np.asarray(seeded), np.asarray(value), rtol=1e-12)


@pytest.mark.backend("jax")
def test_jax_jitted_gradient_penalty_has_no_host_callbacks() -> None:
    import jax
    import jax.numpy as jnp

    params = _jax_init("float64")
    x = jnp.asarray(REAL)
    penalty = lambda p, v: gradient_penalty(  # noqa: E731
        lambda u: jnp.sum(_jax_critic(p, u)), v, batch_axis=0
    )
    jaxpr = str(jax.make_jaxpr(jax.grad(penalty))(params, x))
    assert "callback" not in jaxpr
    np.testing.assert_allclose(
        np.asarray(jax.jit(penalty)(params, x)),
        np.asarray(_jax_reference_gp(params, x, x, jnp.ones((BATCH, 1)))),
        rtol=1e-12,
    )
