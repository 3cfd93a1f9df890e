"""Gradient transforms in optax's shape, for arrays of any backend.

A transform is a :class:`GradientTransformation` ``(init, update)`` of pure
functions: ``state = tx.init(params)``, then every step
``updates, state = tx.update(grads, state, params)``. Trees are dict / list /
tuple / NamedTuple (and None) containers of arrays of one namespace; ``params``
and ``updates`` must have the same structure. States are NamedTuples of arrays
and ints, so they pickle and checkpoint as plain data.

Decay placement: a decay transform placed before an adaptive optimizer's
preconditioner is coupled L2 / L1 regularisation; placed after it (before the
learning-rate scale) it is decoupled, AdamW-style decay.

Examples
--------
>>> import numpy as np
>>> from arraypenalties import transforms as T
>>> params = {"w": np.asarray([[3.0, 4.0]]), "b": np.asarray([1.0])}
>>> grads = {"w": np.asarray([[30.0, 40.0]]), "b": np.asarray([0.0])}
>>> tx = T.chain(
...     T.clip_by_global_norm(5.0),
...     T.masked(T.add_l2_decay(0.1), {"b": False, "w": True}),
... )
>>> new, state = tx.update(grads, tx.init(params), params)
>>> new["w"], new["b"], state[0].norm
(array([[3.3, 4.4]]), array([0.]), array(50.))
"""

from arraypenalties.transforms._base import (
    EmptyState,
    GradientTransformation,
    init_empty_state,
    stateless,
)
from arraypenalties.transforms._centralize import centralize
from arraypenalties.transforms._clipping import (
    ClipByGlobalNormState,
    adaptive_gradient_clipping,
    clip_by_global_norm,
)
from arraypenalties.transforms._combine import MaskedState, chain, masked
from arraypenalties.transforms._decay import add_elastic_net_decay, add_l1_decay, add_l2_decay
from arraypenalties.transforms._noise import AddGradientNoiseState, add_gradient_noise

__all__ = [
    "AddGradientNoiseState",
    "ClipByGlobalNormState",
    "EmptyState",
    "GradientTransformation",
    "MaskedState",
    "adaptive_gradient_clipping",
    "add_elastic_net_decay",
    "add_gradient_noise",
    "add_l1_decay",
    "add_l2_decay",
    "centralize",
    "chain",
    "clip_by_global_norm",
    "init_empty_state",
    "masked",
    "stateless",
]
