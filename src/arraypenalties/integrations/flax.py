"""Activity penalties over values a flax model sows (imports flax and jax).

A flax module records an activation with ``self.sow("intermediates", "act", h)``
(linen) or ``self.sow(nnx.Intermediate, "act", h)`` (nnx, inside
``nnx.capture``); :func:`activity_penalty` turns the captured collection into
a weighted penalty to add to the loss. In
:func:`arraypenalties.integrations.jax.make_train_step` the same paths go in
``activity=`` with ``has_aux=True``.

Examples
--------
>>> import jax, jax.numpy as jnp
>>> from flax import linen as nn
>>> from arraypenalties import l1
>>> from arraypenalties.integrations.flax import activity_penalty
>>> class Block(nn.Module):
...     @nn.compact
...     def __call__(self, x):
...         h = nn.relu(nn.Dense(4)(x))
...         self.sow("intermediates", "act", h)
...         return h
>>> model = Block()
>>> x = jnp.ones((2, 3), dtype=jnp.float32)
>>> params = model.init(jax.random.key(0), x)
>>> h, state = model.apply(params, x, mutable=["intermediates"])
>>> bool(activity_penalty(state["intermediates"], {"act": (l1, 0.5)}) == 0.5 * jnp.sum(h))
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax  # noqa: F401  (the framework this module adapts; imported at the top by design)
import jax.numpy as jnp

from arraypenalties._lib.errors import InvalidValueError
from arraypenalties.integrations._sown import activity_terms, check_spec, sown_values

__all__ = ["activity_penalty", "sown_values"]

Array = Any


def activity_penalty(
    intermediates: Any,
    penalties: Mapping[str, tuple[Callable[..., Array], float] | tuple[Any, ...]],
) -> Array:
    """``Σ weight · Σ penalty(value)`` over the values sown under each path.

    Parameters
    ----------
    intermediates : mapping or flax nnx State
        The captured collection: linen's ``state["intermediates"]`` from
        ``model.apply(..., mutable=["intermediates"])`` (the whole ``state``
        works too), or the nnx ``State`` of ``Intermediate`` values that
        ``nnx.capture(model, nnx.Intermediate)`` or ``nnx.pop`` returns.
    penalties : mapping
        Path → ``(penalty, weight)`` or ``(penalty, weight, opts)``. The path
        joins nested module names with ``/`` (``"encoder/block_0"``), optionally
        ending in a sown name (``"encoder/block_0/act"``). Every value sown
        under the path (each call of a module called several times, every
        sown name below a module) is penalised with ``penalty(value, **opts)``
        and the results are summed, then weighted.

    Returns
    -------
    array
        0-d; differentiable with respect to the parameters that produced the
        sown values (use it inside the loss you differentiate).

    Raises
    ------
    UnknownNameError
        A path names nothing that was sown (the message lists the close ones).
    InvalidValueError
        ``penalties`` is empty, or a penalty does not return a 0-d array.
    InvalidTypeError
        A spec is not ``(penalty, weight)``.
    """
    if not isinstance(penalties, Mapping) or not penalties:
        msg = (
            "`penalties` must be a non-empty mapping of paths to (penalty, weight); "
            f"got {penalties!r}"
        )
        raise InvalidValueError(msg)
    specs = {
        path: check_spec(spec, f"activity penalty {path!r}") for path, spec in penalties.items()
    }
    raw = activity_terms(intermediates, specs)
    terms = [specs[path][1] * value for path, value in raw.items()]
    return jnp.asarray(sum(terms[1:], terms[0]))
