"""torch: wrap_loss, wrap_loss_with_pipeline, parameter_penalty and ActivityRegularizer."""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from typing import Any

import pytest

from arraypenalties import (
    InvalidTypeError,
    InvalidValueError,
    MultiPipeline,
    Pipeline,
    UnknownNameError,
)

pytestmark = pytest.mark.backend("torch")
torch = pytest.importorskip("torch", reason="the torch integrations need torch")

from arraypenalties.integrations.torch import (  # noqa: E402
    ActivityRegularizer,
    parameter_penalty,
    select_parameters,
    wrap_loss,
    wrap_loss_with_pipeline,
)

DTYPES = [torch.float32, torch.float64]


def _mse(prediction: Any, target: Any, *, reduction: str = "mean") -> Any:
    return torch.nn.functional.mse_loss(prediction, target, reduction=reduction)


# ---------------------------------------------------------------- wrap_loss


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_wrap_loss_adds_the_weighted_penalty_and_its_gradient(dtype: Any) -> None:
    prediction = torch.tensor([1.0, -2.0, 3.0], dtype=dtype, requires_grad=True)
    target = torch.tensor([0.0, 0.0, 1.0], dtype=dtype)
    loss = wrap_loss(_mse, "l1", weight=0.1)(prediction, target)
    # mse = (1 + 4 + 4) / 3 = 3, l1 = 6
    assert loss.dtype == dtype and loss.shape == ()
    torch.testing.assert_close(loss, torch.tensor(3.0 + 0.6, dtype=dtype))
    loss.backward()
    expected = 2 * (prediction.detach() - target) / 3 + 0.1 * torch.sign(prediction.detach())
    torch.testing.assert_close(prediction.grad, expected)


def test_wrap_loss_argnum_opts_kwargs_and_name() -> None:
    prediction, target = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])
    wrapped = wrap_loss(_mse, lambda x, *, lam: lam * torch.sum(x), argnum=1, opts={"lam": 2.0})
    assert wrapped.__name__ == "_mse"
    # the loss's own keyword arguments pass through: sum of squares 8, plus 2 · (3 + 4)
    torch.testing.assert_close(wrapped(prediction, target, reduction="sum"), torch.tensor(22.0))


def test_wrap_loss_with_pipeline_adds_the_total() -> None:
    penalties = Pipeline().add("l1", "l1", weight=0.1).add("l2", "l2", weight=0.01)
    loss = wrap_loss_with_pipeline(_mse, penalties)
    x = torch.tensor([1.0, 2.0])
    torch.testing.assert_close(loss(x, x), torch.tensor(0.35))  # SPEC §5 parity
    torch.testing.assert_close(
        wrap_loss_with_pipeline(_mse, penalties, argnum=1)(x, 2 * x), torch.tensor(2.5 + 0.6 + 0.2)
    )


def test_wrap_loss_bad_input() -> None:
    with pytest.raises(InvalidTypeError, match=r"`loss_fn` must be callable; got builtins\.int"):
        wrap_loss(3, "l1")  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError, match="`penalty` 'kl' is not a one-input built-in"):
        wrap_loss(_mse, "kl")
    with pytest.raises(InvalidTypeError, match="`penalty` must be a function"):
        wrap_loss(_mse, 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`weight` must be a real number"):
        wrap_loss(_mse, "l1", weight="big")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match=r"`argnum` must be an int in \[0, inf\]; got -1"):
        wrap_loss(_mse, "l1", argnum=-1)
    with pytest.raises(InvalidTypeError, match="`opts` must be a mapping"):
        wrap_loss(_mse, "l1", opts=[1])  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="`argnum` is 2 but the loss was called with 2"):
        wrap_loss(_mse, "l1", argnum=2)(torch.ones(1), torch.ones(1))
    with pytest.raises(InvalidTypeError, match=r"`pipeline` must be an arraypenalties\.Pipeline"):
        wrap_loss_with_pipeline(_mse, MultiPipeline())  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`loss_fn` must be callable"):
        wrap_loss_with_pipeline(None, Pipeline())  # type: ignore[arg-type]


# ---------------------------------------------------------------- parameter_penalty


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(2, 2)
        self.norm = torch.nn.LayerNorm(2)
        self.head = torch.nn.Linear(2, 1)
        with torch.no_grad():
            for index, param in enumerate(self.parameters()):
                param.copy_(torch.arange(param.numel(), dtype=param.dtype).reshape(param.shape))
                param.add_(index)

    def forward(self, x: Any) -> Any:
        return self.head(self.norm(self.hidden(x)))


def test_parameter_penalty_selects_by_name() -> None:
    net = _Net()
    names = [name for name, _ in net.named_parameters()]
    assert names == [
        f"{layer}.{kind}" for layer in ("hidden", "norm", "head") for kind in ("weight", "bias")
    ]
    kept = select_parameters(net, exclude=r"bias$|norm")
    assert [name for name, _ in kept] == ["hidden.weight", "head.weight"]
    # hidden.weight = [[0, 1], [2, 3]], head.weight = [[4, 5]]: Σ w² = 14 + 41
    value = parameter_penalty(net, "l2", weight=0.5, exclude=r"bias$|norm")
    torch.testing.assert_close(value, torch.tensor(0.5 * 55.0))
    value.backward()
    torch.testing.assert_close(net.hidden.weight.grad, net.hidden.weight.detach())
    assert net.hidden.bias.grad is None and net.norm.weight.grad is None
    only_head = parameter_penalty(net.named_parameters(), "l1", include=lambda n: "head" in n)
    torch.testing.assert_close(only_head, torch.tensor(4.0 + 5.0 + 5.0))  # head.bias = [5]
    mapping = {"a": torch.tensor([1.0, -1.0], dtype=torch.float64)}
    same = parameter_penalty(mapping, lambda p, *, lam: lam * p.abs().sum(), opts={"lam": 3.0})
    assert same.dtype == torch.float64
    torch.testing.assert_close(same, torch.tensor(6.0, dtype=torch.float64))


def test_parameter_penalty_names_through_compile_and_ddp_wrappers() -> None:
    net = _Net()
    compiled = torch.compile(net, backend="eager")  # names only: nothing is compiled
    assert [n for n, _ in select_parameters(compiled, include="weight$")] == [
        "hidden.weight",
        "norm.weight",
        "head.weight",
    ]


def test_parameter_penalty_bad_input() -> None:
    net = _Net()
    with pytest.raises(InvalidValueError, match=r"select no parameter; the parameters are"):
        parameter_penalty(net, "l2", include="^encoder")
    with pytest.raises(InvalidValueError, match="`exclude` must be a valid regular expression"):
        parameter_penalty(net, "l2", exclude="(")
    with pytest.raises(InvalidTypeError, match="`include` must be a regular expression"):
        parameter_penalty(net, "l2", include=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`module_or_named_parameters` must be"):
        parameter_penalty(torch.ones(2), "l2")
    with pytest.raises(InvalidTypeError, match="`module_or_named_parameters` must be"):
        parameter_penalty([("w", 1.0)], "l2")
    with pytest.raises(UnknownNameError, match="`penalty` 'l3'"):
        parameter_penalty(net, "l3")


# ---------------------------------------------------------------- ActivityRegularizer


class _Twice(torch.nn.Module):
    """Calls its hidden block twice (a shared block): each call adds its own term."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())
        self.decoder = torch.nn.Linear(3, 2)

    def forward(self, x: Any) -> Any:
        return self.decoder(self.encoder(self.encoder(x)))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_activity_sums_every_call_and_resets(dtype: Any) -> None:
    torch.manual_seed(0)
    model = _Twice().to(dtype)
    x = torch.randn(4, 3, dtype=dtype)
    with ActivityRegularizer(model, {"encoder": ("l1", 0.5), "decoder": ("l2", 0.1)}) as act:
        model(x)
        linear = torch.nn.functional.linear  # by hand: calling the modules would add terms
        with torch.no_grad():
            first = torch.relu(linear(x, model.encoder[0].weight, model.encoder[0].bias))
            second = torch.relu(linear(first, model.encoder[0].weight, model.encoder[0].bias))
            out = linear(second, model.decoder.weight, model.decoder.bias)
        raw_encoder = first.abs().sum() + second.abs().sum()
        raw_decoder = (out**2).sum()
        metrics = act.metrics()
        assert list(metrics) == ["encoder", "encoder_weighted", "decoder", "decoder_weighted"]
        assert metrics["encoder"] == pytest.approx(float(raw_encoder), rel=1e-6)
        assert metrics["decoder_weighted"] == pytest.approx(0.1 * float(raw_decoder), rel=1e-6)
        loss = act.loss()
        assert loss.dtype == dtype and loss.requires_grad
        torch.testing.assert_close(loss.detach(), 0.5 * raw_encoder + 0.1 * raw_decoder)
        zero = act.loss()  # reset by the first call
        assert zero.dtype == dtype and float(zero) == 0.0
        assert act.metrics()["encoder"] == 0.0
    model(x)  # removed on exit: nothing is captured any more
    assert float(act.loss()) == 0.0


def test_activity_per_sample_pipeline_and_gradient() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, -2.0], [3.0, 4.0], [0.5, 0.5]])
    penalties = Pipeline().add("l1", "l1", weight=0.2).add("l2", "l2", weight=0.1)
    act = ActivityRegularizer(model, {"0": penalties}, per_sample=True)
    model(x)
    loss = act.loss()
    # identity layer: l1 = 11, l2 = 30.5; divided by the batch size 3
    torch.testing.assert_close(loss, torch.tensor((0.2 * 11 + 0.1 * 30.5) / 3))
    loss.backward()
    # d/dW Σ_i (0.2‖Wx_i‖₁ + 0.1‖Wx_i‖²)/3 at W = I
    expected = (0.2 * torch.sign(x) + 0.2 * x).T @ x / 3
    torch.testing.assert_close(model[0].weight.grad, expected.T)
    act.remove()


def test_activity_metrics_use_one_host_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    from arraypenalties.backends import primitives

    calls = []
    real = primitives.to_floats
    monkeypatch.setattr(primitives, "to_floats", lambda values: calls.append(1) or real(values))
    model = _Twice()
    act = ActivityRegularizer(model, {"encoder": ("l1", 1.0), "decoder": ("l2", 1.0)})
    model(torch.ones(2, 3))
    act.metrics()
    assert len(calls) == 1
    act.remove()


def test_activity_releases_every_captured_tensor_over_1000_steps() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    alive: weakref.WeakSet[Any] = weakref.WeakSet()  # forgets what was freed
    captured = []

    def watched_l1(x: Any) -> Any:
        value = x.abs().mean()
        alive.add(x)  # the activity, which the graph keeps
        alive.add(value)
        captured.append(2)
        return value

    act = ActivityRegularizer(model, {"1": (watched_l1, 1e-2)})
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    tracemalloc.start()
    try:
        for step in range(1000):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y) + act.loss()
            loss.backward()
            optimizer.step()
            if step == 99:
                gc.collect()
                early, _ = tracemalloc.get_traced_memory()
        del loss
        gc.collect()
        late, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(captured) == 2000
    assert len(alive) == 0
    assert late - early < 64 * 1024  # Python-side memory stays flat (each step is ~2 KB)
    # the check can fail: without .loss() the captured values (and graphs) pile up
    for _ in range(5):
        model(x)
    gc.collect()
    assert len(alive) == 10
    act.clear()
    gc.collect()
    assert len(alive) == 0
    act.remove()


def test_activity_weights_and_bad_input() -> None:
    model = _Twice()
    with pytest.raises(UnknownNameError, match=r"path 'encodr' is not a submodule.*'encoder'"):
        ActivityRegularizer(model, {"encodr": ("l1", 1.0)})
    with pytest.raises(InvalidTypeError, match="must be a \\(penalty, weight\\) pair"):
        ActivityRegularizer(model, {"encoder": "l1"})  # type: ignore[dict-item]
    with pytest.raises(InvalidTypeError, match="non-empty mapping"):
        ActivityRegularizer(model, {})
    with pytest.raises(
        InvalidTypeError, match="`per_sample` must be True or False; got 1 of type int"
    ):
        ActivityRegularizer(model, {"encoder": ("l1", 1.0)}, per_sample=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match=r"`model` must be a torch\.nn\.Module"):
        ActivityRegularizer(object(), {"encoder": ("l1", 1.0)})  # type: ignore[arg-type]
    act = ActivityRegularizer(model, {"encoder": ("l1", 1.0)})
    act.set_weight("encoder", 0.25)
    assert act.weights == {"encoder": 0.25}
    with pytest.raises(UnknownNameError, match="'decoder'"):
        act.set_weight("decoder", 1.0)
    act.remove()
    scalar = torch.nn.Module()
    scalar.forward = lambda x: x.sum()  # type: ignore[method-assign]
    holder = torch.nn.Sequential(scalar)
    act = ActivityRegularizer(holder, {"0": ("l1", 1.0)}, per_sample=True)
    with pytest.raises(InvalidValueError, match="`per_sample=True` needs a batch axis"):
        holder(torch.ones(2))
    act.remove()
