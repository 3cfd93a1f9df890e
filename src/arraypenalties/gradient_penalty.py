"""Gradient penalties: ``gradient_penalty`` and ``interpolated_gradient_penalty`` (WGAN-GP).

Their first-order proxy ``output_magnitude_penalty`` computes no gradient and
lives with the norm penalties in :mod:`arraypenalties.penalties`.

A gradient penalty is only useful when it is differentiated again, into the
parameters of the model ``fn`` closes over. On torch the gradient comes from
``torch.autograd.grad(create_graph=True)`` (or ``torch.func.grad``), on jax from
``jax.grad``, which nests; either way the penalty is an ordinary node of the
caller's graph. Backends without autodiff (numpy, array-api-strict, cupy) compute
the value by finite differences and refuse to be differentiated again.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from arraypenalties._lib.checks import (
    check_callable,
    check_choice,
    check_real,
    check_real_floating,
)
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError
from arraypenalties._lib.namespace import describe_type, get_xp, resolve_xp
from arraypenalties.backends import Backend, get_backend
from arraypenalties.backends.primitives import reduce, safe_vector_norm

__all__ = ["gradient_penalty", "interpolated_gradient_penalty"]

METHODS = ("auto", "torch.func")


def _check_fn(fn: object) -> None:
    check_callable(fn, "fn", what="a callable returning a 0-d array")


def _check_batch_axis(batch_axis: object, x: Any, name: str = "x") -> int | None:
    """``batch_axis`` as a non-negative axis of ``x`` (or None), with at least one sample."""
    if batch_axis is None:
        return None
    if isinstance(batch_axis, bool) or not hasattr(batch_axis, "__index__"):
        msg = f"`batch_axis` must be None or an int; got {batch_axis!r}"
        raise InvalidTypeError(msg)
    axis = operator.index(batch_axis)
    shape = tuple(x.shape)
    ndim = len(shape)
    if ndim == 0:
        msg = f"`batch_axis` must be None for a 0-d `{name}`; got {axis}"
        raise InvalidValueError(msg)
    if not -ndim <= axis < ndim:
        msg = (
            f"`batch_axis` must be None or in [{-ndim}, {ndim - 1}] for `{name}` of shape "
            f"{shape}; got {axis}"
        )
        raise InvalidValueError(msg)
    axis %= ndim
    if shape[axis] == 0:
        msg = (
            f"`{name}` has no samples along `batch_axis` {axis} (shape {shape}); the mean "
            "over samples needs at least one"
        )
        raise InvalidValueError(msg)
    return axis


def _same_namespace(fn: Callable[[Any], Any], xp: Any) -> Callable[[Any], Any]:
    """``fn``, checked to return an array of ``x``'s namespace (mixed namespaces raise)."""

    def checked(v: Any) -> Any:
        value = fn(v)
        if get_xp(value, names=("fn(x)",)) is not xp:
            msg = (
                f"`fn` must return an array of the namespace of its input ({xp.__name__}); "
                f"got {describe_type(value)}"
            )
            raise InvalidTypeError(msg)
        return value

    return checked


def _sum_of_squares(g: Any, axes: tuple[int, ...] | None, xp: Any) -> Any:
    """Σ g² over ``axes`` (all for None; none for ``()``, a 1-d batch of scalars)."""
    return g * g if axes == () else xp.sum(g * g, axis=axes)


def _gradient(fn: Callable[[Any], Any], x: Any, method: str, backend: Backend, xp: Any) -> Any:
    checked = _same_namespace(fn, xp)
    if method == "torch.func":
        if backend.name != "torch":
            msg = f"`method` 'torch.func' needs torch arrays; got {describe_type(x)}"
            raise InvalidValueError(msg)
        from arraypenalties.backends._torch import TorchBackend  # torch is already imported

        if isinstance(backend, TorchBackend):
            return backend.func_grad(checked, x)
    # exact backends keep the graph (second order); finite differences cannot
    return backend.grad(checked, x, create_graph=backend.exact)


def _penalty(
    fn: Callable[[Any], Any],
    x: Any,
    target: float,
    batch_axis: int | None,
    method: str,
    backend: Backend,
    xp: Any,
) -> Any:
    """``mean((‖∇ₓ fn(x)‖ − target)²)`` over samples (one global norm without a batch axis)."""
    g = _gradient(fn, x, method, backend, xp)
    others = None if batch_axis is None else tuple(a for a in range(g.ndim) if a != batch_axis)
    if target == 0.0:  # (‖g‖ − 0)² = ‖g‖² without a square root
        per_sample = _sum_of_squares(g, others, xp)
    else:
        norms = safe_vector_norm(g, axis=others, xp=xp)  # zero derivative at g = 0
        deviation = norms - target
        per_sample = deviation * deviation
    return reduce(per_sample, "none" if batch_axis is None else "mean", xp=xp)


def gradient_penalty(
    fn: Callable[[Any], Any],
    x: Any,
    /,
    *,
    target_norm: float = 1.0,
    batch_axis: int | None = None,
    method: str = "auto",
    xp: Any = None,
) -> Any:
    """Gradient-norm penalty ``(‖∇ₓ fn(x)‖₂ − target_norm)²``, differentiable again.

    Parameters
    ----------
    fn : callable
        ``fn(x)`` returns a real 0-d array (a critic's summed output, say). The
        result is differentiable with respect to ``x`` and to every tensor ``fn``
        closes over (model parameters).
    x : array
        Real floating array of any shape and namespace.
    target_norm : float, default 1.0
        The norm the gradient is pulled towards, finite and ``>= 0`` (0 gives the
        R1-style penalty ``‖g‖²``).
    batch_axis : int, optional
        None (default): one global norm over all elements of the gradient (parity
        with the original). An axis: one norm per sample over the other axes, and
        the mean over samples of ``(‖gᵢ‖ − target_norm)²`` (WGAN-GP).
    method : {"auto", "torch.func"}, default "auto"
        ``"auto"``: the backend's gradient (``torch.autograd.grad`` with
        ``create_graph=True``, ``jax.grad``, finite differences). ``"torch.func"``:
        ``torch.func.grad`` (torch arrays only; cannot run train-mode BatchNorm).
    xp : namespace, optional
        The Array API namespace of ``x``; detected when omitted.

    Returns
    -------
    array
        0-d array of ``x``'s namespace, dtype and device.

    Raises
    ------
    InvalidTypeError
        ``fn`` is not callable, ``x`` is not a real floating array, ``fn`` returns
        something other than a real 0-d array of ``x``'s namespace, or an option
        has the wrong type.
    InvalidValueError
        ``target_norm`` negative or not finite, ``batch_axis`` out of range or
        along an empty axis, unknown ``method``, or ``"torch.func"`` for non-torch
        arrays.
    BackendError
        dask arrays (no gradients); a finite-difference penalty that is itself being
        differentiated (second order needs torch or jax); a torch ``fn`` using an
        operation without double backward (the message names it and the
        workarounds).

    Notes
    -----
    With ``g = ∇ₓ fn(x)``:

    .. math::

        \\mathrm{GP} = (\\lVert g \\rVert_2 - t)^2 \\quad\\text{or, per sample,}\\quad
        \\frac{1}{B} \\sum_{i=1}^{B} (\\lVert g_i \\rVert_2 - t)^2

    Norms use a square root whose derivative at 0 is 0, so a zero gradient gives a
    finite second-order gradient. On numpy, array-api-strict and cupy ``g`` comes
    from central finite differences (``FiniteDifferenceWarning``, ``2·n + 1``
    evaluations of ``fn``); differentiating that penalty again raises
    ``BackendError``. On torch, with ``fn`` closing over a module::

        gp = gradient_penalty(lambda v: critic(v).sum(), x, batch_axis=0)
        (loss + 10.0 * gp).backward()   # reaches critic's parameters

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from arraypenalties import gradient_penalty
    >>> x = np.log(np.asarray([[0.5, 0.5]]))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     gp = gradient_penalty(np.sum, x)  # ∇ sum = [1, 1]: (√2 − 1)²
    >>> print(f"{float(gp):.6f}", caught[0].category.__name__)
    0.171573 FiniteDifferenceWarning
    """
    _check_fn(fn)
    xp = resolve_xp(xp, x, names=("x",))
    check_real_floating(x, "x", xp)
    target = check_real(target_norm, "target_norm", low=0.0)
    axis = _check_batch_axis(batch_axis, x)
    method = check_choice(method, "method", METHODS)
    return _penalty(fn, x, target, axis, method, get_backend(x), xp)


def _alpha_shape(shape: tuple[int, ...], batch_axis: int | None) -> tuple[int, ...]:
    return tuple(n if axis == batch_axis else 1 for axis, n in enumerate(shape))


def _check_alpha(alpha: Any, shape: tuple[int, ...], fake: Any, batch_axis: int | None) -> None:
    xp = get_xp(fake, alpha, names=("fake", "alpha"))
    check_real_floating(alpha, "alpha", xp)
    if alpha.dtype != fake.dtype:
        msg = f"`alpha` must have the dtype of `fake` ({fake.dtype}); got {alpha.dtype}"
        raise InvalidTypeError(msg)
    if tuple(alpha.shape) != shape:
        where = "one value" if batch_axis is None else f"one value per sample along {batch_axis}"
        msg = (
            f"`alpha` must have shape {shape} ({where}, broadcast over the other axes of "
            f"`fake`); got {tuple(alpha.shape)}"
        )
        raise InvalidValueError(msg)


def _draw_alpha(backend: Backend, rng: object, shape: tuple[int, ...], fake: Any) -> Any:
    try:
        return backend.uniform(rng, shape, fake.dtype, like=fake)
    except InvalidTypeError as error:
        if rng is not None:
            raise
        msg = f"`rng` is required for {backend.name} arrays: {error}. Or pass `alpha` explicitly"
        raise InvalidTypeError(msg) from None


def interpolated_gradient_penalty(
    fn: Callable[[Any], Any],
    fake: Any,
    real: Any,
    /,
    *,
    target_norm: float = 1.0,
    batch_axis: int | None = 0,
    rng: object = None,
    alpha: Any = None,
    method: str = "auto",
    xp: Any = None,
) -> Any:
    """WGAN-GP penalty: :func:`gradient_penalty` at ``α·fake + (1 − α)·real``, α per sample.

    Parameters
    ----------
    fn : callable
        The critic as ``fn(x) -> 0-d array`` (typically ``critic(x).sum()``).
    fake, real : array
        Generated and real samples, real floating, of one namespace, shape and
        dtype. Gradients reach whatever produced ``fake`` unless it is detached.
    target_norm : float, default 1.0
        Finite and ``>= 0``.
    batch_axis : int, optional, default 0
        The sample axis: one ``α`` and one gradient norm per sample. None draws
        a single ``α`` and takes one global norm (the original's behaviour).
    rng : int, generator or key, optional
        Source of ``α ~ U[0, 1)``, drawn by the backend's ``uniform`` in
        ``fake``'s dtype and on its device: an int seed (same seed, same
        penalty), a ``torch.Generator``, a jax key (also a traced one under
        ``jax.jit``) or a ``numpy.random.Generator``. None uses torch's global
        generator, or fresh entropy on numpy; jax has no global generator and
        needs ``rng`` or ``alpha``.
    alpha : array, optional
        Explicit interpolation weights instead of drawing them: shape
        ``[B, 1, …]`` (``B`` along ``batch_axis``, 1 elsewhere), ``fake``'s dtype.
        Values are not checked (no host transfer); use ``[0, 1]``.
    method : {"auto", "torch.func"}, default "auto"
        As in :func:`gradient_penalty`.
    xp : namespace, optional
        The Array API namespace of ``fake`` and ``real``; detected when omitted.

    Returns
    -------
    array
        0-d array of ``fake``'s namespace, dtype and device.

    Raises
    ------
    InvalidTypeError
        ``fn`` not callable, non-floating or mixed-namespace arrays, different
        dtypes, an ``rng`` the backend cannot use (or none on jax).
    InvalidValueError
        ``fake`` and ``real`` of different shapes, ``alpha`` of the wrong shape,
        both ``rng`` and ``alpha``, or a bad option as in :func:`gradient_penalty`.
    BackendError
        As in :func:`gradient_penalty`.

    Notes
    -----
    .. math::

        \\hat x = \\alpha \\odot \\mathrm{fake} + (1 - \\alpha) \\odot \\mathrm{real},
        \\quad \\alpha_i \\sim U[0, 1), \\quad
        \\mathrm{GP} = \\frac{1}{B} \\sum_i (\\lVert \\nabla_{\\hat x_i} f(\\hat x) \\rVert_2 - t)^2

    (Gulrajani et al. 2017). The original drew one ``α`` per batch, took one global
    norm and could not be seeded; here ``α`` has shape ``[B, 1, …]`` and the norm is
    per sample.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from arraypenalties import FiniteDifferenceWarning, interpolated_gradient_penalty
    >>> fake, real = np.zeros((4, 2)), np.ones((4, 2))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", FiniteDifferenceWarning)  # numpy: approximate
    ...     gp = interpolated_gradient_penalty(np.sum, fake, real, rng=0)
    >>> print(f"{float(gp):.6f}")  # every sample's gradient is [1, 1]: (√2 − 1)²
    0.171573
    """
    _check_fn(fn)
    xp = resolve_xp(xp, fake, real, names=("fake", "real"))
    check_real_floating(fake, "fake", xp)
    check_real_floating(real, "real", xp)
    if tuple(fake.shape) != tuple(real.shape):
        msg = (
            f"`fake` and `real` must have the same shape; got {tuple(fake.shape)} and "
            f"{tuple(real.shape)}"
        )
        raise InvalidValueError(msg)
    if fake.dtype != real.dtype:
        msg = f"`fake` and `real` must have the same dtype; got {fake.dtype} and {real.dtype}"
        raise InvalidTypeError(msg)
    target = check_real(target_norm, "target_norm", low=0.0)
    axis = _check_batch_axis(batch_axis, fake, "fake")
    method = check_choice(method, "method", METHODS)
    backend = get_backend(fake)
    shape = _alpha_shape(tuple(fake.shape), axis)
    if alpha is None:
        alpha = _draw_alpha(backend, rng, shape, fake)
    elif rng is not None:
        msg = f"pass `rng` or `alpha`, not both; got rng={rng!r} and an `alpha` array"
        raise InvalidValueError(msg)
    else:
        _check_alpha(alpha, shape, fake, axis)
    interpolates = alpha * fake + (1.0 - alpha) * real
    return _penalty(fn, interpolates, target, axis, method, backend, xp)
