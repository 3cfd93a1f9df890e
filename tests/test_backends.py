"""The backend registry and every backend's gradients, primitives and errors (SPEC §7)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

import arraypenalties.backends as registry
from arraypenalties import (
    BackendError,
    FiniteDifferenceWarning,
    InvalidTypeError,
    InvalidValueError,
    get_backend,
    l1,
    l2,
)
from arraypenalties.backends import (
    available_backends,
    primitives,
    register_backend,
    set_finite_difference_limit,
)
from arraypenalties.testing import as_array as _a
from arraypenalties.testing import assert_close, to_numpy

POINT = [[0.5, -1.25, 2.0], [3.0, -0.75, 1.5]]


def _cubic(xp: Any) -> Any:
    """f(x) = Σ (x³/3 + sin x · x²): a non-quadratic function with a closed-form gradient."""
    return lambda v: xp.sum(v * v * v / 3.0 + xp.sin(v) * v * v)


def _cubic_grad(x: np.ndarray) -> np.ndarray:
    return x**2 + np.cos(x) * x**2 + 2 * x * np.sin(x)


@pytest.fixture
def restore_registry() -> Any:
    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    registry._LOADED.clear()
    registry._BY_TYPE.clear()


# ---------------------------------------------------------------- detection


def test_detects_each_backend_by_type(case: Any) -> None:
    x = _a(case.xp, [1.0, 2.0])
    backend = get_backend(x)
    assert backend.name == case.name
    assert backend.exact is case.exact_grad
    assert backend.has_gradients is case.has_gradients
    assert get_backend(_a(case.xp, [3.0])) is backend  # cached per type


def test_subclass_from_another_module_found_by_isinstance() -> None:
    class Sub(np.ndarray):  # its type's module is this test module, not numpy
        pass

    sub = np.ones(3).view(Sub)
    assert type(sub).__module__ != "numpy"
    assert get_backend(sub).name == "numpy"


@pytest.mark.backend("torch")
def test_torch_parameter_and_subclass() -> None:
    import torch

    class Tagged(torch.Tensor):
        pass

    assert get_backend(torch.nn.Parameter(torch.ones(2))).name == "torch"
    assert get_backend(torch.ones(2).as_subclass(Tagged)).name == "torch"


@pytest.mark.backend("jax")
def test_jax_tracers_detected_as_jax() -> None:
    import jax
    import jax.numpy as jnp

    names = []
    jax.jit(lambda v: names.append(get_backend(v).name) or v)(jnp.ones(1))
    jax.grad(lambda v: names.append(get_backend(v).name) or v.sum())(jnp.ones(1))
    assert names == ["jax", "jax"]


def test_unknown_type_names_type_and_known_backends() -> None:
    with pytest.raises(
        InvalidTypeError,
        match=r"no backend for arrays of type builtins\.list; known backends: .*jax.*numpy.*torch",
    ):
        get_backend([1.0, 2.0])


def test_available_backends_lists_installed(case: Any) -> None:
    assert case.name in available_backends()


def test_register_backend_serves_new_array_type(restore_registry: Any) -> None:
    class FakeArray:
        pass

    FakeArray.__module__ = "fakeframework.core"
    loads = []

    class FakeBackend(registry.Backend):
        name = "fake"

    def load() -> registry.Backend:
        loads.append(1)
        return FakeBackend()

    register_backend("fake", load, modules=("fakeframework",))
    assert loads == []  # nothing loaded until an array is seen
    assert get_backend(FakeArray()).name == "fake"
    assert get_backend(FakeArray()).name == "fake"
    assert loads == [1]
    with pytest.raises(InvalidValueError, match="`name` 'fake' is already registered"):
        register_backend("fake", load, modules=("fakeframework",))
    with pytest.raises(InvalidValueError, match="`modules` must be a non-empty sequence"):
        register_backend("other", load, modules=())
    with pytest.raises(InvalidValueError, match="`modules` must be a non-empty sequence"):
        register_backend("other", load, modules="fakeframework")


def test_register_backend_replace_overrides_builtin(restore_registry: Any) -> None:
    class Marker(registry.Backend):
        name = "numpy-marker"

    register_backend("numpy", Marker, modules=("numpy",), replace=True)
    assert get_backend(np.ones(1)).name == "numpy-marker"


# ---------------------------------------------------------------- gradients


def test_value_and_grad_closed_form(grad_case: Any, dtype_name: str, quiet_fd: Any) -> None:
    xp = grad_case.xp
    x = _a(xp, POINT, dtype_name)
    value, grad = get_backend(x).value_and_grad(_cubic(xp), x)
    host = np.asarray(POINT)
    expected_value = np.sum(host**3 / 3 + np.sin(host) * host**2)
    rtol = 2e-5 if dtype_name == "float32" else (1e-12 if grad_case.exact_grad else 1e-7)
    assert_close(value, _a(xp, expected_value, dtype_name), rtol=rtol)
    assert_close(grad, _a(xp, _cubic_grad(host), dtype_name), rtol=rtol, atol=rtol)


def test_finite_differences_agree_with_autodiff_in_float64(fd_case: Any, quiet_fd: Any) -> None:
    x = _a(fd_case.xp, POINT)
    fd_grad = to_numpy(get_backend(x).grad(_cubic(fd_case.xp), x))
    np.testing.assert_allclose(fd_grad, _cubic_grad(np.asarray(POINT)), rtol=1e-6)


@pytest.mark.parametrize("values", [[1e4, -3e3, 5e3], [1e-4, -2e-4, 3e-5]], ids=["large", "tiny"])
def test_finite_differences_scale_step_with_magnitude(
    fd_xp: Any, quiet_fd: Any, values: Any
) -> None:
    # h = eps^(1/3)·max(1, |x|): a fixed h would lose all digits at |x| = 1e4
    x = _a(fd_xp, values)
    grad = get_backend(x).grad(lambda v: fd_xp.sum(v * v * v / 3.0 + v), x)
    np.testing.assert_allclose(to_numpy(grad), np.asarray(values) ** 2 + 1.0, rtol=1e-6)


def test_finite_differences_warn_on_every_request(fd_xp: Any) -> None:
    x = _a(fd_xp, [1.0, 2.0])
    backend = get_backend(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend.grad(lambda v: l2(v), x)
        backend.value_and_grad(lambda v: l2(v), x)
        backend.per_term_grads([lambda v: l1(v), lambda v: l2(v)], x)
    assert [type(w.message) for w in caught] == [FiniteDifferenceWarning] * 3
    assert all(w.filename == __file__ for w in caught)  # attributed to the caller
    assert "O(n) evaluations" in str(caught[0].message)
    assert issubclass(FiniteDifferenceWarning, UserWarning)


def test_finite_difference_size_limit(fd_xp: Any) -> None:
    previous = set_finite_difference_limit(5)
    try:
        small, large = _a(fd_xp, [1.0] * 5), _a(fd_xp, [1.0] * 6)
        with pytest.warns(FiniteDifferenceWarning):
            get_backend(small).grad(lambda v: l2(v), small)
        with pytest.raises(
            BackendError, match=r"limited to 5 elements .*`x` has 6.*set_finite_difference_limit"
        ):
            get_backend(large).grad(lambda v: l2(v), large)
    finally:
        assert set_finite_difference_limit(previous) == 5


def test_default_finite_difference_limit_is_enforced(fd_xp: Any) -> None:
    x = fd_xp.zeros((10_001,), dtype=fd_xp.float64)
    with pytest.raises(BackendError, match="limited to 10000 elements"):
        get_backend(x).grad(lambda v: l2(v), x)


def test_set_finite_difference_limit_rejects_bad_values() -> None:
    with pytest.raises(InvalidValueError, match=r"`max_elements` must be an int in \[0, inf\]"):
        set_finite_difference_limit(-1)
    with pytest.raises(InvalidTypeError, match=r"`max_elements` must be an int; got 10\.0"):
        set_finite_difference_limit(10.0)  # type: ignore[arg-type]
    previous = set_finite_difference_limit(np.int64(7))  # numpy ints are ints
    assert set_finite_difference_limit(previous) == 7


def test_finite_differences_refuse_second_order(fd_xp: Any) -> None:
    x = _a(fd_xp, [1.0, 2.0])
    with pytest.raises(
        BackendError, match=r"second-order gradients .*need exact autodiff.*torch or jax"
    ):
        get_backend(x).grad(lambda v: l2(v), x, create_graph=True)


def test_finite_differences_edge_shapes(fd_xp: Any, quiet_fd: Any) -> None:
    scalar = _a(fd_xp, 1.5)
    assert_close(get_backend(scalar).grad(lambda v: l2(v), scalar), _a(fd_xp, 3.0), rtol=1e-9)
    empty = fd_xp.zeros((0, 3), dtype=fd_xp.float32)
    assert_close(get_backend(empty).grad(lambda v: l1(v), empty), empty)


def test_gradient_of_constant_function_is_zero(grad_case: Any, quiet_fd: Any) -> None:
    xp = grad_case.xp
    x = _a(xp, [1.0, 2.0])
    grad = get_backend(x).grad(lambda v: xp.asarray(3.0, dtype=xp.float64), x)
    assert_close(grad, xp.zeros_like(x))


def test_non_scalar_output_raises(grad_case: Any, quiet_fd: Any) -> None:
    x = _a(grad_case.xp, [1.0, 2.0])
    with pytest.raises(
        InvalidValueError,
        match=r"`fn` must return a 0-d array to be differentiated; got shape \(2,\)",
    ):
        get_backend(x).grad(lambda v: v * 2.0, x)


def test_integer_output_raises(grad_case: Any, quiet_fd: Any) -> None:
    xp = grad_case.xp
    x = _a(xp, [1.0, 2.0])
    with pytest.raises(InvalidTypeError, match=r"real floating 0-d array .* argmax"):
        get_backend(x).grad(lambda v: xp.argmax(v), x)


def test_integer_input_raises(grad_case: Any) -> None:
    xp = grad_case.xp
    x = xp.asarray([1, 2], dtype=xp.int64)
    with pytest.raises(InvalidTypeError, match="`x` must have a real floating dtype"):
        get_backend(x).grad(lambda v: xp.sum(v), x)


def test_per_term_grads_match_single_gradients(
    grad_case: Any, dtype_name: str, quiet_fd: Any
) -> None:
    xp = grad_case.xp
    x = _a(xp, POINT, dtype_name)
    backend = get_backend(x)
    fns = [lambda v: l1(v), lambda v: l2(v, lam=0.5), _cubic(xp)]
    values, grads = backend.per_term_grads(fns, x)
    assert len(values) == len(grads) == 3
    rtol = 1e-5 if dtype_name == "float32" else 1e-7
    for fn, value, grad in zip(fns, values, grads, strict=True):
        single_value, single_grad = backend.value_and_grad(fn, x)
        assert_close(value, single_value, rtol=rtol)
        assert_close(grad, single_grad, rtol=rtol, atol=rtol)


def test_per_term_grads_one_forward_each(ad_case: Any) -> None:
    # (finite differences evaluate each function 2·n + 1 times by design)
    xp = ad_case.xp
    x = _a(xp, [1.0, 2.0])
    calls = {"l1": 0, "l2": 0}

    def counted(name: str, penalty: Any) -> Any:
        def fn(v: Any) -> Any:
            calls[name] += 1  # counts Python calls; jax traces once per compilation
            return penalty(v)

        return fn

    fns = [counted("l1", l1), counted("l2", l2)]
    backend = get_backend(x)
    backend.per_term_grads(fns, x)
    backend.per_term_grads(fns, x)  # jax: the jitted function is cached
    assert calls == ({"l1": 2, "l2": 2} if ad_case.name == "torch" else {"l1": 1, "l2": 1})


# ---------------------------------------------------------------- autodiff specifics


@pytest.mark.backend("torch")
def test_torch_second_order_through_create_graph() -> None:
    import torch

    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    x = w * 3.0  # non-leaf: the gradient must stay connected to w
    backend = get_backend(x)
    g = backend.grad(lambda v: torch.sum(v**3), x, create_graph=True)  # 3x²
    assert g.requires_grad
    (dw,) = torch.autograd.grad(torch.sum(g), w)  # d/dw Σ 3(3w)² = 54 w
    torch.testing.assert_close(dw, 54.0 * w.detach())
    value, g_plain = backend.value_and_grad(lambda v: torch.sum(v**3), x)
    assert not value.requires_grad and not g_plain.requires_grad
    assert w.grad is None


@pytest.mark.backend("torch")
def test_torch_grad_works_under_no_grad() -> None:
    import torch

    x = torch.tensor([1.0, 2.0])
    with torch.no_grad():
        grad = get_backend(x).grad(lambda v: l2(v), x)
    torch.testing.assert_close(grad, 2.0 * x)


@pytest.mark.backend("jax")
def test_jax_gradient_differentiable_again() -> None:
    import jax
    import jax.numpy as jnp

    backend = get_backend(jnp.ones(1))
    outer = jax.grad(lambda v: jnp.sum(backend.grad(lambda u: jnp.sum(u**3), v, create_graph=True)))
    x = jnp.asarray([0.5, -1.0, 2.0])
    np.testing.assert_allclose(np.asarray(outer(x)), 6.0 * np.asarray(x))
    np.testing.assert_allclose(np.asarray(jax.jit(outer)(x)), 6.0 * np.asarray(x))


def test_stop_gradient(grad_case: Any, quiet_fd: Any) -> None:
    xp = grad_case.xp
    x = _a(xp, [1.0, -2.0])
    backend = get_backend(x)
    assert_close(backend.stop_gradient(x), x)
    grad = backend.grad(lambda v: xp.sum(backend.stop_gradient(v) * v), x)
    expected = x if grad_case.exact_grad else 2.0 * x  # no autodiff: nothing to stop
    assert_close(grad, expected, rtol=1e-7)


@pytest.mark.backend("dask")
def test_dask_has_values_but_no_gradients() -> None:
    import array_api_compat.dask.array as xp

    x = _a(xp, [1.0, 2.0])
    backend = get_backend(x)
    for request in (
        lambda: backend.grad(lambda v: l2(v), x),
        lambda: backend.value_and_grad(lambda v: l2(v), x),
        lambda: backend.per_term_grads([lambda v: l2(v)], x),
    ):
        with pytest.raises(BackendError, match="dask arrays have no autodiff"):
            request()
    assert_close(backend.stop_gradient(x), x)


# ---------------------------------------------------------------- logsumexp, uniform


def _reference_logsumexp(host: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    shift = np.max(host, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(host - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


@pytest.mark.parametrize("axis", [None, -1, 0, (0, 1)], ids=["all", "last", "first", "both"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_matches_reference(case: Any, dtype_name: str, axis: Any, keepdims: bool) -> None:
    host = np.asarray(
        [[1000.0, 999.0, -math.inf], [-math.inf, -math.inf, -math.inf], [0.5, -2.0, 3.0]]
    )
    x = _a(case.xp, host, dtype_name)
    result = primitives.logsumexp(x, axis=axis, keepdims=keepdims, xp=case.xp)
    expected = _reference_logsumexp(host, axis, keepdims)
    assert_close(result, _a(case.xp, expected, dtype_name))


def test_uniform_shape_dtype_device_range(case: Any, dtype_name: str) -> None:
    xp = case.xp
    like = _a(xp, [1.0], dtype_name)
    dtype = getattr(xp, dtype_name)
    backend = get_backend(like)
    samples = backend.uniform(7, (400, 3), dtype, like=like)
    assert samples.dtype == dtype and tuple(samples.shape) == (400, 3)
    host = to_numpy(samples)
    assert host.min() >= 0.0 and host.max() < 1.0
    assert 0.4 < host.mean() < 0.6
    assert_close(backend.uniform(7, (400, 3), dtype, like=like), samples, rtol=0)
    assert not np.array_equal(to_numpy(backend.uniform(8, (400, 3), dtype, like=like)), host)


def test_uniform_half_precision_stays_below_one(case: Any) -> None:
    xp = case.xp
    if not hasattr(xp, "float16"):
        pytest.skip(f"{case.name}: its namespace has no float16 (the Array API has none)")
    like = xp.asarray([1.0], dtype=xp.float16)
    rng = None if case.name == "torch" else 0  # jax needs a seed; torch: global generator
    host = to_numpy(get_backend(like).uniform(rng, (200_000,), xp.float16, like=like))
    assert host.dtype == np.float16
    assert host.min() >= 0.0 and host.max() < 1.0


def test_uniform_accepts_framework_generators(case: Any) -> None:
    xp = case.xp
    like = _a(xp, [1.0])
    backend = get_backend(like)
    if case.name == "torch":
        import torch

        rngs: list[Any] = [torch.Generator().manual_seed(3)]
    elif case.name == "jax":
        import jax

        rngs = [jax.random.key(3), jax.random.PRNGKey(3)]
    else:
        rngs = [np.random.default_rng(3)]
    for rng in rngs:
        samples = to_numpy(backend.uniform(rng, (5,), xp.float64, like=like))
        assert samples.shape == (5,) and np.all((samples >= 0) & (samples < 1))


def test_uniform_rejects_unknown_rng(case: Any) -> None:
    like = _a(case.xp, [1.0])
    with pytest.raises(InvalidTypeError, match=r"`rng` must be .*; got builtins.str"):
        get_backend(like).uniform("seed", (2,), case.xp.float64, like=like)


@pytest.mark.backend("jax")
def test_jax_uniform_requires_key_or_seed() -> None:
    import jax.numpy as jnp

    like = jnp.ones(1)
    with pytest.raises(
        InvalidTypeError, match=r"int seed or a jax.random key .*no global generator"
    ):
        get_backend(like).uniform(None, (2,), jnp.float64, like=like)
