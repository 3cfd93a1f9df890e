"""Annealed Gaussian gradient noise (Neelakantan et al. 2015; optax ``add_noise``)."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, NamedTuple

from arraypenalties._lib.checks import check_real
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties.backends import get_backend
from arraypenalties.backends.primitives import MAX_SEED, standard_normals
from arraypenalties.transforms._base import (
    GradientTransformation,
    check_state,
    namespace_of,
    prepare,
)
from arraypenalties.tree import flatten

__all__ = ["AddGradientNoiseState", "add_gradient_noise"]


class AddGradientNoiseState(NamedTuple):
    """State of :func:`add_gradient_noise`.

    Attributes
    ----------
    count : int or array
        ``t``, the number of updates done: a Python int, or a 0-d int32 array
        when ``init`` was given jax arrays (as optax, so the state keeps one
        type through ``jax.jit`` and ``lax.scan``).
    seed : int
        The seed; the noise of update ``t`` is a pure function of ``(seed, t)``,
        so this pair is the whole random state (checkpoint it like any int).
    """

    count: Any
    seed: Any


def _check_seed(seed: object) -> int:
    try:
        if isinstance(seed, bool):
            raise TypeError
        value = operator.index(seed)  # type: ignore[arg-type]  # ints, numpy integers
    except TypeError:
        msg = f"`seed` must be a non-negative int below 2**63; got {seed!r}"
        raise InvalidTypeError(msg) from None
    if not 0 <= value <= MAX_SEED:  # the largest seed every backend's generator takes
        msg = f"`seed` must be a non-negative int below 2**63; got {seed!r}"
        raise InvalidValueError(msg)
    return value


@dataclass(frozen=True)
class _GradientNoise:
    """``init`` / ``update`` of :func:`add_gradient_noise`."""

    eta: float
    gamma: float
    seed: int

    def init(self, params: Any) -> AddGradientNoiseState:
        leaves, treedef = flatten(params)
        if leaves:
            xp = namespace_of(leaves, treedef, "params")  # one namespace, else a clear error
        if leaves and get_backend(leaves[0]).array_counters:
            # an int32 array, as optax's counts: the state keeps one type through jit / scan
            return AddGradientNoiseState(count=xp.zeros((), dtype=xp.int32), seed=self.seed)
        return AddGradientNoiseState(count=0, seed=self.seed)

    def update(
        self, updates: Any, state: Any, params: Any = None
    ) -> tuple[Any, AddGradientNoiseState]:
        check_state(state, AddGradientNoiseState, "add_gradient_noise")
        prepared = prepare(updates, params, transform="add_gradient_noise", needs_params=False)
        xp = prepared.xp
        step = state.count
        new_state = AddGradientNoiseState(count=step + 1, seed=state.seed)
        if xp is None:
            return updates, new_state
        std = (self.eta / (1 + step) ** self.gamma) ** 0.5  # a float, or a traced jax scalar
        noise = standard_normals(prepared.leaves, state.seed, step)
        new_leaves = []
        for g, z in zip(prepared.leaves, noise, strict=True):
            scale = std if isinstance(std, float) else xp.astype(std, g.dtype)
            new_leaves.append(prepared.add(g, scale * z))
        return prepared.rebuild(new_leaves), new_state


def add_gradient_noise(
    variance: float = 0.01, decay: float = 0.55, *, seed: int = 0
) -> GradientTransformation:
    """Add Gaussian noise of annealed variance ``σ²_t = variance / (1 + t)^decay``.

    Placement: on the raw gradients, before the optimizer, as in the paper (and
    optax's examples). Not a decay, so neither coupled nor decoupled.

    Parameters
    ----------
    variance : float, default 0.01
        ``η``, the variance at the first update; finite and ``>= 0``.
    decay : float, default 0.55
        ``γ``, the annealing exponent; finite and ``>= 0``.
    seed : int, default 0
        Non-negative, below ``2**63`` (numpy integers accepted). The same seed
        gives the same noise on the same backend.

    Returns
    -------
    GradientTransformation
        State :class:`AddGradientNoiseState` ``(count, seed)``; ``params`` not needed.

    Raises
    ------
    InvalidValueError
        ``variance`` or ``decay`` negative or not finite, ``seed`` negative.
    InvalidTypeError
        An option has the wrong type; at update: non-floating or mixed-namespace leaves.

    Notes
    -----
    .. math:: g' = g + \\sigma_t z, \\quad z \\sim N(0, I), \\quad
        \\sigma_t^2 = \\eta / (1 + t)^{\\gamma}

    with ``t = 0`` on the first update (optax's ``add_noise`` uses the same
    variance sequence). The samples come from each framework's own generator
    (jax keys ``split(fold_in(key(seed), t), n_leaves)``; torch: a
    ``torch.Generator`` per device seeded from ``(seed, t)``; numpy and other
    namespaces: ``numpy.random.default_rng([seed, t])`` on the host, then
    copied to the leaf's device), so the noise is reproducible per backend but
    differs between backends. Under ``jax.jit`` (e.g. through the optax
    adapter) the count becomes a traced integer and everything stays traceable.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import add_gradient_noise
    >>> tx = add_gradient_noise(0.01, seed=42)
    >>> grads = {"w": np.zeros(3)}
    >>> noisy, state = tx.update(grads, tx.init(grads))
    >>> again, _ = tx.update(grads, tx.init(grads))
    >>> bool(np.array_equal(noisy["w"], again["w"])), state.count
    (True, 1)
    """
    eta = check_real(variance, "variance", low=0.0)
    gamma = check_real(decay, "decay", low=0.0)
    noise = _GradientNoise(eta, gamma, _check_seed(seed))
    return GradientTransformation(noise.init, noise.update)
