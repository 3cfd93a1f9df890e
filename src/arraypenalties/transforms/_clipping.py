"""Gradient clipping: by global norm, and unit-wise adaptive clipping (AGC)."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, NamedTuple

import array_api_compat

from arraypenalties._lib.checks import check_real
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.ops import vector_norm
from arraypenalties.transforms._base import (
    GradientTransformation,
    as_array,
    check_state,
    namespace_of,
    prepare,
    stateless,
)
from arraypenalties.tree import flatten, leaf_paths

__all__ = ["ClipByGlobalNormState", "adaptive_gradient_clipping", "clip_by_global_norm"]

# SPEC §9: the floor on a unit's gradient norm in AGC (as optax's ``unitwise_clip``)
_AGC_DIVISION_FLOOR = 1e-6


class ClipByGlobalNormState(NamedTuple):
    """State of :func:`clip_by_global_norm`.

    Attributes
    ----------
    norm : array
        The global norm ``N`` of the last updates BEFORE clipping, a 0-d array
        (0 after ``init``), for logging: no host transfer happens in ``update``.
    """

    norm: Any


def _norm(x: Any, xp: Any, axis: tuple[int, ...] | None = None) -> Any:
    """``‖x‖₂`` over ``axis`` (all axes when None); keeps dims when ``axis`` is given."""
    return vector_norm(x, axis=axis, keepdims=axis is not None, xp=xp)


def _global_norm(leaves: list[Any], xp: Any) -> Any:
    """``√(Σ_leaves ‖g‖²)`` as a 0-d array of the leaves' promoted dtype."""
    norms = [_norm(leaf, xp) for leaf in leaves]
    if len(norms) == 1:
        return norms[0]
    first = norms[0].dtype
    if any(n.dtype != first for n in norms):  # mixed precision: promote (rare, slower)
        dtype = xp.result_type(*norms)
        norms = [n if n.dtype == dtype else xp.astype(n, dtype) for n in norms]
    return _norm(xp.stack(norms), xp)


@dataclass(frozen=True)
class _ClipByGlobalNorm:
    """``init`` / ``update`` of :func:`clip_by_global_norm`."""

    max_norm: float

    def init(self, params: Any) -> ClipByGlobalNormState:
        leaves, treedef = flatten(params)
        if not leaves:
            return ClipByGlobalNormState(norm=0.0)
        xp = namespace_of(leaves, treedef, "params")
        dtype = xp.result_type(*leaves)
        return ClipByGlobalNormState(
            norm=xp.zeros((), dtype=dtype, device=array_api_compat.device(leaves[0]))
        )

    def update(
        self, updates: Any, state: Any, params: Any = None
    ) -> tuple[Any, ClipByGlobalNormState]:
        check_state(state, ClipByGlobalNormState, "clip_by_global_norm")
        prepared = prepare(updates, params, transform="clip_by_global_norm", needs_params=False)
        xp = prepared.xp
        if xp is None:
            return updates, state
        norm = _global_norm(prepared.leaves, xp)
        bound = self.max_norm
        # max_norm / max(N, max_norm) = min(1, max_norm / N), and 1 at N = 0
        if bound == 0.0:
            scale = xp.zeros_like(norm)
        elif math.isinf(bound):  # measure only (inf / inf would be NaN)
            scale = xp.ones_like(norm)
        else:
            scale = bound / xp.clip(norm, min=bound)
        scales: dict[Any, Any] = {}  # one cast per leaf dtype, not per leaf
        new_leaves = []
        for g in prepared.leaves:
            leaf_scale = scales.get(g.dtype)
            if leaf_scale is None:
                leaf_scale = scales[g.dtype] = (
                    scale if scale.dtype == g.dtype else xp.astype(scale, g.dtype)
                )
            new_leaves.append(prepared.scale(g, leaf_scale))
        return prepared.rebuild(new_leaves), ClipByGlobalNormState(norm=as_array(norm, xp))


def clip_by_global_norm(max_norm: float = 1.0) -> GradientTransformation:
    """Scale all updates together so that their global norm is at most ``max_norm``.

    Placement: usually first in a chain, on the raw gradients (before any
    optimizer), which is where ``torch.nn.utils.clip_grad_norm_`` acts. Not a
    decay, so neither coupled nor decoupled.

    Parameters
    ----------
    max_norm : float, default 1.0
        The bound, ``>= 0`` (``inf`` allowed: measure only). 0 zeroes every update.

    Returns
    -------
    GradientTransformation
        State :class:`ClipByGlobalNormState` with the pre-clip norm. ``params``
        is not needed.

    Raises
    ------
    InvalidValueError
        ``max_norm`` negative or NaN; at update: mismatched ``params`` structure.
    InvalidTypeError
        ``max_norm`` not a real number; at update: non-floating or mixed-namespace leaves.

    Notes
    -----
    .. math::

        N = \\sqrt{\\textstyle\\sum_{\\text{leaves}} \\sum g^2}, \\qquad
        g' = g \\cdot \\min(1, \\mathrm{max\\_norm} / N)

    computed as ``max_norm / max(N, max_norm)``, which is 1 at ``N = 0`` (no
    division by zero). Agrees with ``optax.clip_by_global_norm``; torch's
    ``clip_grad_norm_`` divides by ``N + 1e-6`` instead, a relative difference of
    ``1e-6 / N``. Per-leaf norms use the namespace's fused ``linalg.vector_norm``;
    the global norm is taken in the leaves' promoted dtype and each leaf keeps its dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import clip_by_global_norm
    >>> tx = clip_by_global_norm(2.5)
    >>> grads = {"a": np.asarray([3.0]), "b": np.asarray([[4.0]])}
    >>> new, state = tx.update(grads, tx.init(grads))
    >>> new["a"], new["b"], state.norm
    (array([1.5]), array([[2.]]), array(5.))
    """
    clip = _ClipByGlobalNorm(check_real(max_norm, "max_norm", low=0.0, allow_inf=True))
    return GradientTransformation(clip.init, clip.update)


def _check_unit_axis(unit_axis: object) -> int:
    if not isinstance(unit_axis, bool):
        try:
            return operator.index(unit_axis)  # type: ignore[arg-type]  # ints, numpy integers
        except TypeError:
            pass
    msg = (
        f"`unit_axis` must be an int (0 for torch [out, in, ...] weights, -1 for flax "
        f"[..., in, out] kernels); got {unit_axis!r}"
    )
    raise InvalidTypeError(msg)


def _reduction_axes(ndim: int, unit_axis: int) -> tuple[int, ...] | None:
    """All axes but the unit axis; None (whole leaf) for scalars and vectors."""
    if ndim <= 1:
        return None
    unit = unit_axis % ndim
    return tuple(axis for axis in range(ndim) if axis != unit)


def _unit_axis_error(unit_axis: int, path: str, shape: tuple[int, ...]) -> InvalidValueError:
    ndim = len(shape)
    msg = (
        f"`unit_axis` {unit_axis} is out of range for the leaf `updates{path}` of shape "
        f"{shape}: allowed {-ndim} to {ndim - 1}"
    )
    return InvalidValueError(msg)


@dataclass(frozen=True)
class _AdaptiveClip:
    """``update`` body of :func:`adaptive_gradient_clipping` (needs params)."""

    factor: float
    floor: float
    axis: int
    name = "adaptive_gradient_clipping"

    def __call__(self, updates: Any, params: Any) -> Any:
        prepared = prepare(updates, params, transform=self.name, needs_params=True)
        xp = prepared.xp
        if xp is None:
            return updates
        assert prepared.param_leaves is not None
        axis = self.axis
        new_leaves = []
        for index, (g, w) in enumerate(zip(prepared.leaves, prepared.param_leaves, strict=True)):
            if g.ndim > 1 and not -g.ndim <= axis < g.ndim:
                path = leaf_paths(prepared.treedef)[index]
                raise _unit_axis_error(axis, path, tuple(g.shape))
            axes = _reduction_axes(g.ndim, axis)
            w_norm = _norm(w, xp, axes)
            if w_norm.dtype != g.dtype:
                w_norm = xp.astype(w_norm, g.dtype)
            max_norm = self.factor * xp.clip(w_norm, min=self.floor)
            ratio = max_norm / xp.clip(_norm(g, xp, axes), min=_AGC_DIVISION_FLOOR)
            new_leaves.append(prepared.scale(g, xp.clip(ratio, max=1.0)))
        return prepared.rebuild(new_leaves)


def adaptive_gradient_clipping(
    clip_factor: float = 0.01, *, eps: float = 1e-3, unit_axis: int = 0
) -> GradientTransformation:
    """Unit-wise adaptive gradient clipping (AGC, Brock et al. 2021).

    Each output unit's gradient is clipped to ``clip_factor`` times that unit's
    weight norm. A unit is one slice along ``unit_axis``; norms run over all the
    other axes. Placement: on the raw gradients, before the optimizer (as in the
    NFNet paper). Not a decay, so neither coupled nor decoupled.

    Parameters
    ----------
    clip_factor : float, default 0.01
        ``λ``, finite and ``>= 0``.
    eps : float, default 1e-3
        Floor on the weight norm, so zero-initialised units can still move; ``>= 0``.
    unit_axis : int, default 0
        The axis holding the output units. ``0`` suits torch weights
        ``[out, in, kh, kw]`` / ``[out, in]``; ``-1`` suits flax / haiku kernels
        ``[kh, kw, in, out]`` / ``[in, out]`` (see Notes for where this equals
        ``optax.adaptive_grad_clip``). Scalars and 1-D leaves (biases, norm
        scales) always use the whole-leaf norm.

    Returns
    -------
    GradientTransformation
        Stateless (:class:`EmptyState`); ``update`` needs ``params``.

    Raises
    ------
    InvalidValueError
        ``clip_factor`` or ``eps`` negative or not finite; at update: ``params``
        missing or mismatched, or ``unit_axis`` out of range for a leaf.
    InvalidTypeError
        An option has the wrong type; at update: non-floating or mixed-namespace leaves.

    Notes
    -----
    For every unit ``u``:

    .. math::

        m_u = \\lambda \\max(\\lVert w_u \\rVert, \\epsilon), \\qquad
        g'_u = g_u \\min\\big(1, m_u / \\max(\\lVert g_u \\rVert, 10^{-6})\\big)

    Unlike NxPenalties (one norm per whole tensor), this is the paper's
    unit-wise rule.

    Agreement with ``optax.adaptive_grad_clip(clip_factor, eps)`` (optax 0.2.8,
    default ``axis=None``), with ``unit_axis=-1``, tested against optax:
    equal on scalars, 1-D leaves, and rank 2, 4 and 5 leaves that have at
    least two axes longer than 1. optax first squeezes singleton axes and
    treats a leaf with at most one axis longer than 1 as ONE unit, so on a
    ``[1, n]`` kernel it clips the whole leaf while this clips per column
    (``w = [[3, 4]]``, ``g = [[1, 1]]``, factor 0.1: ``[[0.3, 0.4]]`` here,
    ``[[0.354, 0.354]]`` in optax). optax's rank-3 default (norms over axis 0
    only, for multi-head kernels) is not reproduced: here every axis but
    ``unit_axis`` is reduced. With an explicit ``axis`` (all axes but the last)
    optax does not squeeze and agrees with this on every leaf of that rank.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.transforms import adaptive_gradient_clipping
    >>> tx = adaptive_gradient_clipping(0.1, unit_axis=0)
    >>> w = np.asarray([[3.0, 4.0], [30.0, 40.0]])  # unit norms 5 and 50
    >>> g = np.asarray([[6.0, 8.0], [0.3, 0.4]])  # unit norms 10 and 0.5
    >>> tx.update(g, tx.init(w), w)[0]  # unit 0 clipped to norm 0.5, unit 1 kept
    array([[0.3, 0.4],
           [0.3, 0.4]])
    """
    factor = check_real(clip_factor, "clip_factor", low=0.0)
    floor = check_real(eps, "eps", low=0.0)
    return stateless(_AdaptiveClip(factor, floor, _check_unit_axis(unit_axis)))
