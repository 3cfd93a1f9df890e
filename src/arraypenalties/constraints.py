"""Structural constraints: ``orthogonality`` of representations and ``consistency`` of two outputs.

Both return a quantity to ADD to a minimised loss, computed in at least float32
(float16 / bfloat16 inputs are cast back on return), with finite gradients at
zero rows and zero vectors (safe norms).
"""

from __future__ import annotations

import math
from typing import Any

from arraypenalties._lib.checks import (
    check_axis,
    check_bool,
    check_choice,
    check_real_floating,
    check_reduction_over,
    prepare_pair,
)
from arraypenalties._lib.errors import InvalidValueError
from arraypenalties._lib.namespace import device_of, get_xp
from arraypenalties._logspace import (
    finish,
    floor_at,
    row_dot,
    symmetric_kl_rows,
    to_working,
    working_dtype,
)
from arraypenalties.backends.primitives import safe_vector_norm, stop_gradient

__all__ = ["POWER_ITERATIONS", "consistency", "orthogonality"]

_NORM_FLOOR = 1e-8  # rows are divided by max(‖row‖, 1e-8)
POWER_ITERATIONS = 50
"""Power-iteration steps (each a multiplication by ``(G - I)²``) of ``mode="spectral"``."""

_ORTHO_MODES = ("soft", "hard", "spectral")
_ORTHO_AXES = ("rows", "sequence", "vocabulary")


def _safe_norm(x: Any, axis: int, xp: Any) -> Any:
    """``max(‖x‖₂, 1e-8)`` along ``axis`` (kept), with a finite gradient at ``x = 0``."""
    return floor_at(safe_vector_norm(x, axis=axis, keepdims=True, xp=xp), _NORM_FLOOR, xp)


def _as_matrix(x: Any, axis: str, xp: Any) -> Any:
    """The matrix whose rows must be orthogonal (see :func:`orthogonality`)."""
    shape = tuple(x.shape)
    if x.ndim == 1:
        rows = xp.reshape(x, (1, shape[0]))
    else:
        rows = xp.reshape(x, (math.prod(shape[:-1]), shape[-1]))
    if axis == "rows":
        return rows
    if axis == "vocabulary":
        return xp.matrix_transpose(rows)
    if x.ndim <= 2:  # "sequence" with no batch axis: the rows themselves
        return rows
    # [..., S, V] -> [S, (...)·V]: row s concatenates x[b, s, :] over the batch entries b
    front = xp.moveaxis(x, -2, 0)
    return xp.reshape(front, (shape[-2], math.prod(shape[:-2]) * shape[-1]))


def _spectral_norm_squared(a: Any, xp: Any) -> Any:
    """``σ_max(A)²`` of a symmetric ``A`` by power iteration on ``A²``, differentiable.

    The iteration runs on ``stop_gradient(A)`` from a fixed start vector; the
    result ``‖A v‖²`` is differentiated with ``v`` held fixed, which is the
    exact gradient ``2 A v vᵀ`` of ``σ²`` once ``v`` is the top singular vector.
    """
    n = a.shape[0]
    fixed = stop_gradient(a)
    # deterministic start that no structured matrix is likely to be orthogonal to
    index = xp.arange(n, dtype=a.dtype, device=device_of(a))
    v = 1.0 + (index * 0.6180339887498949) % 1.0
    for _ in range(POWER_ITERATIONS):
        w = fixed @ (fixed @ v)
        v = w / xp.sqrt(floor_at(xp.sum(w * w), 1e-30, xp))  # A = 0: v = 0, not NaN
    av = a @ stop_gradient(v)
    return xp.sum(av * av)


def orthogonality(
    x: Any,
    /,
    *,
    mode: str = "soft",
    normalize: bool = True,
    axis: str = "rows",
    xp: Any = None,
) -> Any:
    """Penalise non-orthogonal rows of a representation: soft, hard or spectral.

    Parameters
    ----------
    x : array
        Real floating, at least 1-D. Rank 2 ``[S, V]`` is used as is; rank 3
        ``[B, S, V]`` is reshaped according to ``axis``; other ranks flatten
        every axis but the last (a 1-D ``x`` is one row).
    mode : {"soft", "hard", "spectral"}, default "soft"
        See Notes.
    normalize : bool, default True
        Divide each row by ``max(‖row‖, 1e-8)`` first (cosine similarities).
    axis : {"rows", "sequence", "vocabulary"}, default "rows"
        Which vectors must be orthogonal: ``"rows"`` → ``M = [B·S, V]``;
        ``"sequence"`` → ``M = [S, B·V]`` (row ``s`` concatenates ``x[b, s, :]``
        over ``b``; for rank 2 the rows themselves, for rank > 3 the second-to-last
        axis is the sequence and every earlier one a batch axis);
        ``"vocabulary"`` → ``M = [V, B·S]`` (for rank 2: the transpose).
    xp : namespace, optional
        The Array API namespace of ``x``; detected when omitted.

    Returns
    -------
    array
        0-d array of ``x``'s dtype, device and namespace. There is no
        ``reduction``: the penalty is one matrix norm, not a per-sample value.

    Raises
    ------
    InvalidTypeError
        A non-floating ``x`` or an option of the wrong type.
    InvalidValueError
        Unknown ``mode`` or ``axis`` (never a silent fallback to rows), or a 0-d ``x``.

    Notes
    -----
    With ``G = M Mᵀ`` (``n × n`` for ``M`` of shape ``n × d``):

    .. math::

        \\text{soft} = \\sum_{i \\ne j} G_{ij}^2, \\qquad
        \\text{hard} = \\lVert G - I \\rVert_F^2, \\qquad
        \\text{spectral} = \\sigma_{\\max}(G - I)^2

    "soft" counts every pair twice and is not divided by ``n`` (parity).
    "spectral" is the SRIP penalty: the largest singular value of ``G − I``,
    squared, from ``POWER_ITERATIONS = 50`` steps of power iteration with
    ``(G − I)²`` (no gradient through the iteration; ``2·50`` matrix-vector
    products, small next to forming the Gram matrix) from a fixed start vector,
    so it is deterministic, differentiable and traceable.

    Memory: every mode works from the smaller Gram matrix. For ``n > d`` it
    uses ``H = Mᵀ M`` (``d × d``) and the identities
    ``soft = ‖H − c I‖_F² + (Σ r_i)²/d − Σ r_i²`` (``r_i = ‖m_i‖²``,
    ``c = Σ r_i / d``), ``hard = ‖H − I‖_F² + n − d`` and
    ``spectral = max(σ_max(H − I)², 1)`` (``G`` has the eigenvalues of ``H``
    and ``n − d`` zeros), so a ``[20000, 2]`` input needs a ``2 × 2`` matrix,
    not a ``20000 × 20000`` one. Values and gradients equal the definition's.

    Accuracy of "spectral": the estimate never exceeds the true value (beyond
    rounding, about 4e-15 relative). Its relative error is about
    ``(c₂/c₁)² ρ^200``, where ``ρ = |λ₂|/|λ₁|`` is the ratio of the two largest
    eigenvalue magnitudes of ``G − I`` and ``c₁, c₂`` are the start vector's
    components along their eigenvectors; the factor ``(c₂/c₁)²`` has no upper
    bound, so only measurements can be given. Over 20,000 random float64 inputs
    (``benchmarks/spectral_accuracy.py``: ``n, d`` in 2..40, Gaussian, clustered
    and column-scaled rows) the largest relative error was 4e-15 for
    ``ρ <= 0.8``, 4e-10 for ``0.8 < ρ <= 0.85``, 7e-7 for ``0.85 < ρ <= 0.9``,
    0.5 % for ``0.9 < ρ <= 0.93`` and up to 12 % for ``0.93 < ρ <= 0.99``
    (1.7 % for ``ρ > 0.99``, where the two top magnitudes nearly agree; equal
    magnitudes are exact). When the exact value matters and the gap is small,
    compute it with ``linalg.eigh`` where the namespace has it.
    Zero rows stay zero after normalisation and their gradient is finite.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties import orthogonality
    >>> x = np.asarray([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    >>> print(f"{float(orthogonality(x)):.6f} {float(orthogonality(x, mode='hard')):.6f}")
    2.000000 2.000000
    >>> print(f"{float(orthogonality(x, mode='spectral')):.6f}")
    1.000000
    >>> orthogonality(np.asarray([[2.0, 0.0], [0.0, 1.0]]), mode="hard", normalize=False)
    array(9.)
    """
    mode = check_choice(mode, "mode", _ORTHO_MODES)
    axis = check_choice(axis, "axis", _ORTHO_AXES)
    check_bool(normalize, "normalize")
    if xp is None:
        xp = get_xp(x, names=("x",))
    check_real_floating(x, "x", xp)
    if x.ndim == 0:
        msg = "`x` must have at least 1 dimension; got a 0-d array"
        raise InvalidValueError(msg)
    out_dtype = x.dtype
    m = _as_matrix(to_working(x, working_dtype(out_dtype, xp), xp), axis, xp)
    if normalize:
        m = m / _safe_norm(m, -1, xp)
    rows, cols = m.shape
    from_smaller_gram = _from_column_gram if rows > cols else _from_row_gram
    return finish(from_smaller_gram(m, mode, xp), "none", out_dtype, xp)


def _from_row_gram(m: Any, mode: str, xp: Any) -> Any:
    """The penalty from ``G = M Mᵀ`` (``n × n``): the definition, used when ``n <= d``."""
    gram = m @ xp.matrix_transpose(m)
    eye = xp.eye(gram.shape[0], dtype=gram.dtype, device=device_of(gram))
    if mode == "soft":
        off = xp.where(eye > 0, 0.0, gram)
        return xp.sum(off * off)
    if mode == "hard":
        diff = gram - eye
        return xp.sum(diff * diff)
    return _spectral_norm_squared(gram - eye, xp)


def _from_column_gram(m: Any, mode: str, xp: Any) -> Any:
    """The same penalty from ``H = Mᵀ M`` (``d × d``), for ``n > d``: memory O(d²), not O(n²).

    ``‖G‖_F² = tr(G²) = tr(H²) = ‖H‖_F²`` and ``tr G = tr H = ‖M‖_F²``, so with
    ``r_i = ‖m_i‖²`` (the diagonal of ``G``) and ``c = tr(H) / d``:

    - hard: ``‖G − I_n‖_F² = ‖H‖_F² − 2 tr H + n = ‖H − I_d‖_F² + (n − d)``;
    - soft: ``‖G‖_F² − Σ r_i² = ‖H − c I_d‖_F² + (Σ r_i)² / d − Σ r_i²`` (shifted
      by ``c`` so that normalised rows give two non-negative terms: no cancellation);
    - spectral: ``G`` has the eigenvalues of ``H`` and ``n − d`` more zeros, so
      the eigenvalues of ``G − I_n`` are those of ``H − I_d`` and ``−1``:
      ``σ_max(G − I_n)² = max(σ_max(H − I_d)², 1)``.
    """
    rows, cols = m.shape
    gram = xp.matrix_transpose(m) @ m
    eye = xp.eye(cols, dtype=gram.dtype, device=device_of(gram))
    if mode == "hard":
        diff = gram - eye
        return xp.sum(diff * diff) + (rows - cols)
    if mode == "soft":
        squares = xp.sum(m * m, axis=-1)  # r_i, the diagonal of G
        trace = xp.sum(squares)
        shifted = gram - (trace / cols) * eye
        return xp.sum(shifted * shifted) + trace * trace / cols - xp.sum(squares * squares)
    top = _spectral_norm_squared(gram - eye, xp)
    # the eigenvalue −1 of the n − d extra zero eigenvalues; `where`, not `maximum`,
    # so that the gradient is the estimate's own (not split at a tie) on every backend
    return xp.where(top > 1.0, top, xp.ones_like(top))


_METRICS = ("mse", "l1", "cosine", "kl")


def _cosine_distance_rows(a: Any, b: Any, axis: int, xp: Any) -> Any:
    """``1 − a·b / (max(‖a‖, 1e-8)·max(‖b‖, 1e-8))`` per row along ``axis``."""
    dot = row_dot(a, b, axis, xp)
    norms = _safe_norm(a, axis, xp) * _safe_norm(b, axis, xp)
    return 1.0 - dot / xp.squeeze(norms, axis=axis)


def consistency(
    a: Any,
    b: Any,
    /,
    *,
    metric: str = "mse",
    reduction: str = "mean",
    axis: int = -1,
    broadcast: bool = False,
    xp: Any = None,
) -> Any:
    """How far two outputs disagree (augmented views, teacher and student): mse, l1, cosine, kl.

    Parameters
    ----------
    a, b : array
        Real floating, same namespace and shape. For ``"kl"`` they are
        log-probabilities.
    metric : {"mse", "l1", "cosine", "kl"}, default "mse"
        ``"mse"``: ``(a − b)²`` and ``"l1"``: ``|a − b|`` elementwise;
        ``"cosine"``: ``1 − cos(a, b)`` per row along ``axis``; ``"kl"``: the
        symmetric KL divergence per row along ``axis``
        (:func:`~arraypenalties.kl_divergence` with ``symmetric=True``).
    reduction : {"mean", "sum", "none"}, default "mean"
        Over the elements (mse, l1) or the rows (cosine, kl).
    axis : int, default -1
        The row axis of ``"cosine"`` and ``"kl"`` (checked, unused by mse and l1).
    broadcast : bool, default False
        Broadcast ``a`` and ``b`` against each other instead of raising on a mismatch.
    xp : namespace, optional
        The Array API namespace of the inputs; detected when omitted.

    Returns
    -------
    array
        0-d (elementwise or per-row for ``"none"``) array of the inputs' dtype.

    Raises
    ------
    InvalidTypeError
        Non-floating inputs, inputs of two namespaces, an option of the wrong type.
    InvalidValueError
        Unknown ``metric`` / ``reduction``, an ``axis`` out of range, or
        different shapes without ``broadcast=True``.

    Notes
    -----
    .. math::

        \\text{mse} = R\\big((a-b)^2\\big), \\quad
        \\text{cosine} = R_\\text{rows}\\Big(1 - \\frac{a \\cdot b}
            {\\max(\\lVert a\\rVert, 10^{-8}) \\max(\\lVert b\\rVert, 10^{-8})}\\Big)

    The cosine is taken per row, then reduced (the original computed one
    global cosine and ignored ``reduction``; for 1-D inputs the two agree).
    A zero row has cosine 0, so its distance is 1, with a finite gradient.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties import consistency
    >>> consistency(np.asarray([1.0, 2.0, 3.0]), np.asarray([1.5, 2.5, 3.5]))
    array(0.25)
    >>> a = np.asarray([[1.0, 0.0], [1.0, 1.0]])
    >>> b = np.asarray([[0.0, 2.0], [3.0, 3.0]])
    >>> print(consistency(a, b, metric="cosine", reduction="none").round(6))
    [1. 0.]
    """
    metric = check_choice(metric, "metric", _METRICS)
    xp, a, b, out_dtype = prepare_pair(a, b, ("a", "b"), broadcast, xp)
    if metric in ("mse", "l1"):
        if a.ndim:
            check_axis(axis, a.ndim, "a")
        reduction = check_reduction_over(reduction, tuple(a.shape))
        diff = a - b
        values = diff * diff if metric == "mse" else xp.abs(diff)
        return finish(values, reduction, out_dtype, xp)
    axis = check_axis(axis, a.ndim, "a")
    shape = tuple(a.shape)
    reduction = check_reduction_over(reduction, shape[:axis] + shape[axis + 1 :])
    work = working_dtype(out_dtype, xp)
    a, b = to_working(a, work, xp), to_working(b, work, xp)
    if metric == "cosine":
        rows = _cosine_distance_rows(a, b, axis, xp)
    else:
        rows = symmetric_kl_rows(a, b, axis, None, xp)
    return finish(rows, reduction, out_dtype, xp)
