"""Bad input at the public boundary gets a library error naming the parameter (SPEC §7).

Each case here gave a raw framework error or a silently wrong number before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arraypenalties import (
    BackendError,
    InvalidTypeError,
    InvalidValueError,
    consistency,
    elastic_net,
    get_backend,
    grad_norm,
    gradient_penalty,
    interpolated_gradient_penalty,
    is_finite,
    kl_divergence,
    l1,
    l2,
    validate,
)
from arraypenalties.transforms import add_gradient_noise


def _square_sum(v: Any) -> Any:
    return (v * v).sum()


@pytest.mark.backend("torch")
def test_gradients_inside_torch_inference_mode_raise() -> None:
    # before: gradient_penalty gave tensor(1.) (the true value is 6.0718) and grad_norm 0.0
    import torch

    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    backend = get_backend(x)
    with torch.inference_mode():
        for request in (
            lambda: gradient_penalty(_square_sum, x),
            lambda: grad_norm(_square_sum, x),
            lambda: backend.grad(_square_sum, x),
            lambda: backend.value_and_grad(_square_sum, x),
            lambda: backend.per_term_grads([_square_sum], x),
            lambda: backend.func_grad(_square_sum, x),
        ):
            with pytest.raises(BackendError, match=r"inside torch.inference_mode\(\)"):
                request()
        made_inside = torch.ones(3, dtype=torch.float64)
    with pytest.raises(BackendError, match="`x` is an inference tensor"):
        backend.grad(_square_sum, made_inside)
    # outside inference mode the value is the closed form: (‖∇‖ - 1)² = (2‖x‖ - 1)²
    expected = (2 * np.sqrt(14.0) - 1) ** 2
    assert float(gradient_penalty(_square_sum, x).detach()) == pytest.approx(expected, rel=1e-12)


@pytest.mark.backend("torch")
def test_torch_arrays_on_two_devices_raise_naming_both() -> None:
    import torch

    cpu, meta = torch.zeros(2, 3), torch.zeros(2, 3, device="meta")
    pattern = r"`{}` is on device device\(type='cpu'\) but `{}` is on device device\(type='meta'\)"
    with pytest.raises(InvalidValueError, match=pattern.format("p_logprobs", "q_logprobs")):
        kl_divergence(cpu, meta)
    with pytest.raises(InvalidValueError, match=pattern.format("a", "b")):
        consistency(cpu, meta)
    with pytest.raises(InvalidValueError, match=pattern.format("fake", "real")):
        interpolated_gradient_penalty(_square_sum, cpu, meta, rng=0)


@pytest.mark.backend("array_api_strict")
def test_array_api_strict_arrays_on_two_devices_raise_naming_both() -> None:
    import array_api_strict as xp

    here = xp.asarray([[0.0, -1.0]])
    there = xp.asarray([[0.0, -1.0]], device=xp.Device("device1"))
    with pytest.raises(
        InvalidValueError,
        match=r"`p_logprobs` is on device .*CPU_DEVICE.* but "
        r"`q_logprobs` is on device .*device1",
    ):
        kl_divergence(here, there)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: l1(x, xp="numpy"),
        lambda x: l2(x, xp="numpy"),
        lambda x: elastic_net(x, xp=3),
        lambda x: validate(x, xp="numpy"),
        lambda x: is_finite(x, xp="numpy"),
        lambda x: gradient_penalty(np.sum, x, xp="numpy"),
    ],
    ids=["l1", "l2", "elastic_net", "validate", "is_finite", "gradient_penalty"],
)
def test_an_xp_that_is_not_a_namespace_raises_naming_xp(call: Any) -> None:
    # before: AttributeError: 'str' object has no attribute 'isdtype'
    with pytest.raises(
        InvalidTypeError, match=r"`xp` must be an Array API namespace.*got 'numpy'|got 3"
    ):
        call(np.ones(3))


def test_l2_center_array_raises_naming_center() -> None:
    # before: ValueError: The truth value of an array with more than one element is ambiguous
    with pytest.raises(InvalidTypeError, match="`center` must be None, 'mean' or a real number"):
        l2(np.ones(3), center=np.ones(3))  # type: ignore[arg-type]


@pytest.mark.parametrize("lam", [10**400, -(10**400)], ids=["positive", "negative"])
def test_a_huge_int_lam_raises_naming_lam(lam: int) -> None:
    # before: OverflowError: int too large to convert to float
    with pytest.raises(InvalidValueError, match=r"`lam` must be finite, in \[0.0, inf\]; got a"):
        l2(np.ones(3), lam=lam)


def test_an_rng_beyond_every_generator_raises_naming_rng(case: Any) -> None:
    # before: OverflowError / ValueError from inside the framework's generator
    fake = case.xp.ones((2, 3), dtype=case.xp.float64)
    with pytest.raises(
        InvalidValueError, match=r"`rng` must be an int in \[0, 9223372036854775807\]"
    ):
        interpolated_gradient_penalty(_square_sum, fake, fake, rng=2**70)
    if case.name == "dask":
        return  # values only: the seed is checked above, there is no gradient to take
    # numpy integers are ints
    assert get_backend(fake).uniform(np.int64(3), (2,), case.xp.float64, like=fake).shape == (2,)


def test_a_seed_beyond_every_generator_raises_early() -> None:
    # before: accepted, then an OverflowError inside jax.random.key at the first update
    with pytest.raises(InvalidValueError, match=r"`seed` must be a non-negative int below 2\*\*63"):
        add_gradient_noise(seed=2**80)


@pytest.mark.backend("jax")
def test_a_traced_int_rng_under_jit_works_like_the_eager_seed() -> None:
    # before: jax's "invalid PRNG key data" for the traced int
    import jax
    import jax.numpy as jnp

    fake, real = jnp.ones((4, 3)), jnp.zeros((4, 3))

    def gp(seed: Any) -> Any:
        return interpolated_gradient_penalty(_square_sum, fake, real, rng=seed)

    assert float(jax.jit(gp)(3)) == pytest.approx(float(gp(3)), rel=1e-6)
