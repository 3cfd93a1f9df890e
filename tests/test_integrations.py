"""The optax adapter (the torch integrations are tested in test_integrations_torch*.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from arraypenalties import InvalidTypeError
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
