"""arraypenalties versus the same math hand-written in each framework, in one process.

    python benchmarks/bench_penalties.py [--quick] [--json PATH] [--frameworks numpy,torch,jax]

Prints a markdown table of median per-call times and their ratio ``ours / native``
(1.00 = no overhead). Cases: ``l2``, ``l1`` and ``elastic_net`` (``lam=0.01``,
``l1_ratio=0.5``) on 16 and 1 000 000 float32 elements, on numpy, torch (eager)
and jax (eager and ``jax.jit``), plus the gradient of ``l2`` (torch through
``get_backend(x).grad``, jax through a jitted ``jax.grad``). Frameworks that are
not installed are skipped with a note. ``--quick`` takes fewer, shorter repeats.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from arraypenalties import elastic_net, get_backend, l1, l2

try:
    from benchmarks._cli import Case, Result, bench_main, format_table, installed_frameworks, timed
except ImportError:  # a script, or loaded from its path: _cli.py sits next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _cli import Case, Result, bench_main, format_table, installed_frameworks, timed

LAM = 0.01
SIZES = (16, 1_000_000)
FULL = {"repeats": 25, "min_time": 0.02, "warmup": 3}
QUICK = {"repeats": 5, "min_time": 0.005, "warmup": 2}

Fn = Callable[[Any], Any]


def _ours_l2(x: Any) -> Any:
    return l2(x, lam=LAM)


def _penalties(sum_: Fn, abs_: Fn) -> list[tuple[str, Fn, Fn]]:
    """``(name, ours, native)`` per penalty; the natives call the framework's own functions."""
    return [
        ("l2", _ours_l2, lambda x: LAM * sum_(x * x)),
        ("l1", lambda x: l1(x, lam=LAM), lambda x: LAM * sum_(abs_(x))),
        (
            "elastic_net",
            lambda x: elastic_net(x, lam=LAM, l1_ratio=0.5),
            lambda x: LAM * (0.5 * sum_(abs_(x)) + 0.5 * sum_(x * x)),
        ),
    ]


def _data(size: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(size).astype(np.float32)


def _numpy_cases() -> Iterator[Case]:
    for name, ours, native in _penalties(np.sum, np.abs):
        for size in SIZES:
            x = _data(size)
            yield Case("numpy", "eager", name, size, partial(ours, x), partial(native, x))


def _torch_cases() -> Iterator[Case]:
    import torch

    def native_grad(x: torch.Tensor) -> torch.Tensor:
        leaf = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(LAM * torch.sum(leaf * leaf), leaf)
        return grad

    tensors = {size: torch.from_numpy(_data(size)) for size in SIZES}
    for name, ours, native in _penalties(torch.sum, torch.abs):
        for size, x in tensors.items():
            yield Case("torch", "eager", name, size, partial(ours, x), partial(native, x))
    for size, x in tensors.items():
        ours_grad = partial(get_backend(x).grad, _ours_l2, x)
        yield Case("torch", "eager", "grad l2", size, ours_grad, partial(native_grad, x))


def _jax_cases() -> Iterator[Case]:
    import jax
    import jax.numpy as jnp

    arrays = {size: jnp.asarray(_data(size)) for size in SIZES}
    sync = jax.block_until_ready
    penalties = _penalties(jnp.sum, jnp.abs)
    for name, ours, native in penalties:
        for size, x in arrays.items():
            yield Case("jax", "eager", name, size, partial(ours, x), partial(native, x), sync)
    for name, ours, native in penalties:
        ours_jit, native_jit = jax.jit(ours), jax.jit(native)
        for size, x in arrays.items():
            yield Case("jax", "jit", name, size, partial(ours_jit, x), partial(native_jit, x), sync)
    native_l2 = penalties[0][2]
    ours_grad, native_grad = jax.jit(jax.grad(_ours_l2)), jax.jit(jax.grad(native_l2))
    for size, x in arrays.items():
        yield Case(
            "jax", "jit", "grad l2", size, partial(ours_grad, x), partial(native_grad, x), sync
        )


FRAMEWORKS: dict[str, Callable[[], Iterator[Case]]] = {
    "numpy": _numpy_cases,
    "torch": _torch_cases,
    "jax": _jax_cases,
}


def run(
    *, quick: bool = False, frameworks: tuple[str, ...] | None = None, torch_threads: int = 1
) -> list[Result]:
    """Measure every case of the installed frameworks (all of them, or ``frameworks``).

    ``torch_threads`` sets torch's intra-op threads (0 keeps torch's default). One
    thread by default: on a small shared machine OpenMP's parallel regions stall
    whenever another process holds a core, adding millisecond outliers to both sides
    that have nothing to do with either implementation.
    """
    settings = QUICK if quick else FULL
    results = []
    for _, cases in installed_frameworks(FRAMEWORKS, frameworks, torch_threads):
        for case in cases():
            # same math on both sides, else the ratio means nothing
            expected = np.asarray(case.native())
            np.testing.assert_allclose(np.asarray(case.ours()), expected, rtol=1e-3)
            results.append(
                Result(case.framework, case.mode, case.case, case.size, **timed(case, settings))
            )
    return results


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, run, format_table, argv)


if __name__ == "__main__":
    sys.exit(main())
