"""torch: make_train_step against a hand-written loop; metrics, schedules, tracking, AMP."""

from __future__ import annotations

import copy
import io
import math
from typing import Any

import pytest

from arraypenalties import (
    GradientTrackingWarning,
    InvalidTypeError,
    InvalidValueError,
    MultiPipeline,
    Pipeline,
    UnknownNameError,
)
from arraypenalties import transforms as T
from arraypenalties.schedules import linear, weight_schedule

pytestmark = pytest.mark.backend("torch")
torch = pytest.importorskip("torch", reason="the torch integrations need torch")

from arraypenalties.integrations.torch import (  # noqa: E402
    ActivityRegularizer,
    make_train_step,
)

mse = torch.nn.functional.mse_loss


def _model(dtype: Any = torch.float64, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(
        dtype
    )


def _batches(count: int, dtype: Any = torch.float64, size: int = 16) -> list[tuple[Any, Any]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(size, 4, generator=generator, dtype=dtype),
            torch.randn(size, 3, generator=generator, dtype=dtype),
        )
        for _ in range(count)
    ]


def _transform() -> T.GradientTransformation:
    return T.chain(T.clip_by_global_norm(max_norm=0.5), T.add_gradient_noise(variance=1e-4, seed=3))


PENALTIES = Pipeline().add("l1", "l1", weight=0.0).add("l2", "l2", weight=0.01)
L1_RAMP = linear(0.0, 1e-2, steps=4)


def _train_step(model: Any, optimizer: Any, **options: Any) -> Any:
    return make_train_step(
        model,
        mse,
        optimizer,
        penalties=PENALTIES,
        parameter_penalties={"decay": ("l2", 1e-3, {"exclude": "bias$"})},
        activity={"1": ("l1", 1e-2)},
        transforms=_transform(),
        weight_schedules={"l1": L1_RAMP},
        **options,
    )


def test_train_step_matches_the_hand_written_loop() -> None:
    batches = _batches(6)
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    logged: list[tuple[int, dict[str, Any]]] = []
    step = _train_step(model, optimizer, log=lambda m, s: logged.append((s, m)))
    ours = [step(x, y) for x, y in batches]
    assert [s for s, _ in logged] == list(range(6)) and step.step == 6
    assert [m for _, m in logged] == ours
    assert not optimizer._optimizer_step_pre_hooks  # the step left no hook behind

    by_hand = _model()
    hand_optimizer = torch.optim.SGD(by_hand.parameters(), lr=0.05, momentum=0.9)
    tx = _transform()
    state = tx.init({n: p.detach() for n, p in by_hand.named_parameters()})
    for index, (x, y) in enumerate(batches):
        w_l1 = L1_RAMP(index)
        hidden = torch.tanh(by_hand[0](x))
        out = by_hand[2](hidden)
        base = mse(out, y)
        l1, l2 = out.abs().sum(), (out**2).sum()
        decay = sum((p**2).sum() for n, p in by_hand.named_parameters() if n.endswith("weight"))
        act = hidden.abs().sum()
        penalty = w_l1 * l1 + 0.01 * l2 + 1e-3 * decay + 1e-2 * act
        loss = base + penalty
        names = [n for n, _ in by_hand.named_parameters()]
        grads = torch.autograd.grad(loss, list(by_hand.parameters()))
        params = {n: p.detach().clone() for n, p in by_hand.named_parameters()}
        new, state = tx.update(dict(zip(names, grads, strict=True)), state, params)
        for name, param in by_hand.named_parameters():
            param.grad = new[name]
        hand_optimizer.step()
        hand_optimizer.zero_grad()
        expected = {
            "loss": loss,
            "base_loss": base,
            "penalty_total": penalty,
            "l1": l1,
            "l1_weighted": w_l1 * l1,
            "l2": l2,
            "l2_weighted": 0.01 * l2,
            "total": w_l1 * l1 + 0.01 * l2,
            "param/decay": decay,
            "param/decay_weighted": 1e-3 * decay,
            "activity/1": act,
            "activity/1_weighted": 1e-2 * act,
        }
        assert list(ours[index]) == list(expected)
        for key, value in expected.items():
            assert ours[index][key] == pytest.approx(float(value.detach()), rel=1e-12, abs=1e-15), (
                key
            )
    for (name, a), b in zip(model.named_parameters(), by_hand.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=name)


def test_metrics_come_from_one_host_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    from arraypenalties.backends import primitives

    transfers: list[int] = []
    real = primitives.to_floats
    monkeypatch.setattr(primitives, "to_floats", lambda values: transfers.append(1) or real(values))
    syncs: list[str] = []
    for method in ("item", "tolist", "__float__", "__bool__"):
        original = getattr(torch.Tensor, method)

        def counting(self: Any, *args: Any, _name: str = method, _orig: Any = original) -> Any:
            syncs.append(_name)
            return _orig(self, *args)

        monkeypatch.setattr(torch.Tensor, method, counting)
    model = _model()
    step = _train_step(model, torch.optim.SGD(model.parameters(), lr=0.01), track_every=1)
    for x, y in _batches(3):
        metrics = step(x, y)
    assert "l1_grad_norm" in metrics
    assert len(transfers) == 3
    assert syncs == ["tolist"] * 3  # the one conversion inside to_floats, nothing else


def test_tracked_steps_add_the_gradient_norms_with_respect_to_the_output() -> None:
    batches = _batches(3)
    model = _model()
    before = copy.deepcopy(model)
    step = make_train_step(
        model,
        mse,
        torch.optim.SGD(model.parameters(), lr=0.01),
        penalties=Pipeline().add("l1", "l1", weight=0.5).add("l2", "l2", weight=0.25),
        track_every=2,
    )
    metrics = [step(x, y) for x, y in batches]
    assert "l1_grad_norm" in metrics[0] and "l1_grad_norm" in metrics[2]
    assert not any("grad_norm" in key for key in metrics[1])
    with torch.no_grad():
        out = before(batches[0][0])
    # ∇ Σ|o| = sign(o), ∇ Σ o² = 2o, and the total by linearity
    assert metrics[0]["l1_grad_norm"] == pytest.approx(math.sqrt(out.numel()), rel=1e-12)
    assert metrics[0]["l2_grad_norm"] == pytest.approx(float(2 * out.norm()), rel=1e-12)
    total = torch.linalg.vector_norm(0.5 * torch.sign(out) + 0.25 * 2 * out)
    assert metrics[0]["total_grad_norm"] == pytest.approx(float(total), rel=1e-12)


def test_tracking_failure_is_reported_not_raised() -> None:
    model = _model()
    penalties = Pipeline().add("argmax", lambda x: torch.argmax(x)).add("l1", "l1")
    step = make_train_step(
        model, mse, torch.optim.SGD(model.parameters(), lr=0.01), penalties=penalties, track_every=1
    )
    with pytest.warns(GradientTrackingWarning, match="gradient computation failed for 'argmax'"):
        metrics = step(*_batches(1)[0])
    assert metrics["argmax_grad_norm"] is None and metrics["argmax_grad_norm_error"] is True
    assert metrics["total_grad_norm"] is None and metrics["l1_grad_norm"] > 0
    assert isinstance(metrics["argmax"], float)


def test_schedules_reach_parameter_and_activity_weights() -> None:
    model = _model()
    schedule = weight_schedule(
        {"param/decay": linear(0.0, 1.0, steps=2), "activity/1": {"kind": "constant", "value": 3}}
    )
    step = make_train_step(
        model,
        mse,
        torch.optim.SGD(model.parameters(), lr=1e-3),
        parameter_penalties={"decay": ("l2", 1.0)},
        activity={"1": ("l1", 1.0)},
        weight_schedules=schedule,
    )
    for index, (x, y) in enumerate(_batches(3)):
        metrics = step(x, y)
        ratio = metrics["param/decay_weighted"] / metrics["param/decay"]
        assert ratio == pytest.approx(min(index / 2, 1.0), abs=1e-15)
        assert metrics["activity/1_weighted"] == pytest.approx(3 * metrics["activity/1"])


def test_autocast_bf16_on_the_cpu() -> None:
    model = _model(torch.float32)
    seen: list[Any] = []
    model[2].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    step = _train_step(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05),
        autocast={"device_type": "cpu", "dtype": torch.bfloat16},
    )
    x, y = _batches(1, torch.float32, size=64)[0]
    losses = [step(x, y)["base_loss"] for _ in range(30)]
    assert seen[0] == torch.bfloat16
    assert all(math.isfinite(value) for value in losses) and losses[-1] < 0.9 * losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the user's own block works too
        step(x, y)
    assert seen[-1] == torch.bfloat16


def test_compiled_model_trains_like_the_eager_one() -> None:
    import torch._dynamo

    batches = _batches(3)
    eager, compiled_source = _model(), _model()
    compiled = torch.compile(compiled_source, backend="eager")
    runs = []
    for model in (eager, compiled):
        step = _train_step(model, torch.optim.SGD(model.parameters(), lr=0.05))
        runs.append([step(x, y) for x, y in batches])
    torch._dynamo.reset()
    for ours, reference in zip(runs[1], runs[0], strict=True):
        assert ours == pytest.approx(reference, rel=1e-12)
        assert ours["activity/1"] > 0  # the hook ran inside the compiled module
    for a, b in zip(compiled_source.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def _resumable(steps_before: int, steps_after: int) -> Any:
    batches = _batches(steps_before + steps_after)
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    step = _train_step(model, optimizer)
    metrics = [step(x, y) for x, y in batches[:steps_before]]
    if steps_before and steps_after:
        buffer = io.BytesIO()
        torch.save(
            {"model": model.state_dict(), "opt": optimizer.state_dict(), "step": step.state_dict()},
            buffer,
        )
        step.close()
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
        model = _model(seed=5)
        model.load_state_dict(saved["model"])
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        optimizer.load_state_dict(saved["opt"])
        step = _train_step(model, optimizer)
        step.load_state_dict(saved["step"])
    metrics += [step(x, y) for x, y in batches[steps_before:]]
    return model, metrics[-1], step.step


def test_a_resumed_run_matches_the_uninterrupted_one_bit_for_bit() -> None:
    whole, whole_metrics, whole_steps = _resumable(6, 0)
    resumed, resumed_metrics, resumed_steps = _resumable(3, 3)
    assert whole_steps == resumed_steps == 6
    assert whole_metrics == resumed_metrics  # same scheduled weights, same noise
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_close_removes_only_the_hooks_the_step_made() -> None:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    owned = make_train_step(model, mse, optimizer, activity={"1": ("l1", 1.0)})
    owned.close()
    assert not model[1]._forward_hooks
    regularizer = ActivityRegularizer(model, {"1": ("l1", 1.0)})
    shared = make_train_step(model, mse, optimizer, activity=regularizer)
    shared.close()
    assert len(model[1]._forward_hooks) == 1
    regularizer.remove()


def test_make_train_step_bad_input() -> None:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(InvalidTypeError, match=r"`model` must be a torch\.nn\.Module"):
        make_train_step(lambda x: x, mse, optimizer)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`loss_fn` must be callable"):
        make_train_step(model, "mse", optimizer)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`optimizer` must be a torch"):
        make_train_step(model, mse, object())  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match=r"`penalties` must be an arraypenalties\.Pipeline"):
        make_train_step(model, mse, optimizer, penalties=MultiPipeline())
    with pytest.raises(InvalidTypeError, match=r"`parameter_penalties\['d'\]` must be"):
        make_train_step(model, mse, optimizer, parameter_penalties={"d": ("l2",)})
    with pytest.raises(UnknownNameError, match="unknown keys \\['exclud'\\]"):
        make_train_step(
            model, mse, optimizer, parameter_penalties={"d": ("l2", 1.0, {"exclud": "bias"})}
        )
    with pytest.raises(UnknownNameError, match=r"names \['l3'\], which are not penalties"):
        make_train_step(model, mse, optimizer, penalties=PENALTIES, weight_schedules={"l3": 1.0})
    with pytest.raises(
        InvalidValueError, match=r"`track_every` must be an int in \[0, inf\]; got -1"
    ):
        make_train_step(model, mse, optimizer, track_every=-1)
    with pytest.raises(InvalidTypeError, match="`total_steps` must be an int"):
        make_train_step(model, mse, optimizer, total_steps=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`log` must be callable"):
        make_train_step(model, mse, optimizer, log=print if False else 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`autocast` must be a mapping"):
        make_train_step(model, mse, optimizer, autocast="bf16")  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`activity` must be an ActivityRegularizer"):
        make_train_step(model, mse, optimizer, activity=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`weight_schedules` must be a WeightSchedule"):
        make_train_step(model, mse, optimizer, weight_schedules=3)  # type: ignore[arg-type]
    bad = Pipeline().add("vector", lambda x: x.sum(dim=0))
    step = make_train_step(model, mse, optimizer, penalties=bad)
    with pytest.raises(InvalidValueError, match="entry 'vector' must return a 0-d tensor"):
        step(*_batches(1)[0])


def test_a_schedule_function_can_count_in_epochs() -> None:
    model = _model()
    by_epoch = weight_schedule({"l2": linear(0.0, 1.0, steps=2)})
    seen: list[float] = []
    step = make_train_step(
        model,
        mse,
        torch.optim.SGD(model.parameters(), lr=1e-3),
        penalties=Pipeline().add("l2", "l2", weight=0.0),
        weight_schedules=lambda step, total: by_epoch(step / 4, total),
        log=lambda metrics, index: seen.append(metrics["l2_weighted"] / metrics["l2"]),
    )
    for x, y in _batches(10):
        step(x, y)
    assert seen == pytest.approx([min(i / 8, 1.0) for i in range(10)], abs=1e-15)
    wrong = make_train_step(
        model,
        mse,
        torch.optim.SGD(model.parameters(), lr=1e-3),
        weight_schedules=lambda s, t: {"x": 1.0},
    )
    with pytest.raises(UnknownNameError, match=r"names \['x'\], which are not penalties"):
        wrong(*_batches(1)[0])
