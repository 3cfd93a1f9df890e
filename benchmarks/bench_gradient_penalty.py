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

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import numpy as np

from arraypenalties import interpolated_gradient_penalty

try:
    from benchmarks._timing import compare
    from benchmarks.bench_penalties import Case, Result, environment, format_table
except ImportError:  # a script, or loaded from its path: the helpers sit next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _timing import compare
    from bench_penalties import Case, Result, environment, format_table

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
    for framework, cases in FRAMEWORKS.items():
        if frameworks is not None and framework not in frameworks:
            continue
        if importlib.util.find_spec(framework) is None:
            print(f"note: {framework} is not installed; its cases are skipped")
            continue
        if framework == "torch" and torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        for case in cases():
            # same math on both sides (same α stream, same parameters), else the ratio means nothing
            np.testing.assert_allclose(
                np.asarray(case.ours()), np.asarray(case.native()), rtol=1e-4, atol=1e-6
            )
            ours, native = compare(case.ours, case.native, sync=case.sync, **settings)
            results.append(
                Result(
                    case.framework,
                    case.mode,
                    case.case,
                    case.size,
                    ours.median * 1e6,
                    native.median * 1e6,
                    ours.median / native.median,
                    ours.minimum * 1e6,
                    native.minimum * 1e6,
                )
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats (smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--frameworks", help="comma list, default: every installed one")
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="torch intra-op threads; 0: torch's default"
    )
    args = parser.parse_args(argv)
    frameworks = tuple(args.frameworks.split(",")) if args.frameworks else None

    start = time.perf_counter()
    results = run(quick=args.quick, frameworks=frameworks, torch_threads=args.torch_threads)
    wall = time.perf_counter() - start
    env = environment()
    print(", ".join(f"{key} {value}" for key, value in env.items()))
    print()
    print(format_table(results).replace("| size |", "| batch |"))
    print()
    print(f"median per-call times; ratio = ours / native; {'quick' if args.quick else 'full'} run")
    print(f"took {wall:.1f} s")
    if args.json:
        payload = {
            "quick": args.quick,
            "wall_s": wall,
            "environment": env,
            "results": [asdict(result) for result in results],
        }
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(payload, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
