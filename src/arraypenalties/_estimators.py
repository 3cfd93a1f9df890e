"""Sampled-token KL estimators (k1 / k2 / k3) for RL fine-tuning.

Re-exported by :mod:`arraypenalties.divergences`, which documents it with the
other divergences.
"""

from __future__ import annotations

import math
from typing import Any

from arraypenalties._lib.checks import check_choice, check_reduction_over, prepare_pair
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import get_xp
from arraypenalties._logspace import cap_at, finish, floor_at, lowest, to_working, working_dtype

__all__ = ["kl_estimate"]

_ESTIMATORS = ("k1", "k2", "k3")


def _mask_weights(mask: Any, shape: tuple[Any, ...], work: Any, xp: Any) -> tuple[Any, Any]:
    """``(kept, weights)``: a bool mask selects (``weights`` None); a numeric mask weights
    each position (``kept`` = weight ≠ 0, NaN included, so a NaN weight gives NaN)."""
    if tuple(mask.shape) != shape:
        msg = (
            f"`mask` has shape {tuple(mask.shape)} but `logprobs` has shape {shape}; "
            "they must be equal"
        )
        raise InvalidValueError(msg)
    if xp.isdtype(mask.dtype, "bool"):
        return mask, None
    if not xp.isdtype(mask.dtype, ("integral", "real floating")):
        msg = f"`mask` must have a bool dtype (selects) or a real dtype (weights); got {mask.dtype}"
        raise InvalidTypeError(msg)
    return mask != 0, xp.astype(mask, work)


def kl_estimate(
    logprobs: Any,
    ref_logprobs: Any,
    /,
    *,
    estimator: str = "k3",
    mask: Any = None,
    reduction: str = "mean",
    xp: Any = None,
) -> Any:
    """Sampled-token KL estimators k1 / k2 / k3 (RL fine-tuning against a reference policy).

    Parameters
    ----------
    logprobs : array
        Log-probabilities of the sampled tokens under the policy being trained.
    ref_logprobs : array
        Log-probabilities of the same tokens under the reference policy; same
        namespace and shape.
    estimator : {"k3", "k1", "k2"}, default "k3"
        See Notes.
    mask : array, optional
        Same shape. A bool mask selects: positions where it is False (padding)
        are excluded. A real (integer or floating) mask weights each position
        by its value: ``w·k``, and 0 excludes. Excluded values (even ``-inf`` or
        NaN) never reach the result or its gradient; a NaN weight gives NaN.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` is ``Σ w·k / Σ w`` (for a bool mask: the mean over the kept
        positions), 0 when the weights sum to 0; ``"none"`` returns ``w·k`` at
        every position, 0 where excluded.
    xp : namespace, optional
        The Array API namespace of the inputs; detected when omitted.

    Returns
    -------
    array
        0-d (same shape as ``logprobs`` for ``"none"``) array of the inputs' dtype.

    Raises
    ------
    InvalidTypeError
        Non-floating inputs, a mask of another dtype, arrays of two namespaces.
    InvalidValueError
        Unknown ``estimator`` / ``reduction``, or shapes that differ.

    Notes
    -----
    With ``r = ref_logprobs − logprobs`` (Schulman, "Approximating KL divergence"):

    .. math:: k_1 = -r, \\qquad k_2 = \\tfrac12 r^2, \\qquad k_3 = (e^r - 1) - r \\ge 0

    k1 is unbiased with high variance, k2 is biased with low variance, k3 is
    unbiased with low variance and never negative. ``e^r − 1`` is computed with
    ``expm1``. Where ``e^r`` would come close to overflowing the dtype
    (``r > ln(finfo.max) − 1``: 87.7 in float32, 708.8 in float64) ``r`` is
    capped there, so k3 saturates at about ``finfo.max / e`` instead of
    becoming ``inf`` (and its gradient there is 0): finite for any finite inputs.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties import kl_estimate
    >>> logprobs = np.asarray([-1.0, -2.0, -0.5])
    >>> ref = np.asarray([-1.5, -1.0, -0.5])
    >>> kl_estimate(logprobs, ref, estimator="k1", reduction="sum")
    array(-0.5)
    >>> kl_estimate(logprobs, ref, estimator="k2", mask=np.asarray([True, True, False]))
    array(0.3125)
    >>> kl_estimate(logprobs, ref, estimator="k2", mask=np.asarray([0.5, 1.0, 0.0]))
    array(0.375)
    """
    estimator = check_choice(estimator, "estimator", _ESTIMATORS)
    names = ("logprobs", "ref_logprobs")
    xp, lp, ref, out_dtype = prepare_pair(logprobs, ref_logprobs, names, False, xp)
    reduction = check_reduction_over(reduction, tuple(lp.shape))
    kept = weights = None
    work = working_dtype(out_dtype, xp)
    if mask is not None:
        get_xp(lp, mask, names=("logprobs", "mask"))  # one namespace
        kept, weights = _mask_weights(mask, tuple(lp.shape), work, xp)
    lp, ref = to_working(lp, work, xp), to_working(ref, work, xp)
    if kept is not None:
        # first where: masked garbage (-inf, NaN) never reaches the subtraction, exp or r²
        lp, ref = xp.where(kept, lp, 0.0), xp.where(kept, ref, 0.0)
    r = ref - lp
    if estimator == "k1":
        k = -r
    elif estimator == "k2":
        k = 0.5 * (r * r)
    else:
        # one below ln(finfo.max): e^cap stays finite whatever the last-ulp rounding of exp
        capped = cap_at(r, math.log(-lowest(work, xp)) - 1.0, xp)
        # expm1(r) >= r holds exactly; the floor guards a last-ulp rounding of expm1
        k = floor_at(xp.expm1(capped) - capped, 0.0, xp)
    if kept is not None:
        k = xp.where(kept, k, 0.0)  # second where: masked positions are exactly 0
        if weights is not None:
            k = k * weights
        if reduction == "mean":
            total = xp.sum(xp.astype(kept, work) if weights is None else weights)
            total = xp.where(total == 0.0, xp.ones_like(total), total)  # nothing kept: 0
            return finish(xp.sum(k) / total, "none", out_dtype, xp)
    return finish(k, reduction, out_dtype, xp)
