"""The torch kernels (``backends/_torch_kernels.py``): both paths of each against closed forms.

``kl_divergence`` on eager torch tensors runs the KL kernel: the in-place path when
nothing needs a gradient, the autograd Function (hand-written backward, double
backward, ``torch.func`` rules) otherwise; ``entropy`` runs the entropy kernel.
Every expected value is a float64 closed form or scipy computed here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.special import entr, rel_entr

torch = pytest.importorskip("torch", reason="the kernel is torch's own")

from arraypenalties import entropy_value, kl_divergence  # noqa: E402
from arraypenalties.backends import _torch_kernels  # noqa: E402

INF = np.inf
# rows with every zero-probability pattern: -inf in p, in q, in both, p underflowing
# to 0 against q = 0 (the term is 0, as for p = 0), one-hot, an ordinary row, and
# p > 0 = q (+inf)
LP = np.asarray(
    [
        [0.0, -INF, -INF, -INF],
        [np.log(0.5), np.log(0.25), -INF, np.log(0.25)],
        [np.log(0.7), -800.0, np.log(0.3) - 1e-9, -INF],
        [np.log(0.1), np.log(0.2), np.log(0.3), np.log(0.4)],
        [np.log(0.5), np.log(0.5), -INF, -INF],
    ]
)
LQ = np.asarray(
    [
        [np.log(0.5), -INF, np.log(0.5), -INF],
        [np.log(0.25), np.log(0.25), -INF, np.log(0.5)],
        [np.log(0.6), -INF, np.log(0.4), -INF],
        [np.log(0.4), np.log(0.3), np.log(0.2), np.log(0.1)],
        [0.0, -INF, -INF, -INF],
    ]
)


def _rows_reference(lp: np.ndarray, lq: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(under="ignore"):
        return rel_entr(np.exp(lp), np.exp(lq)).sum(axis)


def _closed_form_grads(lp: np.ndarray, lq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # ∂/∂log p = p·(log p − log q + 1), ∂/∂log q = −p, both 0 where p = 0
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):
        ratio = np.where(p > 0, lp - lq, 0.0)
    return p * (ratio + 1.0), -p


@pytest.fixture(autouse=True)
def every_size_is_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels decline small inputs under autograd; here every input is large."""
    monkeypatch.setattr(_torch_kernels, "LARGE_BYTES", 0)


def _t(values: np.ndarray, dtype: Any, requires_grad: bool = False) -> Any:
    return torch.tensor(values, dtype=dtype, requires_grad=requires_grad)


DTYPES = [pytest.param(torch.float32, id="float32"), pytest.param(torch.float64, id="float64")]


def _tol(dtype: Any) -> dict[str, float]:
    return {"rtol": 2e-6, "atol": 1e-7} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 0.0}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("requires_grad", [False, True], ids=["in-place", "autograd"])
def test_both_paths_give_exact_rows_and_leave_inputs_alone(dtype: Any, requires_grad: bool) -> None:
    lp, lq = _t(LP, dtype, requires_grad), _t(LQ, dtype)
    rows = _torch_kernels.kl_rows(lp, lq, -1)
    assert rows.requires_grad is requires_grad
    np.testing.assert_allclose(rows.detach().numpy(), _rows_reference(LP, LQ), **_tol(dtype))
    np.testing.assert_array_equal(lp.detach().numpy(), LP.astype(lp.detach().numpy().dtype))
    np.testing.assert_array_equal(lq.numpy(), LQ.astype(lq.numpy().dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_grad_mode_takes_the_in_place_path_on_grad_requiring_inputs(dtype: Any) -> None:
    lp = _t(LP, dtype, requires_grad=True)
    with torch.no_grad():
        rows = _torch_kernels.kl_rows(lp, _t(LQ, dtype), -1)
    assert not rows.requires_grad
    np.testing.assert_allclose(rows.numpy(), _rows_reference(LP, LQ), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_any_axis_of_a_3d_non_contiguous_input(dtype: Any, axis: int) -> None:
    lp3 = np.moveaxis(np.stack([LP, LP[::-1]]), -1, axis)
    lq3 = np.moveaxis(np.stack([LQ, LQ[::-1]]), -1, axis)
    lp = torch.tensor(np.ascontiguousarray(np.swapaxes(lp3, 0, -1)), dtype=dtype).transpose(0, -1)
    assert not lp.is_contiguous() or lp.ndim == 1
    for requires_grad in (False, True):
        leaf = lp.clone().requires_grad_(requires_grad)
        rows = _torch_kernels.kl_rows(leaf, _t(lq3, dtype), axis)
        expected = _rows_reference(lp3, lq3, axis)
        np.testing.assert_allclose(rows.detach().numpy(), expected, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("which", ["both", "p", "q"])
def test_hand_written_backward_matches_the_closed_form(dtype: Any, which: str) -> None:
    finite = np.isfinite(_rows_reference(LP, LQ))  # +inf rows promise no gradient
    lp = _t(LP[finite], dtype, which in ("both", "p"))
    lq = _t(LQ[finite], dtype, which in ("both", "q"))
    weights = _t(np.linspace(-2.0, 3.0, int(finite.sum())), dtype)
    total = (_torch_kernels.kl_rows(lp, lq, -1) * weights).sum()
    leaves = [leaf for leaf in (lp, lq) if leaf.requires_grad]
    found = torch.autograd.grad(total, leaves)
    grads = dict(zip([id(leaf) for leaf in leaves], found, strict=True))
    closed_p, closed_q = _closed_form_grads(LP[finite], LQ[finite])
    w = weights.numpy()[:, None]
    for leaf, closed in ((lp, closed_p), (lq, closed_q)):
        if leaf.requires_grad:
            grad = grads[id(leaf)].numpy()
            assert np.all(np.isfinite(grad))
            np.testing.assert_allclose(grad, w * closed, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_double_backward_matches_the_closed_form_hessian(dtype: Any) -> None:
    # H·v for f = Σ p(log p − log q): ∂²/∂log p² = p(r + 2) (diagonal), ∂²/∂log p ∂log q = −p,
    # ∂²/∂log q² = 0, with r the log-ratio; 0 wherever p = 0
    finite = np.isfinite(_rows_reference(LP, LQ))
    lp_np, lq_np = LP[finite], LQ[finite]
    lp, lq = _t(lp_np, dtype, True), _t(lq_np, dtype, True)
    v_p = np.random.default_rng(0).standard_normal(lp_np.shape)
    v_q = np.random.default_rng(1).standard_normal(lp_np.shape)
    grad_p, grad_q = torch.autograd.grad(
        _torch_kernels.kl_rows(lp, lq, -1).sum(), (lp, lq), create_graph=True
    )
    directional = (grad_p * _t(v_p, dtype)).sum() + (grad_q * _t(v_q, dtype)).sum()
    hv_p, hv_q = torch.autograd.grad(directional, (lp, lq))
    p = np.exp(lp_np)
    with np.errstate(invalid="ignore"):
        ratio = np.where(p > 0, lp_np - lq_np, 0.0)
    np.testing.assert_allclose(hv_p.numpy(), p * (ratio + 2.0) * v_p - p * v_q, **_tol(dtype))
    np.testing.assert_allclose(hv_q.numpy(), -p * v_p, **_tol(dtype))


# torch's forward-mode decompositions are registered through torch.jit.script, which
# warns about its own deprecation the first time a dual tensor is made
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_func_grad_vmap_and_jvp(dtype: Any) -> None:
    finite = np.isfinite(_rows_reference(LP, LQ))
    lp_np, lq_np = LP[finite], LQ[finite]
    lp, lq = _t(lp_np, dtype), _t(lq_np, dtype)
    closed_p, closed_q = _closed_form_grads(lp_np, lq_np)

    def total(a: Any, b: Any) -> Any:
        return _torch_kernels.kl_rows(a, b, -1).sum()

    grad_p, grad_q = torch.func.grad(total, argnums=(0, 1))(lp, lq)
    np.testing.assert_allclose(grad_p.numpy(), closed_p, **_tol(dtype))
    np.testing.assert_allclose(grad_q.numpy(), closed_q, **_tol(dtype))
    per_row = torch.func.vmap(lambda a, b: _torch_kernels.kl_rows(a, b, 0))(lp, lq)
    np.testing.assert_allclose(per_row.numpy(), _rows_reference(lp_np, lq_np), **_tol(dtype))
    tangent = np.random.default_rng(2).standard_normal(lp_np.shape)
    expected_change = (closed_p * tangent).sum(-1)
    _, change = torch.func.jvp(
        lambda a: _torch_kernels.kl_rows(a, lq, -1), (lp,), (_t(tangent, dtype),)
    )
    np.testing.assert_allclose(change.numpy(), expected_change, **_tol(dtype))
    # a dual tensor that also requires grad goes through the Function's own jvp rule
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(lp.requires_grad_(True), _t(tangent, dtype))
        rows = _torch_kernels.kl_rows(dual, lq, -1)
        change = torch.autograd.forward_ad.unpack_dual(rows).tangent
    np.testing.assert_allclose(change.detach().numpy(), expected_change, **_tol(dtype))
    # a tangent of log q alone, then of both
    tangent_q = np.random.default_rng(3).standard_normal(lp_np.shape)
    change_q = (closed_q * tangent_q).sum(-1)
    forward_ad = torch.autograd.forward_ad
    for with_p, expected in ((False, change_q), (True, expected_change + change_q)):
        with forward_ad.dual_level():
            dual_q = forward_ad.make_dual(_t(lq_np, dtype, True), _t(tangent_q, dtype))
            dual_p = forward_ad.make_dual(lp, _t(tangent, dtype)) if with_p else lp
            rows = _torch_kernels.kl_rows(dual_p, dual_q, -1)
            change = forward_ad.unpack_dual(rows).tangent
        np.testing.assert_allclose(change.detach().numpy(), expected, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_inputs_under_autograd_are_declined(
    dtype: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_torch_kernels, "LARGE_BYTES", 32 << 20)  # the real threshold
    lp, lq = _t(LP, dtype, True), _t(LQ, dtype)
    assert _torch_kernels.kl_rows(lp, lq, -1) is None
    assert _torch_kernels.neg_entropy_rows(lp, -1) is None
    # without autograd the in-place paths run at any size
    np.testing.assert_allclose(
        _torch_kernels.kl_rows(lp.detach(), lq, -1).numpy(), _rows_reference(LP, LQ), **_tol(dtype)
    )
    # declined inputs get the Array API form: same values, closed-form gradients
    finite = np.isfinite(_rows_reference(LP, LQ))
    lp = _t(LP[finite], dtype, True)
    (grad,) = torch.autograd.grad(kl_divergence(lp, _t(LQ[finite], dtype), reduction="sum"), lp)
    np.testing.assert_allclose(
        grad.numpy(), _closed_form_grads(LP[finite], LQ[finite])[0], **_tol(dtype)
    )


def test_kl_divergence_uses_the_kernel_on_eager_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = _torch_kernels.kl_rows

    def counting(lp: Any, lq: Any, axis: int) -> Any:
        calls.append(axis)
        return original(lp, lq, axis)

    monkeypatch.setattr(_torch_kernels, "kl_rows", counting)
    p, q = _t(LP[3:], torch.float64), _t(LQ[3:], torch.float64)
    kl_divergence(p, q)
    kl_divergence(p, q, direction="reverse")
    assert calls == [-1, -1]  # the last axis, as -1 (valid on chunks too)
    kl_divergence(p, q, max_log_ratio=5.0)  # the clipped form is the Array API one
    assert calls == [-1, -1]  # the last axis, as -1 (valid on chunks too)


ENTROPY_LP = np.asarray([[0.0, -INF, -INF], [np.log(0.2), np.log(0.8), -INF], [-800.0, 0.0, -INF]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("requires_grad", [False, True], ids=["in-place", "autograd"])
def test_entropy_kernel_paths(dtype: Any, requires_grad: bool) -> None:
    lp = _t(ENTROPY_LP, dtype, requires_grad)
    if requires_grad:  # the matmul row sum is for the last axis only
        assert _torch_kernels.neg_entropy_rows(lp.T, 0) is None
    rows = _torch_kernels.neg_entropy_rows(lp, 1)
    with np.errstate(under="ignore"):
        expected = -entr(np.exp(ENTROPY_LP)).sum(-1)
    np.testing.assert_allclose(rows.detach().numpy(), expected, **_tol(dtype))
    unchanged = ENTROPY_LP.astype(rows.detach().numpy().dtype)
    np.testing.assert_array_equal(lp.detach().numpy(), unchanged)
    if requires_grad:
        (grad,) = torch.autograd.grad(rows.sum(), lp)
        p = np.exp(ENTROPY_LP)
        with np.errstate(invalid="ignore"):
            closed = np.where(p > 0, p * (ENTROPY_LP + 1.0), 0.0)
        np.testing.assert_allclose(grad.numpy(), closed, **_tol(dtype))


def test_entropy_uses_the_kernel_on_eager_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = _torch_kernels.neg_entropy_rows

    def counting(lp: Any, axis: int) -> Any:
        calls.append(axis)
        return original(lp, axis)

    monkeypatch.setattr(_torch_kernels, "neg_entropy_rows", counting)
    entropy_value(_t(ENTROPY_LP, torch.float64))
    assert calls == [-1]


# logits rows: ordinary, with -inf entries, all -inf (no distribution: entropy 0), a
# spread that underflows float32 probabilities to 0, one-hot by -inf, and NaN
LOGITS = np.asarray(
    [
        [0.3, -1.2, 2.0, 0.0],
        [1.0, -INF, 0.5, -INF],
        [-INF, -INF, -INF, -INF],
        [0.0, -120.0, -200.0, 3.0],
        [-INF, 4.0, -INF, -INF],
        [0.0, np.nan, 1.0, 2.0],
    ]
)


def _entropy_of_logits(logits: np.ndarray, temperature: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        scaled = logits / temperature
        shifted = scaled - np.max(scaled, axis=-1, keepdims=True)
        p = np.exp(shifted) / np.sum(np.exp(shifted), axis=-1, keepdims=True)
    rows = entr(p).sum(-1)
    rows[np.all(logits == -INF, axis=-1)] = 0.0
    return rows


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_of_logits_kernel_without_autograd(dtype: Any, temperature: float) -> None:
    x = _t(LOGITS, dtype)
    rows = _torch_kernels.neg_entropy_of_logits_rows(x, -1, temperature)
    assert rows is not None and rows.dtype == x.dtype
    expected = -_entropy_of_logits(LOGITS, temperature)
    np.testing.assert_allclose(rows.numpy(), expected, **_tol(dtype))
    assert np.isnan(rows[-1].item()) and rows[2].item() == 0.0  # NaN kept; dead row 0
    np.testing.assert_array_equal(x.numpy(), _t(LOGITS, dtype).numpy())  # input untouched
    # the public functions take it: same rows, positive entropies
    got = entropy_value(x, from_logits=True, temperature=temperature, reduction="none")
    np.testing.assert_allclose(got.numpy(), -expected, **_tol(dtype))


def test_entropy_of_logits_kernel_declines_gradients_and_transforms() -> None:
    x = _t(LOGITS[:5], torch.float64, True)
    assert _torch_kernels.neg_entropy_of_logits_rows(x, -1, 1.0) is None
    with torch.no_grad():
        assert _torch_kernels.neg_entropy_of_logits_rows(x, -1, 1.0) is not None

    def total(v: Any) -> Any:
        assert _torch_kernels.neg_entropy_of_logits_rows(v, -1, 1.0) is None  # under grad
        return entropy_value(v, from_logits=True, reduction="sum")

    grad = torch.func.grad(total)(x.detach())
    assert np.all(np.isfinite(grad.numpy()))  # the declined path: finite at -inf logits
    (expected,) = torch.autograd.grad(entropy_value(x, from_logits=True, reduction="sum"), x)
    np.testing.assert_allclose(grad.numpy(), expected.numpy(), rtol=1e-12, atol=1e-15)


def test_entropy_of_logits_kernel_rechecks_only_nan_rows_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the row max is taken only over the rows whose value is NaN (dead rows and NaN
    # logits), not over the whole input: no amax at all when no row is NaN
    seen: list[tuple[int, ...]] = []
    original = torch.amax

    def counting(x: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(tuple(x.shape))
        return original(x, *args, **kwargs)

    monkeypatch.setattr(torch, "amax", counting)
    live = _t(LOGITS[[0, 1, 3, 4]], torch.float32)
    rows = _torch_kernels.neg_entropy_of_logits_rows(live, -1, 1.0)
    assert rows is not None and seen == []
    np.testing.assert_allclose(
        rows.numpy(), -_entropy_of_logits(LOGITS[[0, 1, 3, 4]], 1.0), rtol=1e-5
    )
    rows = _torch_kernels.neg_entropy_of_logits_rows(_t(LOGITS, torch.float32), -1, 1.0)
    assert rows is not None and seen == [(2, 4)]  # the dead row and the NaN row


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_of_logits_kernel_along_the_first_axis(dtype: Any) -> None:
    # the NaN-row recheck on a distribution axis that is not the last one
    x = _t(LOGITS.T.copy(), dtype)
    rows = _torch_kernels.neg_entropy_of_logits_rows(x, 0, 2.0)
    assert rows is not None
    expected = -_entropy_of_logits(LOGITS, 2.0)
    np.testing.assert_allclose(rows.numpy(), expected, **_tol(dtype))
    assert rows[2].item() == 0.0 and np.isnan(rows[-1].item())
