"""Standard normal samples shaped like the leaves of a tree, a pure function of ``(seed, step)``.

The Array API standard has no random numbers, so each framework's own RNG is
used, reached through ``sys.modules`` (an array of a framework exists, so the
framework is already imported; nothing here imports one to detect it):

- jax: ``jax.random.normal`` with the keys ``split(fold_in(key(seed), step), n)``,
  one per leaf. Traceable: ``seed`` and ``step`` may be traced integers (``jax.jit``).
- torch: one ``torch.Generator`` per device, seeded with a SplitMix64 hash of
  ``(seed, step)``; the leaves draw from it in tree order with ``torch.randn``.
- every other namespace (numpy, array-api-strict, cupy, dask, ...):
  ``numpy.random.default_rng([seed, step])`` (PCG64 through ``SeedSequence``),
  drawn on the host in float32 or float64, then ``xp.asarray`` to the leaf's
  namespace, dtype and device.

The same ``(seed, step)`` always gives the same samples on one backend and one
tree; different backends give different (equally distributed) samples.
"""

from __future__ import annotations

import importlib
import operator
import sys
from typing import Any

import array_api_compat

__all__ = ["standard_normals"]

_MASK64 = (1 << 64) - 1


def _splitmix64(value: int) -> int:
    """The SplitMix64 finaliser: a bijective 64-bit mix of well-spread bits."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _torch_normals(leaves: list[Any], seed: int, step: int) -> list[Any]:
    torch = sys.modules["torch"]
    mixed = _splitmix64(_splitmix64(seed) ^ step) >> 1  # torch seeds take 63 bits safely
    generators: dict[Any, Any] = {}
    out = []
    for leaf in leaves:
        generator = generators.get(leaf.device)
        if generator is None:
            generator = generators[leaf.device] = torch.Generator(device=leaf.device)
            generator.manual_seed(mixed)
        out.append(
            torch.randn(leaf.shape, generator=generator, dtype=leaf.dtype, device=leaf.device)
        )
    return out


def _jax_normals(leaves: list[Any], seed: Any, step: Any) -> list[Any]:
    jax = sys.modules["jax"]
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), step), len(leaves))
    out = []
    for index, leaf in enumerate(leaves):
        samples = jax.random.normal(keys[index], leaf.shape, dtype=leaf.dtype)
        if not isinstance(leaf, jax.core.Tracer):  # same placement as the leaf
            samples = jax.device_put(samples, leaf.sharding)
        out.append(samples)
    return out


def _host_normals(leaves: list[Any], seed: int, step: int, xp: Any) -> list[Any]:
    np = importlib.import_module("numpy")
    generator = np.random.default_rng([seed, step])
    out = []
    for leaf in leaves:
        single = leaf.dtype == xp.float32
        samples = generator.standard_normal(
            tuple(leaf.shape), dtype=np.float32 if single else np.float64
        )
        out.append(xp.asarray(samples, dtype=leaf.dtype, device=array_api_compat.device(leaf)))
    return out


def standard_normals(leaves: list[Any], seed: Any, step: Any, xp: Any) -> list[Any]:
    """N(0, 1) samples with each leaf's shape, dtype and device, determined by ``(seed, step)``.

    ``seed`` and ``step`` are non-negative ints (traced integers on jax).
    """
    name = xp.__name__
    if name.startswith("jax"):
        return _jax_normals(leaves, seed, step)
    seed, step = operator.index(seed), operator.index(step)
    if name == "array_api_compat.torch":
        return _torch_normals(leaves, seed, step)
    return _host_normals(leaves, seed, step, xp)
