"""gradient_penalty, interpolated_gradient_penalty, output_magnitude_penalty (SPEC §4):
values against closed forms, seeded per-sample α, the finite-difference path and bad input.

Second order (parameter gradients, generators, jit, BatchNorm, DDP) lives in
test_gradient_penalty_second_order.py and test_gradient_penalty_ddp.py.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from arraypenalties import (
    ArrayPenaltiesError,
    BackendError,
    FiniteDifferenceWarning,
    InvalidTypeError,
    InvalidValueError,
    get_backend,
    gradient_penalty,
    interpolated_gradient_penalty,
    output_magnitude_penalty,
)
from arraypenalties.testing import as_array as _a
from arraypenalties.testing import assert_close, to_numpy
from arraypenalties.testing import gradient_rtol as _rtol

SPEC_PARITY = (math.sqrt(2.0) - 1.0) ** 2  # SPEC §4: gradient_penalty(sum, log([[.5, .5]]))
RNG = np.random.default_rng(20240605)
X_HOST = RNG.normal(size=(4, 3, 2))  # [B, ...] samples
WEIGHTS = RNG.uniform(0.5, 2.0, size=(4, 3, 2))  # a of the quadratic Σ a·x²
FAKE_HOST, REAL_HOST = RNG.normal(size=(4, 3, 2)), RNG.normal(size=(4, 3, 2))


@contextlib.contextmanager
def _gradients(case: Any) -> Iterator[None]:
    """Expect the FiniteDifferenceWarning on finite-difference backends, nothing on autodiff."""
    if case.exact_grad:
        yield
    else:
        with pytest.warns(FiniteDifferenceWarning, match="approximate gradient"):
            yield


def _quadratic(xp: Any, dtype_name: str) -> Any:
    a = _a(xp, WEIGHTS, dtype_name)
    return lambda v: xp.sum(a * v * v)


def _reference_penalty(g: np.ndarray, target: float, batch_axis: int | None) -> float:
    """Closed-form penalty of a known gradient ``g`` (numpy float64)."""
    if batch_axis is None:
        return float((np.linalg.norm(g) - target) ** 2)
    samples = np.moveaxis(g, batch_axis, 0).reshape(g.shape[batch_axis], -1)
    return float(np.mean((np.linalg.norm(samples, axis=1) - target) ** 2))


def _reference_alpha(case: Any, seed: int, shape: tuple[int, ...], dtype_name: str) -> np.ndarray:
    """α drawn by the framework's own generator, as the backend documents it."""
    if case.name == "torch":
        import torch

        generator = torch.Generator().manual_seed(seed)
        return torch.rand(shape, generator=generator, dtype=getattr(torch, dtype_name)).numpy()
    if case.name == "jax":
        import jax

        return np.asarray(jax.random.uniform(jax.random.key(seed), shape, dtype=dtype_name))
    return np.random.default_rng(seed).random(shape, dtype=np.dtype(dtype_name))


# ---------------------------------------------------------------- gradient_penalty values


def test_spec_parity_sum_of_log_half(grad_case: Any, dtype_name: str) -> None:
    xp = grad_case.xp
    x = xp.log(_a(xp, [[0.5, 0.5]], dtype_name))
    for batch_axis in (None, 0):  # one sample: the global and the per-sample norm agree
        with _gradients(grad_case):
            result = gradient_penalty(xp.sum, x, batch_axis=batch_axis)
        assert_close(result, _a(xp, SPEC_PARITY, dtype_name), rtol=_rtol(grad_case, dtype_name))


@pytest.mark.parametrize("target_norm", [1.0, 0.0, 2.5])
@pytest.mark.parametrize("batch_axis", [None, 0, 1, -1])
def test_quadratic_closed_form(
    grad_case: Any, dtype_name: str, batch_axis: int | None, target_norm: float
) -> None:
    # ∇ Σ a·x² = 2a·x
    xp = grad_case.xp
    x = _a(xp, X_HOST, dtype_name)
    with _gradients(grad_case):
        result = gradient_penalty(
            _quadratic(xp, dtype_name), x, target_norm=target_norm, batch_axis=batch_axis
        )
    expected = _reference_penalty(2.0 * WEIGHTS * X_HOST, target_norm, batch_axis)
    assert_close(result, _a(xp, expected, dtype_name), rtol=_rtol(grad_case, dtype_name))


def test_global_and_per_sample_norms_differ(ad_xp: Any) -> None:
    x = _a(ad_xp, X_HOST)
    fn = _quadratic(ad_xp, "float64")
    global_norm = to_numpy(gradient_penalty(fn, x))
    per_sample = to_numpy(gradient_penalty(fn, x, batch_axis=0))
    g = 2.0 * WEIGHTS * X_HOST
    np.testing.assert_allclose(global_norm, (np.linalg.norm(g) - 1.0) ** 2, rtol=1e-12)
    norms = np.linalg.norm(g.reshape(4, -1), axis=1)
    np.testing.assert_allclose(per_sample, np.mean((norms - 1.0) ** 2), rtol=1e-12)
    assert abs(global_norm - per_sample) > 1.0


def test_one_dimensional_per_sample_norm_is_absolute_value(grad_case: Any) -> None:
    xp = grad_case.xp
    x = _a(xp, [0.5, -2.0, 3.0])
    with _gradients(grad_case):
        result = gradient_penalty(lambda v: xp.sum(v * v), x, batch_axis=0)  # gᵢ = 2xᵢ
    expected = np.mean((np.abs(2.0 * np.asarray([0.5, -2.0, 3.0])) - 1.0) ** 2)
    assert_close(result, _a(xp, expected), rtol=_rtol(grad_case, "float64"))


def test_function_independent_of_x_gives_target_squared(grad_case: Any) -> None:
    xp = grad_case.xp
    x = _a(xp, [[1.0, 2.0], [3.0, 4.0]])
    with _gradients(grad_case):
        result = gradient_penalty(lambda v: xp.sum(v * 0.0), x, target_norm=1.5, batch_axis=0)
    assert_close(result, _a(xp, 2.25), rtol=1e-12)


def test_zero_gradient_has_finite_second_order(ad_case: Any) -> None:
    # the norm's square root has derivative 0 at 0 (no 0·inf = NaN)
    x_host = np.asarray([[0.0, 0.0], [1.0, -1.0]])  # ∇ Σ x²/2 = x: sample 0 has g = 0
    if ad_case.name == "torch":
        import torch

        x = torch.asarray(x_host, requires_grad=True)
        gradient_penalty(lambda v: torch.sum(v * v) / 2, x, batch_axis=0).backward()
        grad = x.grad.numpy()
    else:
        import jax
        import jax.numpy as jnp

        outer = jax.grad(lambda v: gradient_penalty(lambda u: jnp.sum(u * u) / 2, v, batch_axis=0))
        grad = np.asarray(outer(jnp.asarray(x_host)))
    # d/dx mean((‖x_i‖ − 1)²) = (‖x_i‖ − 1)·x_i/‖x_i‖ for B = 2; 0 where x_i = 0
    norm = math.sqrt(2.0)
    expected = np.asarray([[0.0, 0.0], [(norm - 1) / norm, -(norm - 1) / norm]])
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)


def test_dask_has_no_gradient_penalty() -> None:
    da = pytest.importorskip("array_api_compat.dask.array", reason="dask is not installed")
    x = _a(da, [[1.0, 2.0]])
    with pytest.raises(BackendError, match="dask arrays have no autodiff"):
        gradient_penalty(da.sum, x)


# ---------------------------------------------------------------- interpolated: α per sample


@pytest.mark.parametrize(
    ("batch_axis", "alpha_shape"),
    [(0, (4, 1, 1)), (1, (1, 3, 1)), (-1, (1, 1, 2)), (None, (1, 1, 1))],
)
def test_interpolated_closed_form_with_seeded_alpha(
    grad_case: Any, dtype_name: str, batch_axis: int | None, alpha_shape: tuple[int, ...]
) -> None:
    xp = grad_case.xp
    fake, real = _a(xp, FAKE_HOST, dtype_name), _a(xp, REAL_HOST, dtype_name)
    with _gradients(grad_case):
        result = interpolated_gradient_penalty(
            _quadratic(xp, dtype_name), fake, real, batch_axis=batch_axis, rng=11
        )
    alpha = _reference_alpha(grad_case, 11, alpha_shape, dtype_name).astype(np.float64)
    interpolates = alpha * FAKE_HOST + (1.0 - alpha) * REAL_HOST
    expected = _reference_penalty(2.0 * WEIGHTS * interpolates, 1.0, batch_axis)
    assert_close(result, _a(xp, expected, dtype_name), rtol=_rtol(grad_case, dtype_name))


def test_alpha_is_one_value_per_sample(grad_case: Any) -> None:
    xp = grad_case.xp
    if grad_case.name == "jax":
        pytest.skip("jax passes tracers to fn; the seeded closed-form test covers its alpha")
    seen: list[Any] = []

    def fn(v: Any) -> Any:
        seen.append(to_numpy(v).copy())
        return xp.sum(v * v)

    fake, real = xp.ones((6, 3, 2), dtype=xp.float64), xp.zeros((6, 3, 2), dtype=xp.float64)
    with _gradients(grad_case):
        interpolated_gradient_penalty(fn, fake, real, rng=5)
    interpolates = seen[0]  # = α broadcast to [6, 3, 2]
    per_sample = interpolates.reshape(6, -1)
    assert np.all(per_sample == per_sample[:, :1])  # constant within a sample
    assert len(np.unique(per_sample[:, 0])) == 6  # different across samples
    assert np.all((per_sample >= 0) & (per_sample < 1))


def test_same_seed_same_penalty_different_seed_differs(grad_case: Any) -> None:
    xp = grad_case.xp
    fake, real = _a(xp, FAKE_HOST), _a(xp, REAL_HOST)
    fn = _quadratic(xp, "float64")

    def penalty(rng: Any) -> Any:
        with _gradients(grad_case):
            return interpolated_gradient_penalty(fn, fake, real, rng=rng)

    assert_close(penalty(3), penalty(3), rtol=0)
    assert not np.array_equal(to_numpy(penalty(3)), to_numpy(penalty(4)))


def test_framework_generators_are_accepted(grad_case: Any) -> None:
    xp = grad_case.xp
    fake, real = _a(xp, FAKE_HOST), _a(xp, REAL_HOST)
    if grad_case.name == "torch":
        import torch

        make = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    elif grad_case.name == "jax":
        import jax

        make = lambda: jax.random.key(7)  # noqa: E731
    else:
        make = lambda: np.random.default_rng(7)  # noqa: E731
    results = []
    for _ in range(2):
        with _gradients(grad_case):
            results.append(
                interpolated_gradient_penalty(_quadratic(xp, "float64"), fake, real, rng=make())
            )
    assert_close(results[0], results[1], rtol=0)  # a fresh generator of the same seed


def test_explicit_alpha(grad_case: Any, dtype_name: str) -> None:
    xp = grad_case.xp
    alpha_host = np.asarray([0.0, 0.25, 0.5, 1.0]).reshape(4, 1, 1)
    fake, real = _a(xp, FAKE_HOST, dtype_name), _a(xp, REAL_HOST, dtype_name)
    with _gradients(grad_case):
        result = interpolated_gradient_penalty(
            _quadratic(xp, dtype_name), fake, real, alpha=_a(xp, alpha_host, dtype_name)
        )
    interpolates = alpha_host * FAKE_HOST + (1.0 - alpha_host) * REAL_HOST
    expected = _reference_penalty(2.0 * WEIGHTS * interpolates, 1.0, 0)
    assert_close(result, _a(xp, expected, dtype_name), rtol=_rtol(grad_case, dtype_name))


@pytest.mark.backend("jax")
def test_jax_requires_key_or_seed() -> None:
    import jax.numpy as jnp

    fake, real = jnp.ones((2, 2)), jnp.zeros((2, 2))
    with pytest.raises(
        InvalidTypeError,
        match=r"`rng` is required for jax arrays: .*int seed or a jax.random key.*`alpha`",
    ):
        interpolated_gradient_penalty(jnp.sum, fake, real)


@pytest.mark.backend("torch")
def test_torch_without_rng_uses_global_generator() -> None:
    import torch

    fake, real = torch.ones(3, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)
    fn = lambda v: torch.sum(v * v)  # noqa: E731
    torch.manual_seed(0)
    first = interpolated_gradient_penalty(fn, fake, real)
    torch.manual_seed(0)
    torch.testing.assert_close(interpolated_gradient_penalty(fn, fake, real), first)


# ---------------------------------------------------------------- finite-difference path


def _mlp_params() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.normal(size=(2, 5)), rng.normal(size=(5,)), rng.normal(size=(5, 1))]


def _mlp(xp: Any, params: list[Any]) -> Any:
    w1, b1, w2 = params
    return lambda v: xp.sum(xp.matmul(xp.tanh(xp.matmul(v, w1) + b1), w2))


@pytest.mark.backend("torch")
def test_finite_difference_value_within_1e_5_of_torch(fd_case: Any) -> None:
    import array_api_compat.torch as txp

    fd_xp = fd_case.xp
    x_host = RNG.normal(size=(6, 2))
    fd_params = [_a(fd_xp, p) for p in _mlp_params()]
    with pytest.warns(FiniteDifferenceWarning, match=r"approximate gradient, O\(n\) evaluations"):
        approximate = gradient_penalty(_mlp(fd_xp, fd_params), _a(fd_xp, x_host), batch_axis=0)
    torch_params = [_a(txp, p) for p in _mlp_params()]
    exact = gradient_penalty(_mlp(txp, torch_params), _a(txp, x_host), batch_axis=0)
    np.testing.assert_allclose(to_numpy(approximate), to_numpy(exact), rtol=1e-5, atol=1e-5)


def test_finite_difference_second_order_raises(fd_case: Any) -> None:
    xp = fd_case.xp
    x = xp.log(_a(xp, [[0.5, 0.5]]))
    outer = lambda v: gradient_penalty(lambda u: xp.sum(u * u * u), v)  # noqa: E731
    with (
        pytest.warns(FiniteDifferenceWarning),
        pytest.raises(
            BackendError, match=r"second-order gradients need exact autodiff.*torch or jax"
        ),
    ):
        get_backend(x).grad(outer, x)
    # the refusal leaves no state behind: first order still works
    with _gradients(fd_case):
        assert_close(gradient_penalty(xp.sum, x), _a(xp, SPEC_PARITY), rtol=1e-8)


# ---------------------------------------------------------------- output_magnitude_penalty


@pytest.mark.parametrize(
    ("reduction", "target", "expected"),
    [
        ("sum", 1.0, 16.0),  # ‖[3, 4]‖ = 5
        ("sum", 5.0, 0.0),
        ("mean", 1.0, (math.sqrt(12.5) - 1.0) ** 2),  # RMS = √((9 + 16) / 2)
        ("mean", 0.0, 12.5),
        ("none", 1.0, [4.0, 9.0]),  # (|x| − 1)² elementwise
    ],
)
def test_output_magnitude_values(
    xp: Any, dtype_name: str, reduction: str, target: float, expected: Any
) -> None:
    result = output_magnitude_penalty(
        _a(xp, [3.0, -4.0], dtype_name), target=target, reduction=reduction
    )
    assert_close(result, _a(xp, expected, dtype_name))


def test_output_magnitude_rms_versus_norm(xp: Any) -> None:
    host = RNG.normal(size=(5, 4))
    x = _a(xp, host)
    rms, norm = np.sqrt(np.mean(host**2)), np.linalg.norm(host)
    assert_close(output_magnitude_penalty(x), _a(xp, (rms - 1.0) ** 2), rtol=1e-12)
    assert_close(
        output_magnitude_penalty(x, reduction="sum"), _a(xp, (norm - 1.0) ** 2), rtol=1e-12
    )
    # RMS is the norm scaled by 1/√n: the same penalty at target·√n
    assert_close(
        output_magnitude_penalty(x, target=2.0, reduction="sum"),
        _a(xp, 20.0 * (rms - 2.0 / math.sqrt(20.0)) ** 2),
        rtol=1e-12,
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_output_magnitude_gradient_finite_at_zero(grad_case: Any, reduction: str) -> None:
    xp = grad_case.xp
    x = xp.zeros((2, 3), dtype=xp.float64)
    penalty = lambda v: xp.sum(output_magnitude_penalty(v, reduction=reduction))  # noqa: E731
    with _gradients(grad_case):
        value, grad = get_backend(x).value_and_grad(penalty, x)
    expected_value = 6.0 if reduction == "none" else 1.0
    assert_close(value, _a(xp, expected_value), rtol=1e-12)
    host = to_numpy(grad)
    assert np.all(np.isfinite(host))
    if grad_case.exact_grad:
        np.testing.assert_array_equal(host, 0.0)  # the safe root's derivative at 0


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_output_magnitude_gradient_closed_form(ad_xp: Any, dtype_name: str, reduction: str) -> None:
    host = RNG.normal(size=(3, 4))
    x = _a(ad_xp, host, dtype_name)
    grad = get_backend(x).grad(lambda v: output_magnitude_penalty(v, reduction=reduction), x)
    n = host.size if reduction == "mean" else 1
    m = np.sqrt(np.sum(host**2) / n)
    expected = 2.0 * (m - 1.0) * host / (n * m)  # d(m − 1)²/dx
    rtol = 1e-5 if dtype_name == "float32" else 1e-12
    assert_close(grad, _a(ad_xp, expected, dtype_name), rtol=rtol, atol=rtol)


# ---------------------------------------------------------------- bad input


def _call(kind: str, xp: Any, **options: Any) -> Any:
    x = _a(xp, [[1.0, 2.0], [3.0, 4.0]])
    if kind == "gp":
        return gradient_penalty(xp.sum, x, **options)
    if kind == "igp":
        return interpolated_gradient_penalty(xp.sum, x, x, **options)
    return output_magnitude_penalty(x, **options)


BAD_OPTIONS = [
    (
        "gp",
        {"target_norm": -1.0},
        InvalidValueError,
        r"`target_norm` must be finite, in \[0.0, inf\]; got -1.0",
    ),
    ("gp", {"target_norm": math.nan}, InvalidValueError, "`target_norm` must be finite"),
    ("gp", {"target_norm": "1"}, InvalidTypeError, "`target_norm` must be a real number; got '1'"),
    (
        "gp",
        {"batch_axis": 2},
        InvalidValueError,
        r"`batch_axis` must be None or in \[-2, 1\] for `x` of shape \(2, 2\); got 2",
    ),
    ("gp", {"batch_axis": -3}, InvalidValueError, "`batch_axis` must be None or in"),
    ("gp", {"batch_axis": 1.0}, InvalidTypeError, "`batch_axis` must be None or an int; got 1.0"),
    ("gp", {"batch_axis": True}, InvalidTypeError, "`batch_axis` must be None or an int; got True"),
    (
        "gp",
        {"method": "func"},
        InvalidValueError,
        "`method` must be one of 'auto', 'torch.func'; got 'func'",
    ),
    ("gp", {"method": None}, InvalidTypeError, "`method` must be one of"),
    ("igp", {"target_norm": -0.5}, InvalidValueError, "`target_norm` must be finite, in"),
    ("igp", {"batch_axis": 5}, InvalidValueError, r"for `fake` of shape \(2, 2\); got 5"),
    ("igp", {"rng": "seed"}, InvalidTypeError, "`rng` must be .*; got builtins.str"),
    ("igp", {"rng": 1.5}, InvalidTypeError, "`rng` must be .*; got builtins.float"),
    (
        "omp",
        {"target": -1.0},
        InvalidValueError,
        r"`target` must be finite, in \[0.0, inf\]; got -1.0",
    ),
    ("omp", {"target": None}, InvalidTypeError, "`target` must be a real number"),
    (
        "omp",
        {"reduction": "max"},
        InvalidValueError,
        "`reduction` must be one of 'sum', 'mean', 'none'; got 'max'",
    ),
]


@pytest.mark.parametrize(("kind", "options", "error", "message"), BAD_OPTIONS)
def test_bad_options_name_the_parameter(
    grad_case: Any, kind: str, options: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        _call(kind, grad_case.xp, **options)
    assert isinstance(info.value, ArrayPenaltiesError)
    assert isinstance(info.value, ValueError if error is InvalidValueError else TypeError)


def test_method_torch_func_needs_torch_arrays(grad_case: Any) -> None:
    if grad_case.name == "torch":
        pytest.skip("torch arrays accept method='torch.func' (see the second-order tests)")
    with pytest.raises(InvalidValueError, match=r"`method` 'torch\.func' needs torch arrays"):
        _call("gp", grad_case.xp, method="torch.func")


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_and_bool_inputs_raise_type_error(xp: Any, dtype: str) -> None:
    x = xp.asarray([[1, 0], [0, 1]], dtype=getattr(xp, dtype))
    y = _a(xp, [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(InvalidTypeError, match="`x` must have a real floating dtype"):
        gradient_penalty(xp.sum, x)
    with pytest.raises(InvalidTypeError, match="`fake` must have a real floating dtype"):
        interpolated_gradient_penalty(xp.sum, x, y)
    with pytest.raises(InvalidTypeError, match="`real` must have a real floating dtype"):
        interpolated_gradient_penalty(xp.sum, y, x)
    with pytest.raises(InvalidTypeError, match="`x` must have a real floating dtype"):
        output_magnitude_penalty(x)


@pytest.mark.parametrize("fn", [None, 3.0, "sum"])
def test_non_callable_fn_raises(grad_xp: Any, fn: Any) -> None:
    x = _a(grad_xp, [[1.0, 2.0]])
    with pytest.raises(InvalidTypeError, match="`fn` must be a callable returning a 0-d array"):
        gradient_penalty(fn, x)
    with pytest.raises(InvalidTypeError, match="`fn` must be a callable"):
        interpolated_gradient_penalty(fn, x, x)


def test_fake_and_real_must_match(grad_xp: Any) -> None:
    xp = grad_xp
    fake = _a(xp, np.ones((4, 2)))
    with pytest.raises(
        InvalidValueError,
        match=r"`fake` and `real` must have the same shape; got \(4, 2\) and \(4, 1\)",
    ):
        interpolated_gradient_penalty(xp.sum, fake, _a(xp, np.ones((4, 1))))
    with pytest.raises(InvalidValueError, match="same shape"):  # broadcastable is not enough
        interpolated_gradient_penalty(xp.sum, fake, _a(xp, np.ones((2,))))
    with pytest.raises(InvalidTypeError, match="`fake` and `real` must have the same dtype"):
        interpolated_gradient_penalty(xp.sum, fake, _a(xp, np.ones((4, 2)), "float32"))


def test_alpha_validation(grad_xp: Any) -> None:
    xp = grad_xp
    fake = _a(xp, np.ones((4, 3)))
    with pytest.raises(
        InvalidValueError,
        match=r"`alpha` must have shape \(4, 1\) \(one value per sample along 0, .*; got \(4, 3\)",
    ):
        interpolated_gradient_penalty(xp.sum, fake, fake, alpha=_a(xp, np.ones((4, 3))))
    with pytest.raises(InvalidValueError, match=r"`alpha` must have shape \(4, 1\)"):
        interpolated_gradient_penalty(xp.sum, fake, fake, alpha=_a(xp, np.ones((4,))))
    with pytest.raises(InvalidTypeError, match="`alpha` must have the dtype of `fake`"):
        interpolated_gradient_penalty(xp.sum, fake, fake, alpha=_a(xp, np.ones((4, 1)), "float32"))
    with pytest.raises(InvalidValueError, match="pass `rng` or `alpha`, not both"):
        interpolated_gradient_penalty(xp.sum, fake, fake, rng=0, alpha=_a(xp, np.ones((4, 1))))


def test_empty_batch_and_zero_dimensional_inputs(grad_xp: Any) -> None:
    xp = grad_xp
    with pytest.raises(InvalidValueError, match="`x` has no samples along `batch_axis` 0"):
        gradient_penalty(xp.sum, xp.zeros((0, 2), dtype=xp.float64), batch_axis=0)
    with pytest.raises(InvalidValueError, match="`batch_axis` must be None for a 0-d `x`; got 0"):
        gradient_penalty(xp.sum, _a(xp, 1.0), batch_axis=0)
    with pytest.raises(InvalidValueError, match="`reduction` 'mean' needs at least one element"):
        output_magnitude_penalty(xp.zeros((0,), dtype=xp.float64))


def test_fn_output_is_checked(grad_case: Any) -> None:
    xp = grad_case.xp
    x = _a(xp, [[1.0, 2.0]])
    if grad_case.name == "numpy":
        foreign, match = [1.0], r"`fn\(x\)` must be an array"
    else:
        foreign, match = np.asarray(1.0), "`fn` must return an array of the namespace of its input"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FiniteDifferenceWarning)
        with pytest.raises(InvalidValueError, match=r"`fn` must return a 0-d array .*\(1, 2\)"):
            gradient_penalty(lambda v: v * 2.0, x)
        with pytest.raises(InvalidTypeError, match=match):
            gradient_penalty(lambda v: foreign, x)


@pytest.mark.backend("torch")
def test_mixed_namespaces_raise_type_error() -> None:
    import torch

    fake = torch.ones(2, 2, dtype=torch.float64)
    real = np.ones((2, 2))
    with pytest.raises(
        InvalidTypeError, match=r"`fake` is a torch.Tensor but `real` is a numpy.ndarray"
    ):
        interpolated_gradient_penalty(torch.sum, fake, real)
    with pytest.raises(
        InvalidTypeError, match=r"`fake` is a torch.Tensor but `alpha` is a numpy.ndarray"
    ):
        interpolated_gradient_penalty(torch.sum, fake, fake, alpha=np.ones((2, 1)))


def test_options_are_keyword_only_and_arrays_positional_only() -> None:
    x = np.ones((1, 2))
    with pytest.raises(TypeError):
        gradient_penalty(np.sum, x, 1.0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        gradient_penalty(fn=np.sum, x=x)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        output_magnitude_penalty(x, 1.0)  # type: ignore[misc]
