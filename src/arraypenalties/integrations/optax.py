"""Use an arraypenalties transform inside optax (imports optax and jax).

Examples
--------
>>> import jax.numpy as jnp
>>> import optax
>>> from arraypenalties.integrations.optax import to_optax
>>> from arraypenalties.transforms import adaptive_gradient_clipping
>>> opt = optax.chain(to_optax(adaptive_gradient_clipping(unit_axis=-1)), optax.sgd(0.1))
>>> params = {"kernel": jnp.ones((3, 2), dtype=jnp.float32)}
>>> state = opt.init(params)
>>> updates, state = opt.update({"kernel": jnp.ones((3, 2))}, state, params)
>>> updates["kernel"].shape
(3, 2)
"""

from __future__ import annotations

from typing import Any

import optax

from arraypenalties.transforms._base import GradientTransformation, check_transform

__all__ = ["to_optax"]


def to_optax(tx: GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """Wrap ``tx`` as an optax ``GradientTransformationExtraArgs``.

    The result works in ``optax.chain``, ``optax.masked`` (optax's
    ``MaskedNode`` placeholders are empty containers to our tree helper) and
    under ``jax.jit``; optax's extra keyword arguments are accepted and ignored.
    Trees must be dict / list / tuple / NamedTuple containers of arrays (the
    containers ``arraypenalties.transforms`` understands); other pytree nodes
    (equinox modules, flax struct dataclasses) are not walked.

    Parameters
    ----------
    tx : GradientTransformation
        Any ``arraypenalties.transforms`` transform (or chain of them).

    Returns
    -------
    optax.GradientTransformationExtraArgs
        Same ``init`` and states as ``tx``.

    Raises
    ------
    InvalidTypeError
        ``tx`` is not an ``(init, update)`` pair.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import optax
    >>> from arraypenalties.integrations.optax import to_optax
    >>> from arraypenalties.transforms import clip_by_global_norm
    >>> opt = optax.chain(to_optax(clip_by_global_norm(max_norm=1.0)), optax.sgd(1.0))
    >>> params = jnp.zeros(2, dtype=jnp.float32)
    >>> grads = jnp.asarray([3.0, 4.0], dtype=jnp.float32)
    >>> updates, _ = opt.update(grads, opt.init(params), params)
    >>> updates
    Array([-0.6, -0.8], dtype=float32)
    """
    inner = check_transform(tx, "tx")

    def init(params: Any) -> Any:
        return inner.init(params)

    def update(updates: Any, state: Any, params: Any = None, **extra_args: Any) -> Any:
        del extra_args  # optax passes e.g. `value` to every member of a chain
        return inner.update(updates, state, params)

    return optax.GradientTransformationExtraArgs(init, update)
