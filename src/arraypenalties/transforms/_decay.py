"""Weight decay added to the gradients: L2, L1 and elastic net (optax ``add_decayed_weights``).

Where the decay sits decides what it means. Placed BEFORE an adaptive optimizer
(``chain(add_l2_decay(d), scale_by_adam())``), the decay term is rescaled by the
optimizer's preconditioner along with the loss gradient: that is coupled L2
regularisation (Adam + L2). Placed AFTER the preconditioner and before the
learning rate (``chain(scale_by_adam(), add_l2_decay(d), scale(-lr))``) it is
decoupled weight decay, AdamW. With plain SGD the two coincide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arraypenalties._lib.checks import check_real
from arraypenalties.transforms._base import GradientTransformation, prepare, stateless

__all__ = ["add_elastic_net_decay", "add_l1_decay", "add_l2_decay"]


def _same_dtype(w: Any, g: Any, xp: Any) -> Any:
    """``w`` in ``g``'s dtype: updates keep their dtype (bf16 grads of fp32 weights, say)."""
    return w if w.dtype == g.dtype else xp.astype(w, g.dtype)


@dataclass(frozen=True)
class _Decay:
    """``updates -> updates + l1·sign(w) + l2·w`` (the terms whose rate is given), needs params."""

    name: str
    l1: float | None
    l2: float | None

    def term(self, w: Any, xp: Any) -> Any:
        if self.l1 is None:
            assert self.l2 is not None
            return self.l2 * w
        if self.l2 is None:
            return self.l1 * xp.sign(w)
        return self.l1 * xp.sign(w) + self.l2 * w

    def __call__(self, updates: Any, params: Any) -> Any:
        prepared = prepare(updates, params, transform=self.name, needs_params=True)
        xp = prepared.xp
        if xp is None:
            return updates
        assert prepared.param_leaves is not None
        new_leaves = [
            prepared.add(g, self.term(_same_dtype(w, g, xp), xp))
            for g, w in zip(prepared.leaves, prepared.param_leaves, strict=True)
        ]
        return prepared.rebuild(new_leaves)


def add_l2_decay(decay: float = 0.01) -> GradientTransformation:
    """Add ``decay · w`` to every gradient: the gradient of ``decay/2 · ‖w‖²``.

    Coupled or decoupled? Before an adaptive optimizer (Adam, RMSprop) this is
    coupled L2 regularisation: the decay is preconditioned with the gradient.
    After the optimizer's preconditioner (and before the learning-rate scale) it
    is decoupled, AdamW-style weight decay. Equals ``optax.add_decayed_weights``.

    Parameters
    ----------
    decay : float, default 0.01
        The rate, finite and ``>= 0``.

    Returns
    -------
    GradientTransformation
        Stateless (:class:`EmptyState`); ``update`` needs ``params``.

    Raises
    ------
    InvalidValueError
        ``decay`` negative or not finite; at update: ``params`` missing or of a
        different structure.
    InvalidTypeError
        ``decay`` not a real number; at update: non-floating or mixed-namespace leaves.

    Notes
    -----
    .. math:: g' = g + \\lambda w

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import add_l2_decay
    >>> tx = add_l2_decay(0.1)
    >>> w, g = [np.asarray([1.0, -2.0])], [np.asarray([0.5, 0.5])]
    >>> tx.update(g, tx.init(w), w)[0]
    [array([0.6, 0.3])]
    """
    rate = check_real(decay, "decay", low=0.0)
    return stateless(_Decay("add_l2_decay", None, rate))


def add_l1_decay(decay: float = 0.001) -> GradientTransformation:
    """Add ``decay · sign(w)`` to every gradient (a subgradient of ``decay · ‖w‖₁``).

    ``sign(0) = 0``: zero weights get no push. Coupled or decoupled? Before an
    adaptive optimizer this is coupled L1 regularisation (preconditioned with
    the gradient); after its preconditioner it is decoupled L1 decay, which
    shrinks every weight by the same step ``lr · decay`` towards zero.

    Parameters
    ----------
    decay : float, default 0.001
        The rate, finite and ``>= 0``.

    Returns
    -------
    GradientTransformation
        Stateless; ``update`` needs ``params``.

    Raises
    ------
    InvalidValueError
        ``decay`` negative or not finite; ``params`` missing or mismatched.
    InvalidTypeError
        ``decay`` not a real number; non-floating or mixed-namespace leaves.

    Notes
    -----
    .. math:: g' = g + \\lambda\\,\\mathrm{sign}(w)

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import add_l1_decay
    >>> tx = add_l1_decay(0.5)
    >>> w, g = np.asarray([2.0, 0.0, -3.0]), np.asarray([1.0, 1.0, 1.0])
    >>> tx.update(g, tx.init(w), w)[0]
    array([1.5, 1. , 0.5])
    """
    rate = check_real(decay, "decay", low=0.0)
    return stateless(_Decay("add_l1_decay", rate, None))


def add_elastic_net_decay(decay: float = 0.01, l1_ratio: float = 0.5) -> GradientTransformation:
    """Add ``decay · (α·sign(w) + (1 − α)·w)`` with ``α = l1_ratio``.

    Interpolates :func:`add_l1_decay` (``l1_ratio=1``) and :func:`add_l2_decay`
    (``l1_ratio=0``). Coupled or decoupled? Before an adaptive optimizer it is
    coupled regularisation; after the preconditioner it is decoupled decay.

    Parameters
    ----------
    decay : float, default 0.01
        The rate, finite and ``>= 0``.
    l1_ratio : float, default 0.5
        ``α`` in ``[0, 1]``.

    Returns
    -------
    GradientTransformation
        Stateless; ``update`` needs ``params``.

    Raises
    ------
    InvalidValueError
        ``decay`` negative, ``l1_ratio`` outside ``[0, 1]``; ``params`` missing
        or mismatched.
    InvalidTypeError
        An option is not a real number; non-floating or mixed-namespace leaves.

    Notes
    -----
    .. math:: g' = g + \\lambda\\big(\\alpha\\,\\mathrm{sign}(w) + (1-\\alpha)\\,w\\big)

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import add_elastic_net_decay
    >>> tx = add_elastic_net_decay(0.1, 0.5)
    >>> w, g = np.asarray([2.0, -4.0]), np.asarray([0.0, 0.0])
    >>> tx.update(g, tx.init(w), w)[0]
    array([ 0.15, -0.25])
    """
    rate = check_real(decay, "decay", low=0.0)
    alpha = check_real(l1_ratio, "l1_ratio", low=0.0, high=1.0)
    return stateless(_Decay("add_elastic_net_decay", rate * alpha, rate * (1.0 - alpha)))
