"""A WGAN-GP critic step with arraypenalties versus the same step hand-written, in one process.

    python benchmarks/bench_gradient_penalty.py [--quick] [--json PATH] [--frameworks torch,jax]

One critic step: batch 256 of 2-D samples, critic MLP 2-256-256-1 (ReLU), loss
``mean(D(fake)) − mean(D(real)) + 10 · GP`` with the per-sample interpolated
gradient penalty (α drawn per sample from a seeded generator / key), and the
backward pass into the critic's parameters. Ours computes GP with
``interpolated_gradient_penalty``; native writes it by hand
(``torch.autograd.grad(create_graph=True)``, nested ``jax.grad``). torch runs eagerly
on the CPU, jax under ``jax.jit`` with the key as an argument. Prints a markdown
table of median per-call times and ``ours / native`` (1.00 = no overhead).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from arraypenalties import interpolated_gradient_penalty

try:
    from benchmarks._cli import Case, Result, bench_main, format_table, installed_frameworks, timed
except ImportError:  # a script, or loaded from its path: _cli.py sits next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _cli import Case, Result, bench_main, format_table, installed_frameworks, timed

BATCH, HIDDEN, LAMBDA = 256, 256, 10.0
CASE = "WGAN-GP critic step"
FULL = {"repeats": 25, "min_time": 0.05, "warmup": 3}
QUICK = {"repeats": 5, "min_time": 0.01, "warmup": 2}


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    real = rng.standard_normal((BATCH, 2)).astype(np.float32)
    fake = rng.standard_normal((BATCH, 2)).astype(np.float32) + 1.0
    return fake, real


def _torch_cases() -> Iterator[Case]:
    import torch

    torch.manual_seed(0)
    critic = torch.nn.Sequential(
        torch.nn.Linear(2, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, 1),
    )
    fake, real = (torch.from_numpy(a) for a in _data())

    def critic_sum(x: torch.Tensor) -> torch.Tensor:
        return critic(x).sum()

    def ours_gp(generator: torch.Generator) -> torch.Tensor:
        return interpolated_gradient_penalty(critic_sum, fake, real, rng=generator)

    def native_gp(generator: torch.Generator) -> torch.Tensor:
        alpha = torch.rand(BATCH, 1, generator=generator)
        interpolates = (alpha * fake + (1 - alpha) * real).requires_grad_(True)
        (grads,) = torch.autograd.grad(critic(interpolates).sum(), interpolates, create_graph=True)
        return ((grads.norm(2, dim=1) - 1) ** 2).mean()

    def step(gp: Callable[[torch.Generator], torch.Tensor], generator: torch.Generator) -> Any:
        def run() -> Any:
            critic.zero_grad(set_to_none=True)
            loss = critic(fake).mean() - critic(real).mean() + LAMBDA * gp(generator)
            loss.backward()
            return critic[0].weight.grad  # the result to compare: a parameter gradient

        return run

    ours = step(ours_gp, torch.Generator().manual_seed(1))
    native = step(native_gp, torch.Generator().manual_seed(1))
    yield Case("torch", "eager", CASE, BATCH, ours, native)


def _jax_cases() -> Iterator[Case]:
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.key(0), 3)
    sizes = [2, HIDDEN, HIDDEN, 1]
    params = [
        (
            jax.random.normal(k, (m, n), dtype=jnp.float32) / np.sqrt(m),
            jnp.zeros(n, dtype=jnp.float32),
        )
        for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]
    fake, real = (jnp.asarray(a) for a in _data())

    def critic(params: Any, x: Any) -> Any:
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        return x @ w + b

    def ours_gp(params: Any, key: Any) -> Any:
        fn = lambda x: jnp.sum(critic(params, x))  # noqa: E731
        return interpolated_gradient_penalty(fn, fake, real, rng=key)

    def native_gp(params: Any, key: Any) -> Any:
        alpha = jax.random.uniform(key, (BATCH, 1), dtype=jnp.float32)
        interpolates = alpha * fake + (1 - alpha) * real
        grads = jax.grad(lambda x: jnp.sum(critic(params, x)))(interpolates)
        norms = jnp.sqrt(jnp.sum(grads**2, axis=1))
        return jnp.mean((norms - 1) ** 2)

    def step(gp: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def loss(params: Any, key: Any) -> Any:
            wasserstein = jnp.mean(critic(params, fake)) - jnp.mean(critic(params, real))
            return wasserstein + LAMBDA * gp(params, key)

        return jax.jit(jax.grad(loss))

    ours, native = step(ours_gp), step(native_gp)
    key = jax.random.key(1)
    yield Case(
        "jax",
        "jit",
        CASE,
        BATCH,
        lambda: ours(params, key)[0][0],
        lambda: native(params, key)[0][0],
        jax.block_until_ready,
    )


FRAMEWORKS: dict[str, Callable[[], Iterator[Case]]] = {"torch": _torch_cases, "jax": _jax_cases}


def run(
    *, quick: bool = False, frameworks: tuple[str, ...] | None = None, torch_threads: int = 1
) -> list[Result]:
    """Measure the critic step on every installed framework (all of them, or ``frameworks``).

    ``torch_threads`` sets torch's intra-op threads (0 keeps torch's default); one by
    default, as in ``bench_penalties.py``.
    """
    settings = QUICK if quick else FULL
    results = []
    for _, cases in installed_frameworks(FRAMEWORKS, frameworks, torch_threads):
        for case in cases():
            # same math on both sides (same α stream, same parameters), else the ratio means nothing
            np.testing.assert_allclose(
                np.asarray(case.ours()), np.asarray(case.native()), rtol=1e-4, atol=1e-6
            )
            results.append(
                Result(case.framework, case.mode, case.case, case.size, **timed(case, settings))
            )
    return results


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, run, partial(format_table, size_label="batch"), argv)


if __name__ == "__main__":
    sys.exit(main())
