"""The torch optimizer hook: apply_transforms, TransformHook, TransformRunner."""

from __future__ import annotations

import io
from typing import Any

import pytest

from arraypenalties import InvalidTypeError, InvalidValueError
from arraypenalties import transforms as T


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


@pytest.mark.backend("torch")
def test_a_param_group_added_later_is_transformed_too() -> None:
    import torch

    from arraypenalties.integrations.torch import apply_transforms

    first, later = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(4))
    optimizer = torch.optim.SGD([first], lr=1.0)
    hook = apply_transforms(optimizer, T.clip_by_global_norm(max_norm=1e-3))
    optimizer.add_param_group({"params": [later]})
    first.grad = torch.full((3,), 100.0)
    later.grad = torch.full((4,), 100.0)
    optimizer.step()
    # one global norm over both groups: sqrt(7) · 100, scaled to 1e-3
    steps = torch.cat([first.detach(), later.detach()])
    torch.testing.assert_close(torch.linalg.vector_norm(steps), torch.tensor(1e-3))
    torch.testing.assert_close(hook.state.norm, torch.tensor(7**0.5 * 100.0))
    hook.remove()


@pytest.mark.backend("torch")
def test_a_param_group_added_later_needs_names_when_the_trees_are_named() -> None:
    import torch

    from arraypenalties.integrations.torch import apply_transforms

    model = torch.nn.Linear(2, 1)
    stranger = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([model.weight], lr=1.0)
    hook = apply_transforms(optimizer, T.centralize(), named_parameters=model.named_parameters())
    optimizer.add_param_group({"params": [model.bias]})  # named by the model: fine
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    assert hook.names == ["weight", "bias"]
    optimizer.add_param_group({"params": [stranger]})
    with pytest.raises(InvalidValueError, match="`named_parameters` must name every parameter"):
        optimizer.step()
    hook.remove()


@pytest.mark.backend("torch")
def test_a_state_that_depends_on_the_parameters_refuses_new_groups() -> None:
    import torch

    from arraypenalties.integrations.torch import apply_transforms

    def init(params: Any) -> Any:
        return [torch.zeros_like(p) for p in params]  # per-parameter state (momentum-like)

    def update(updates: Any, state: Any, params: Any = None) -> Any:
        return updates, state

    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([a], lr=1.0)
    hook = apply_transforms(optimizer, T.GradientTransformation(init, update))
    optimizer.add_param_group({"params": [b]})
    with pytest.raises(InvalidValueError, match="state depends on the parameters"):
        optimizer.step()
    hook.remove()


def _checkpointed_run(steps_before: int, steps_after: int, *, restore: bool = True) -> Any:
    """Adam + a stateful transform; optionally saved after ``steps_before`` and reloaded."""
    import torch

    from arraypenalties.integrations.torch import apply_transforms

    batches = _batches(steps_before + steps_after)
    model = _model(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    hook = apply_transforms(optimizer, _transform(), named_parameters=model.named_parameters())
    for batch in batches[:steps_before]:
        optimizer.zero_grad()
        _loss(model, batch).backward()
        optimizer.step()
    if steps_after and steps_before:
        buffer = io.BytesIO()
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "transforms": hook.state_dict(),
            },
            buffer,
        )
        hook.remove()
        buffer.seek(0)
        checkpoint = torch.load(buffer, weights_only=True)
        model = _model(1)  # a fresh process: other initial values, all overwritten
        model.load_state_dict(checkpoint["model"])
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        optimizer.load_state_dict(checkpoint["optimizer"])
        hook = apply_transforms(optimizer, _transform(), named_parameters=model.named_parameters())
        if restore:
            hook.load_state_dict(checkpoint["transforms"])
    for batch in batches[steps_before:]:
        optimizer.zero_grad()
        _loss(model, batch).backward()
        optimizer.step()
    hook.remove()
    return model


@pytest.mark.backend("torch")
def test_transform_state_checkpoints_with_the_optimizer_bit_for_bit() -> None:
    import torch

    uninterrupted = _checkpointed_run(6, 0)
    resumed = _checkpointed_run(3, 3)
    restarted = _checkpointed_run(3, 3, restore=False)  # the noise restarts at t = 0
    for (name, a), b, c in zip(
        uninterrupted.named_parameters(), resumed.parameters(), restarted.parameters(), strict=True
    ):
        assert torch.equal(a, b), name
        assert not torch.equal(a, c), name


@pytest.mark.backend("torch")
def test_transform_state_dict_is_a_copy_and_checks_what_it_loads() -> None:
    import torch

    from arraypenalties.integrations.torch import apply_transforms

    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([param], lr=1.0)
    hook = apply_transforms(optimizer, T.clip_by_global_norm(max_norm=1.0))
    param.grad = torch.tensor([3.0, 4.0])
    optimizer.step()
    saved = hook.state_dict()
    assert saved == {"leaves": [torch.tensor(5.0)], "names": None}
    param.grad = torch.tensor([6.0, 8.0])
    optimizer.step()
    torch.testing.assert_close(saved["leaves"][0], torch.tensor(5.0))  # not changed by steps
    hook.load_state_dict(saved)
    torch.testing.assert_close(hook.state.norm, torch.tensor(5.0))
    with pytest.raises(
        InvalidValueError, match="holds 2 state leaves; this transform's state has 1"
    ):
        hook.load_state_dict({"leaves": [1, 2], "names": None})
    with pytest.raises(InvalidValueError, match="keys 'leaves' and 'names'"):
        hook.load_state_dict({"norm": 1.0})
    with pytest.raises(InvalidValueError, match="names parameters"):
        hook.load_state_dict({"leaves": [torch.tensor(1.0)], "names": ["w"]})
    hook.remove()
