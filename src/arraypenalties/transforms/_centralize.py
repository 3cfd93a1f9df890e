"""Gradient centralisation (Yong et al. 2020; optax ``centralize``)."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties.transforms._base import GradientTransformation, prepare, stateless
from arraypenalties.tree import leaf_paths

__all__ = ["centralize"]


def _check_axes(axes: object) -> tuple[int, ...] | None:
    if axes is None:
        return None
    items = axes if isinstance(axes, tuple) else (axes,)
    try:
        if any(isinstance(item, bool) for item in items):
            raise TypeError
        checked = tuple(operator.index(item) for item in items)
    except TypeError:
        msg = f"`axes` must be None, an int or a tuple of ints; got {axes!r}"
        raise InvalidTypeError(msg) from None
    if not checked:
        msg = f"`axes` must name at least one axis (or be None); got {axes!r}"
        raise InvalidValueError(msg)
    return checked


@dataclass(frozen=True)
class _Centralize:
    """``g -> g - mean(g over axes)`` for the leaves of rank > 1."""

    axes: Any  # as given, for messages
    chosen: tuple[int, ...] | None
    name = "centralize"

    def __call__(self, updates: Any, params: Any) -> Any:
        prepared = prepare(updates, params, transform=self.name, needs_params=False)
        xp = prepared.xp
        if xp is None:
            return updates
        new_leaves = []
        for index, g in enumerate(prepared.leaves):
            ndim = g.ndim
            if ndim <= 1:
                new_leaves.append(g)
                continue
            over = tuple(range(1, ndim)) if self.chosen is None else self.chosen
            if any(not -ndim <= axis < ndim for axis in over):
                path = leaf_paths(prepared.treedef)[index]
                msg = (
                    f"`axes` {self.axes!r} is out of range for the leaf `updates{path}` of "
                    f"shape {tuple(g.shape)}: allowed {-ndim} to {ndim - 1}"
                )
                raise InvalidValueError(msg)
            new_leaves.append(prepared.add(g, -xp.mean(g, axis=over, keepdims=True)))
        return prepared.rebuild(new_leaves)


def centralize(axes: int | tuple[int, ...] | None = None) -> GradientTransformation:
    """Subtract from every gradient of rank > 1 its mean over ``axes``.

    With ``axes=None`` the mean runs over all axes but the first, i.e. per
    output unit of a torch weight ``[out, in, ...]`` (optax's ``centralize``);
    pass ``axes=(0, 1, 2)`` for a flax ``[kh, kw, in, out]`` kernel. Scalars and
    1-D leaves (biases, norm scales) are left unchanged. Placement: on the raw
    gradients, before the optimizer. Not a decay.

    Parameters
    ----------
    axes : int or tuple of int, optional
        The axes to average over (negative counts from the end).

    Returns
    -------
    GradientTransformation
        Stateless; ``params`` not needed.

    Raises
    ------
    InvalidTypeError
        ``axes`` is not None, an int or a tuple of ints; at update: non-floating
        or mixed-namespace leaves.
    InvalidValueError
        ``axes`` empty; at update: an axis out of range for a leaf of rank > 1.

    Notes
    -----
    .. math:: g' = g - \\operatorname{mean}_{\\text{axes}}(g)

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import centralize
    >>> tx = centralize()
    >>> g = np.asarray([[1.0, 2.0, 3.0], [4.0, 6.0, 8.0]])
    >>> tx.update(g, tx.init(g))[0]
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.]])
    """
    return stateless(_Centralize(axes, _check_axes(axes)))
