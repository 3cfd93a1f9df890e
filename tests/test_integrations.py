"""The optax adapter and the torch optimizer hook."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from arraypenalties import InvalidTypeError, InvalidValueError
from arraypenalties import transforms as T


def test_import_arraypenalties_imports_no_adapter() -> None:
    script = (
        "import sys, arraypenalties, arraypenalties.transforms, arraypenalties.schedules\n"
        "print(sorted(m for m in ('optax', 'torch', 'jax', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------- optax


@pytest.mark.backend("jax")
def test_to_optax_inside_optax_chain_under_jit() -> None:
    import jax
    import jax.numpy as jnp
    import optax

    from arraypenalties.integrations.optax import to_optax

    rng = np.random.default_rng(0)
    params = {
        "kernel": jnp.asarray(rng.normal(size=(4, 3)), dtype=jnp.float32),
        "bias": jnp.zeros(3, dtype=jnp.float32),
    }
    grads = {
        "kernel": jnp.asarray(rng.normal(size=(4, 3)), dtype=jnp.float32),
        "bias": jnp.ones(3, dtype=jnp.float32),
    }
    ours = optax.chain(to_optax(T.clip_by_global_norm(max_norm=0.5)), optax.adam(1e-2))
    theirs = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-2))
    ours_state, theirs_state = ours.init(params), theirs.init(params)
    step = jax.jit(ours.update)
    for _ in range(3):
        ours_updates, ours_state = step(grads, ours_state, params)
        theirs_updates, theirs_state = theirs.update(grads, theirs_state, params)
        for key in params:
            np.testing.assert_allclose(
                np.asarray(ours_updates[key]), np.asarray(theirs_updates[key]), rtol=1e-6
            )
    # optax's extra arguments (e.g. `value` for line searches) are accepted and ignored
    to_optax(T.centralize()).update(grads, T.EmptyState(), params, value=1.0)


@pytest.mark.backend("jax")
def test_to_optax_inside_optax_masked_and_noise_state() -> None:
    import jax
    import jax.numpy as jnp
    import optax

    from arraypenalties.integrations.optax import to_optax

    params = {"w": jnp.ones((2, 2), dtype=jnp.float32), "b": jnp.ones(2, dtype=jnp.float32)}
    grads = {"w": jnp.zeros((2, 2), dtype=jnp.float32), "b": jnp.zeros(2, dtype=jnp.float32)}
    tx = optax.masked(to_optax(T.add_l2_decay(decay=0.5)), {"w": True, "b": False})
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["w"]), 0.5)
    np.testing.assert_allclose(np.asarray(updates["b"]), 0.0)
    noisy = to_optax(T.add_gradient_noise(seed=1))
    state = noisy.init(params)
    _, state = jax.jit(noisy.update)(grads, state)
    assert int(state.count) == 1


@pytest.mark.backend("jax")
def test_to_optax_rejects_non_transforms() -> None:
    from arraypenalties.integrations.optax import to_optax

    with pytest.raises(InvalidTypeError, match="`tx` must be a GradientTransformation"):
        to_optax(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------- torch


def _model(seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _batches(count: int) -> list[tuple[Any, Any]]:
    import torch

    generator = torch.Generator().manual_seed(0)
    return [
        (torch.randn(16, 4, generator=generator), torch.randn(16, 2, generator=generator))
        for _ in range(count)
    ]


def _loss(model: Any, batch: tuple[Any, Any]) -> Any:
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _transform() -> T.GradientTransformation:
    no_bias = lambda tree: {name: not name.endswith("bias") for name in tree}  # noqa: E731
    return T.chain(
        T.adaptive_gradient_clipping(clip_factor=0.05, unit_axis=0),
        T.masked(T.add_l2_decay(decay=0.1), no_bias),
        T.clip_by_global_norm(max_norm=0.3),
        T.add_gradient_noise(variance=1e-4, seed=5),
    )


@pytest.mark.backend("torch")
def test_apply_transforms_matches_the_same_loop_by_hand() -> None:
    import torch

    from arraypenalties.integrations.torch import apply_transforms

    batches = _batches(5)
    hooked = _model(0)
    optimizer = torch.optim.Adam(hooked.parameters(), lr=1e-2)
    hook = apply_transforms(optimizer, _transform(), named_parameters=hooked.named_parameters())
    for batch in batches:
        optimizer.zero_grad()
        _loss(hooked, batch).backward()
        optimizer.step()

    by_hand = _model(0)
    manual_optimizer = torch.optim.Adam(by_hand.parameters(), lr=1e-2)
    tx = _transform()
    names = [name for name, _ in by_hand.named_parameters()]
    state = tx.init({n: p.detach() for n, p in by_hand.named_parameters()})
    for batch in batches:
        manual_optimizer.zero_grad()
        _loss(by_hand, batch).backward()
        grads = {n: p.grad.clone() for n, p in by_hand.named_parameters()}
        params = {n: p.detach().clone() for n, p in by_hand.named_parameters()}
        new, state = tx.update(grads, state, params)
        for name, param in by_hand.named_parameters():
            param.grad = new[name]
        manual_optimizer.step()

    plain = _model(0)  # the transform really changed the training
    plain_optimizer = torch.optim.Adam(plain.parameters(), lr=1e-2)
    for batch in batches:
        plain_optimizer.zero_grad()
        _loss(plain, batch).backward()
        plain_optimizer.step()

    for (name, a), b, c in zip(
        hooked.named_parameters(), by_hand.parameters(), plain.parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
        assert not torch.allclose(a, c)
    assert hook.names == names
    assert int(hook.state[3].count) == 5
    torch.testing.assert_close(hook.state[2].norm, state[2].norm)


@pytest.mark.backend("torch")
def test_hook_is_removable_and_a_context_manager() -> None:
    import torch

    from arraypenalties.integrations.torch import apply_transforms

    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([param], lr=1.0)
    hook = apply_transforms(optimizer, T.clip_by_global_norm(max_norm=1.0))
    param.grad = torch.tensor([3.0, 4.0])
    optimizer.step()
    torch.testing.assert_close(param.detach(), torch.tensor([-0.6, -0.8]))
    torch.testing.assert_close(hook.state.norm, torch.tensor(5.0))
    hook.remove()
    param.grad = torch.tensor([3.0, 4.0])
    optimizer.step()  # no longer clipped
    torch.testing.assert_close(param.detach(), torch.tensor([-3.6, -4.8]))
    with apply_transforms(optimizer, T.clip_by_global_norm(max_norm=1.0)):
        param.grad = torch.tensor([3.0, 4.0])
        optimizer.step()
    param.grad = torch.tensor([3.0, 4.0])
    optimizer.step()
    torch.testing.assert_close(param.detach(), torch.tensor([-7.2, -9.6]))


@pytest.mark.backend("torch")
def test_parameters_without_gradients_keep_none() -> None:
    import torch

    from arraypenalties.integrations.torch import apply_transforms

    used, unused = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([used, unused], lr=1.0)
    hook = apply_transforms(optimizer, T.add_l2_decay(decay=0.5))
    used.grad = torch.zeros(2)
    optimizer.step()
    assert unused.grad is None
    torch.testing.assert_close(used.detach(), torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(unused.detach(), torch.ones(3))
    hook.remove()


@pytest.mark.backend("torch")
def test_torch_adapter_bad_input() -> None:
    import torch

    from arraypenalties.integrations.torch import apply_transforms

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(InvalidTypeError, match=r"`optimizer` must be a torch\.optim\.Optimizer"):
        apply_transforms(object(), T.centralize())  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`tx` must be a GradientTransformation"):
        apply_transforms(optimizer, "clip")  # type: ignore[arg-type]
    with pytest.raises(
        InvalidValueError,
        match="`named_parameters` must name every parameter of the optimizer; 1 of 2",
    ):
        apply_transforms(optimizer, T.centralize(), named_parameters={"weight": model.weight})
    hook = apply_transforms(optimizer, T.centralize())
    model(torch.ones(1, 2)).sum().backward()
    with pytest.raises(
        InvalidValueError,
        match=r"cannot transform gradients that `optimizer.step\(closure\)` computes",
    ):
        optimizer.step(lambda: torch.zeros(()))
    hook.remove()
