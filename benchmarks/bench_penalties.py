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

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np

import arraypenalties
from arraypenalties import elastic_net, get_backend, l1, l2

try:
    from benchmarks._timing import compare
except ImportError:  # a script, or loaded from its path: _timing.py sits next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _timing import compare

LAM = 0.01
SIZES = (16, 1_000_000)
FULL = {"repeats": 25, "min_time": 0.02, "warmup": 3}
QUICK = {"repeats": 5, "min_time": 0.005, "warmup": 2}

Fn = Callable[[Any], Any]


@dataclass(frozen=True)
class Case:
    framework: str
    mode: str
    case: str
    size: int
    ours: Callable[[], Any]
    native: Callable[[], Any]
    sync: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Result:
    framework: str
    mode: str
    case: str
    size: int
    ours_us: float  # medians
    native_us: float
    ratio: float
    ours_min_us: float
    native_min_us: float


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
            # same math on both sides, else the ratio means nothing
            expected = np.asarray(case.native())
            np.testing.assert_allclose(np.asarray(case.ours()), expected, rtol=1e-3)
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


def environment() -> dict[str, Any]:
    """Python, platform and the versions of the frameworks that were measured."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "arraypenalties": arraypenalties.__version__,
    }
    for name in FRAMEWORKS:
        module = sys.modules.get(name)
        if module is not None:
            info[name] = module.__version__
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    return info


def _us(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def format_table(results: list[Result]) -> str:
    """The results as a markdown table."""
    lines = [
        "| framework | mode | case | size | ours µs | native µs | ratio |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.framework} | {r.mode} | {r.case} | {r.size:,} | {_us(r.ours_us)} "
        f"| {_us(r.native_us)} | {r.ratio:.2f} |"
        for r in results
    ]
    return "\n".join(lines)


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
    print(format_table(results))
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
