"""Built-in data-aware regularizers: values against numpy float64, masks, references, errors."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

from arraypenalties import InvalidTypeError, InvalidValueError, interpolated_gradient_penalty
from arraypenalties import tinker as apt
from arraypenalties.tinker import RegularizerError, compose


@dataclass
class FakeDatum:
    loss_fn_inputs: dict[str, Any] = field(default_factory=dict)


class TensorDataLike:
    """What tinker.TensorData offers the adapter: ``.to_torch()``."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def to_torch(self) -> torch.Tensor:
        return torch.from_numpy(self.array)


DTYPES = [torch.float32, torch.float64]
RNG = np.random.default_rng(3)
# three ragged [T] datums; prompt positions weighted 0
LPS = [np.log(RNG.uniform(0.05, 0.95, size=n)) for n in (5, 2, 7)]
WEIGHTS = [np.r_[np.zeros(2), np.ones(3)], np.ones(2), np.r_[np.zeros(3), np.full(4, 0.5)]]
REFS = [lp + RNG.normal(0, 0.4, size=lp.shape) for lp in LPS]


def batch(
    dtype: torch.dtype, *, wrap: Any = TensorDataLike
) -> tuple[list[Any], list[torch.Tensor]]:
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    data = [
        FakeDatum({"weights": wrap(w.astype(np_dtype)), "ref": wrap(r.astype(np_dtype))})
        for w, r in zip(WEIGHTS, REFS, strict=True)
    ]
    lps = [torch.tensor(lp, dtype=dtype, requires_grad=True) for lp in LPS]
    return data, lps


def weighted(values: list[np.ndarray], reduction: str) -> float:
    total = sum(float(np.sum(w * v)) for w, v in zip(WEIGHTS, values, strict=True))
    return total if reduction == "sum" else total / sum(float(w.sum()) for w in WEIGHTS)


def rtol(dtype: torch.dtype) -> float:
    return 1e-5 if dtype == torch.float32 else 1e-12


def value(spec: apt.RegularizerSpec, data: Any, lps: list[torch.Tensor]) -> torch.Tensor:
    out = spec.fn(data, lps)
    assert out.ndim == 0 and out.dtype == lps[0].dtype
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("target", ["logprobs", "probs"])
def test_elementwise_penalties(dtype: torch.dtype, reduction: str, target: str) -> None:
    data, lps = batch(dtype)
    xs = [np.exp(lp) if target == "probs" else lp for lp in LPS]
    cases = {
        apt.l1(weight=1.0, lam=0.3, reduction=reduction, target=target): [
            0.3 * np.abs(x) for x in xs
        ],
        apt.l2(weight=1.0, lam=0.3, reduction=reduction, target=target): [0.3 * x**2 for x in xs],
        apt.l2(weight=1.0, clip=0.5, center=-0.2, reduction=reduction, target=target): [
            np.clip(x + 0.2, -0.5, 0.5) ** 2 for x in xs
        ],
        apt.elastic_net(weight=1.0, l1_ratio=0.25, reduction=reduction, target=target): [
            0.25 * np.abs(x) + 0.75 * x**2 for x in xs
        ],
    }
    for spec, expected in cases.items():
        got = value(spec, data, lps).item()
        assert got == pytest.approx(weighted(expected, reduction), rel=rtol(dtype)), spec.name


def test_builtin_default_names_are_the_tinkex_ones() -> None:
    names = [
        apt.l1(weight=1.0).name,
        apt.l2(weight=1.0).name,
        apt.elastic_net(weight=1.0).name,
        apt.kl_to_reference("ref", weight=1.0).name,
        apt.entropy(weight=1.0).name,
        apt.consistency("pair", weight=1.0).name,
        apt.orthogonality(weight=1.0).name,
        apt.gradient_penalty(torch.sum, weight=1.0).name,
        apt.output_magnitude(weight=1.0).name,
    ]
    assert names == [
        "l1_sparsity",
        "l2_weight_decay",
        "elastic_net",
        "kl_divergence",
        "entropy",
        "consistency",
        "orthogonality",
        "gradient_penalty",
        "output_magnitude",
    ]


def test_l2_center_mean_is_the_weighted_mean_of_kept_positions() -> None:
    data, lps = batch(torch.float64)
    c = weighted(LPS, "mean")
    got = value(apt.l2(weight=1.0, center="mean"), data, lps).item()
    assert got == pytest.approx(weighted([(lp - c) ** 2 for lp in LPS], "sum"), rel=1e-12)


def test_masked_positions_reach_neither_value_nor_gradient() -> None:
    # prompt positions hold -inf / NaN: excluded, with finite zero gradient
    lp = torch.tensor([-math.inf, math.nan, -0.5, -1.0], dtype=torch.float64, requires_grad=True)
    datum = FakeDatum(
        {"weights": np.asarray([0.0, 0.0, 1.0, 1.0]), "ref": np.asarray([0.0, 0.0, -0.7, -0.9])}
    )
    specs = [
        apt.l2(weight=1.0),
        apt.l1(weight=1.0, target="probs"),
        apt.kl_to_reference("ref", weight=1.0),
        apt.output_magnitude(weight=1.0),
    ]
    for spec in specs:
        out = spec.fn([datum], [lp])
        (grad,) = torch.autograd.grad(out, lp)
        assert math.isfinite(out.item()), spec.name
        assert grad[:2].tolist() == [0.0, 0.0] and torch.isfinite(grad).all(), spec.name


def test_mask_none_uses_every_position_and_other_fields_work() -> None:
    data, lps = batch(torch.float64)
    every = value(apt.l1(weight=1.0, mask=None), data, lps).item()
    assert every == pytest.approx(sum(float(np.abs(lp).sum()) for lp in LPS))
    for datum, w in zip(data, WEIGHTS, strict=True):
        datum.loss_fn_inputs["keep"] = (w > 0).astype(np.float64)
    kept = value(apt.l1(weight=1.0, mask="keep"), data, lps).item()
    assert kept == pytest.approx(
        sum(float(np.abs(lp[w > 0]).sum()) for lp, w in zip(LPS, WEIGHTS, strict=True))
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_kl_estimators_align_each_datum_with_its_reference(
    dtype: torch.dtype, estimator: str, reduction: str
) -> None:
    data, lps = batch(dtype)
    rs = [ref - lp for ref, lp in zip(REFS, LPS, strict=True)]
    per = {"k1": lambda r: -r, "k2": lambda r: 0.5 * r**2, "k3": lambda r: np.expm1(r) - r}
    expected = weighted([per[estimator](r) for r in rs], reduction)
    for reference in (
        "ref",
        [d.loss_fn_inputs["ref"] for d in data],
        lambda ds: [d.loss_fn_inputs["ref"].to_torch() for d in ds],
    ):
        spec = apt.kl_to_reference(reference, weight=1.0, estimator=estimator, reduction=reduction)
        assert value(spec, data, lps).item() == pytest.approx(expected, rel=10 * rtol(dtype))


def test_kl_gradient_is_the_closed_form() -> None:
    data, lps = batch(torch.float64)
    out = apt.kl_to_reference("ref", weight=1.0).fn(data, lps)
    grads = torch.autograd.grad(out, lps)
    den = sum(float(w.sum()) for w in WEIGHTS)
    for grad, w, ref, lp in zip(grads, WEIGHTS, REFS, LPS, strict=True):
        np.testing.assert_allclose(grad.numpy(), w * (1 - np.exp(ref - lp)) / den, rtol=1e-12)


P = np.log(np.asarray([[0.4, 0.3, 0.3]]))
Q = np.log(np.asarray([[0.25, 0.25, 0.5]]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("options", "expected"),
    [({}, 0.089450), ({"direction": "reverse"}, 0.092332), ({"symmetric": True}, 0.090891)],
)
def test_full_kl_parity(dtype: torch.dtype, options: dict[str, Any], expected: float) -> None:
    spec = apt.kl_to_reference(
        [torch.tensor(Q, dtype=dtype)], weight=1.0, estimator="full", **options
    )
    assert value(spec, None, [torch.tensor(P, dtype=dtype)]).item() == pytest.approx(
        expected, abs=1e-6
    )


def test_full_kl_renormalizes_top_k_and_handles_ragged_k() -> None:
    # unnormalised top-K log-probs: renormalised over K first; datums of different K
    p1, q1 = np.log([[0.2, 0.1], [0.3, 0.3]]), np.log([[0.1, 0.1], [0.2, 0.4]])
    p2, q2 = np.log([[0.5, 0.2, 0.1]]), np.log([[0.3, 0.3, 0.3]])

    def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        p = np.exp(p) / np.exp(p).sum(-1, keepdims=True)
        q = np.exp(q) / np.exp(q).sum(-1, keepdims=True)
        return np.sum(p * np.log(p / q), axis=-1)

    data = [FakeDatum({"q": q1, "weights": np.asarray([1.0, 0.0])}), FakeDatum({"q": q2})]
    lps = [torch.tensor(p1), torch.tensor(p2)]
    got = apt.kl_to_reference("q", weight=1.0, estimator="full").fn(data, lps).item()
    assert got == pytest.approx((kl(p1, q1)[0] + kl(p2, q2)[0]) / 2, rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_parity_and_modes(dtype: torch.dtype) -> None:
    uniform = torch.log(torch.full((1, 4), 0.25, dtype=dtype))
    assert value(apt.entropy(weight=1.0), None, [uniform]).item() == pytest.approx(-math.log(4))
    assert apt.entropy(weight=1.0, objective="minimize").fn(None, [uniform]).item() == (
        pytest.approx(math.log(4))
    )
    assert apt.entropy(weight=1.0, normalize=True).fn(None, [uniform]).item() == pytest.approx(-1)


def test_entropy_row_weights_from_t_or_tk_masks() -> None:
    p1 = np.log([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5], [0.9, 0.05, 0.05]])
    h = -np.sum(np.exp(p1) * p1, axis=-1)
    for weights in (np.asarray([0.0, 1.0, 1.0]), np.repeat([[0.0], [1.0], [1.0]], 3, axis=1)):
        got = apt.entropy(weight=1.0).fn([FakeDatum({"weights": weights})], [torch.tensor(p1)])
        assert got.item() == pytest.approx(-(h[1] + h[2]) / 2, rel=1e-12)


def test_consistency_metrics() -> None:
    a, b = np.asarray([1.0, 2.0, 3.0]), np.asarray([1.5, 2.5, 3.5])
    assert apt.consistency([b], weight=1.0).fn(None, [torch.tensor(a)]).item() == 0.25
    assert (
        apt.consistency([b], weight=1.0, metric="l1", reduction="sum")
        .fn(None, [torch.tensor(a)])
        .item()
        == 1.5
    )
    rows_a, rows_b = np.asarray([[1.0, 0.0], [1.0, 1.0]]), np.asarray([[0.0, 1.0], [2.0, 2.0]])
    datum = FakeDatum({"pair": rows_b})
    cosine = apt.consistency("pair", weight=1.0, metric="cosine").fn(
        [datum], [torch.tensor(rows_a)]
    )
    assert cosine.item() == pytest.approx((1.0 + 0.0) / 2)


def test_orthogonality_uses_kept_rows() -> None:
    rows = np.asarray([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [3.0, 3.0]])
    datum = FakeDatum({"weights": np.asarray([1.0, 1.0, 1.0, 0.0])})
    got = apt.orthogonality(weight=1.0).fn([datum], [torch.tensor(rows)])
    assert got.item() == pytest.approx(2.0)  # the SPEC parity matrix; the masked row is out
    hard = apt.orthogonality(weight=1.0, mode="hard", normalize=False)
    assert hard.fn(None, [torch.tensor([[2.0, 0.0], [0.0, 1.0]])]).item() == pytest.approx(9.0)


def test_output_magnitude() -> None:
    x = [torch.tensor([3.0, 4.0])]
    assert apt.output_magnitude(weight=1.0, reduction="sum").fn(None, x).item() == 16.0
    rms = math.sqrt(12.5)
    assert apt.output_magnitude(weight=1.0).fn(None, x).item() == pytest.approx((rms - 1) ** 2)


def test_gradient_penalty_output_is_one_global_norm_and_differentiable() -> None:
    lps = [torch.tensor([0.5, 3.0], requires_grad=True), torch.tensor([4.0], requires_grad=True)]
    datum0 = FakeDatum({"weights": np.asarray([0.0, 1.0])})
    spec = apt.gradient_penalty(lambda x: torch.sum(x**2) / 2, weight=1.0, target_norm=2.0)
    out = spec.fn([datum0, FakeDatum()], lps)
    assert out.item() == pytest.approx((5.0 - 2.0) ** 2)  # ‖(3, 4)‖ = 5; the masked 0.5 is out
    grads = torch.autograd.grad(out, lps)
    # d/dx (‖x‖ - 2)² = 2(‖x‖ - 2)·x/‖x‖
    assert grads[0].tolist() == pytest.approx([0.0, 6 * 3 / 5])
    assert grads[1].tolist() == pytest.approx([6 * 4 / 5])


def test_gradient_penalty_interpolated_is_seeded() -> None:
    lps = [torch.tensor([1.0, 2.0]), torch.tensor([3.0])]
    data = [FakeDatum({"real": np.asarray([0.0, 0.0])}), FakeDatum({"real": np.asarray([0.0])})]
    cube = lambda x: torch.sum(x**3) / 3  # noqa: E731 - ∇ = x², so the penalty depends on α
    spec = apt.gradient_penalty(
        cube, weight=1.0, mode="interpolated", reference_field="real", rng=7
    )
    first, again = spec.fn(data, lps).item(), spec.fn(data, lps).item()
    assert first == again  # an int seed draws the same α every call
    # the core penalty on the concatenated batch and its aligned references, same seed
    x, real = torch.tensor([1.0, 2.0, 3.0]), torch.zeros(3)
    expected = interpolated_gradient_penalty(cube, x, real, batch_axis=None, rng=7)
    assert first == pytest.approx(expected.item())
    other = apt.gradient_penalty(
        cube, weight=1.0, mode="interpolated", reference_field="real", rng=8
    )
    assert other.fn(data, lps).item() != first


def test_compose_with_builtins_and_disabled_terms() -> None:
    data, lps = batch(torch.float64)
    regs = [apt.l1(weight=0.1), apt.kl_to_reference("ref", weight=0.2, estimator="k2")]
    total, report = compose(data, lps, None, regularizers=regs, track_grad_norms=True)
    expected = 0.1 * weighted([np.abs(lp) for lp in LPS], "sum") + 0.2 * weighted(
        [0.5 * (r - lp) ** 2 for r, lp in zip(REFS, LPS, strict=True)], "mean"
    )
    assert total.item() == pytest.approx(expected, rel=1e-12)
    l1_grad = np.concatenate([w * np.sign(lp) for w, lp in zip(WEIGHTS, LPS, strict=True)])
    assert report.regularizers["l1_sparsity"].grad_norm == pytest.approx(np.linalg.norm(l1_grad))


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: apt.l1(weight=1.0, reduction="none"), InvalidValueError, "`reduction`"),
        (lambda: apt.l1(weight=1.0, target="logits"), InvalidValueError, "`target`"),
        (lambda: apt.l1(weight=1.0, mask=3), InvalidTypeError, "`mask`"),
        (lambda: apt.l2(weight=1.0, clip=-1.0), ValueError, "clip"),
        (lambda: apt.elastic_net(weight=1.0, l1_ratio=2.0), ValueError, "l1_ratio"),
        (lambda: apt.l1(weight=-1.0), InvalidValueError, "`weight`"),
        (
            lambda: apt.kl_to_reference("r", weight=1.0, estimator="k4"),
            InvalidValueError,
            "`estimator`",
        ),
        (lambda: apt.kl_to_reference("r", weight=1.0, direction="up"), ValueError, "direction"),
        (lambda: apt.kl_to_reference(3, weight=1.0), InvalidTypeError, "`reference`"),
        (
            lambda: apt.kl_to_reference("r", weight=1.0, renormalize=1),
            InvalidTypeError,
            "`renormalize`",
        ),
        (lambda: apt.entropy(weight=1.0, objective="max"), InvalidValueError, "`objective`"),
        (lambda: apt.entropy(weight=1.0, temperature=0.0), ValueError, "temperature"),
        (lambda: apt.consistency("p", weight=1.0, metric="dot"), InvalidValueError, "`metric`"),
        (lambda: apt.orthogonality(weight=1.0, mode="x"), ValueError, "mode"),
        (lambda: apt.gradient_penalty(3, weight=1.0), InvalidTypeError, "`loss_fn`"),
        (
            lambda: apt.gradient_penalty(torch.sum, weight=1.0, mode="interpolated"),
            InvalidValueError,
            "`reference_field`",
        ),
        (lambda: apt.output_magnitude(weight=1.0, reduction="max"), ValueError, "reduction"),
    ],
)
def test_bad_options_raise_when_the_spec_is_built(build: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(
    ("spec", "lps", "data", "match"),
    [
        (apt.entropy(weight=1.0), [torch.zeros(3)], None, r"\[T, K\]"),
        (apt.orthogonality(weight=1.0), [torch.zeros(3)], None, r"\[T, K\]"),
        (
            apt.kl_to_reference("r", weight=1.0, estimator="full"),
            [torch.zeros(3)],
            [FakeDatum({"r": np.zeros(3)})],
            r"\[T, K\]",
        ),
        (
            apt.kl_to_reference("r", weight=1.0),
            [torch.zeros(3)],
            [FakeDatum({"r": np.zeros(2)})],
            "reference 0 has shape",
        ),
        (apt.kl_to_reference("r", weight=1.0), [torch.zeros(3)], [FakeDatum({})], "no `loss_fn"),
        (
            apt.kl_to_reference([np.zeros(3)] * 2, weight=1.0),
            [torch.zeros(3)],
            None,
            "one item per datum",
        ),
        (
            apt.kl_to_reference("r", weight=1.0),
            [torch.zeros(3)],
            [FakeDatum({"r": [0, 0, 0]})],
            "TensorData",
        ),
        (
            apt.l1(weight=1.0),
            [torch.zeros(3)],
            [FakeDatum({"weights": np.ones(2)})],
            "mask field 'weights'",
        ),
        (apt.l1(weight=1.0), [torch.zeros(3)], [object()], "loss_fn_inputs"),
        (
            apt.consistency("p", weight=1.0, metric="cosine"),
            [torch.zeros(3)],
            [FakeDatum({"p": np.zeros(3)})],
            r"\[T, K\]",
        ),
    ],
)
def test_bad_data_is_a_regularizer_error_naming_it(
    spec: Any, lps: Any, data: Any, match: str
) -> None:
    with pytest.raises(RegularizerError, match=spec.name) as info:
        compose(data, lps, None, regularizers=[spec])
    assert re.search(match, str(info.value.__cause__)), str(info.value)


def test_builtin_alone_still_gives_every_datum_a_gradient() -> None:
    # no anchor is added when a built-in is in the total: a fully masked datum gets zeros
    lps = [torch.tensor([1.0, -2.0], requires_grad=True), torch.tensor([3.0], requires_grad=True)]
    data = [FakeDatum(), FakeDatum({"weights": np.asarray([0.0])})]
    for spec in (apt.l1(weight=1.0), apt.output_magnitude(weight=1.0)):
        for lp in lps:
            lp.grad = None
        total, _ = compose(data, lps, None, regularizers=[spec])
        total.backward()
        assert lps[1].grad is not None and lps[1].grad.tolist() == [0.0], spec.name
