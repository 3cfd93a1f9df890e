"""KL divergence and entropy: arraypenalties versus the idiomatic native code, in one process.

    python benchmarks/bench_divergences.py [--quick] [--json PATH] [--frameworks numpy,torch,jax]

Prints a markdown table of median per-call times and their ratio ``ours / native``
(1.00 = no overhead). Inputs are float32 log-probabilities of shape
``[4096, 32000]`` (a batch of LLM vocabulary rows; ``--quick`` uses
``[64, 4096]``) and ``[8, 32]``. Cases:

- ``kl``: ``kl_divergence(p, q)`` (forward, mean over rows) versus
  ``F.kl_div(q, p, log_target=True, reduction="batchmean")`` on torch and
  ``mean(sum(exp(p) * (p - q), -1))`` on numpy and jax;
- ``entropy``: ``entropy_value(p)`` versus ``mean(-sum(exp(p) * p, -1))``;
- ``grad kl``: forward + backward of ``kl`` with respect to both inputs
  (``torch.autograd.grad`` on fresh leaves; ``jax.jit(jax.grad(..., argnums=(0, 1)))``).

numpy and torch run eagerly (torch with one intra-op thread, see
``--torch-threads``), jax under ``jax.jit`` on both sides. The natives are the
one-liners people write; they return NaN where a row has ``-inf`` in both
inputs, which ours handles, so part of any ratio above 1 is that guarantee.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from arraypenalties import entropy_value, kl_divergence

try:
    from benchmarks._cli import bench_main, installed_frameworks, timed, us
except ImportError:  # a script, or loaded from its path: _cli.py sits next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _cli import bench_main, installed_frameworks, timed, us

SMALL = (8, 32)
LARGE = (4096, 32000)
QUICK_LARGE = (64, 4096)
FULL = {"repeats": 25, "min_time": 0.02, "warmup": 3}
FULL_LARGE = {"repeats": 9, "min_time": 0.02, "warmup": 2}  # ~0.1-1 s a call: fewer repeats
QUICK = {"repeats": 5, "min_time": 0.005, "warmup": 2}


@dataclass(frozen=True)
class Case:
    framework: str
    mode: str
    case: str
    shape: tuple[int, int]
    ours: Callable[[], Any]
    native: Callable[[], Any]
    sync: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Result:
    framework: str
    mode: str
    case: str
    shape: str
    ours_us: float  # medians
    native_us: float
    ratio: float
    ours_min_us: float
    native_min_us: float


def _log_probs(shape: tuple[int, int], seed: int) -> np.ndarray:
    logits = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) * 2
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _pairs(shapes: tuple[tuple[int, int], ...]) -> Iterator[tuple[tuple[int, int], Any, Any]]:
    for shape in shapes:
        yield shape, _log_probs(shape, 0), _log_probs(shape, 1)


def _numpy_cases(shapes: tuple[tuple[int, int], ...]) -> Iterator[Case]:
    def native_kl(p: np.ndarray, q: np.ndarray) -> Any:
        return np.mean(np.sum(np.exp(p) * (p - q), axis=-1))

    def native_entropy(p: np.ndarray) -> Any:
        return np.mean(-np.sum(np.exp(p) * p, axis=-1))

    for shape, p, q in _pairs(shapes):
        yield Case(
            "numpy", "eager", "kl", shape, partial(kl_divergence, p, q), partial(native_kl, p, q)
        )
        yield Case(
            "numpy",
            "eager",
            "entropy",
            shape,
            partial(entropy_value, p),
            partial(native_entropy, p),
        )


def _torch_cases(shapes: tuple[tuple[int, int], ...]) -> Iterator[Case]:
    import torch
    import torch.nn.functional as F

    def native_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return F.kl_div(q, p, log_target=True, reduction="batchmean")

    def native_entropy(p: torch.Tensor) -> torch.Tensor:
        return -(torch.exp(p) * p).sum(-1).mean()

    def grad_of(kl: Callable[[Any, Any], Any], p: torch.Tensor, q: torch.Tensor) -> Any:
        leaves = p.detach().requires_grad_(True), q.detach().requires_grad_(True)
        return torch.autograd.grad(kl(*leaves), leaves)[0]

    for shape, p_host, q_host in _pairs(shapes):
        p, q = torch.from_numpy(p_host), torch.from_numpy(q_host)
        yield Case(
            "torch", "eager", "kl", shape, partial(kl_divergence, p, q), partial(native_kl, p, q)
        )
        yield Case(
            "torch",
            "eager",
            "entropy",
            shape,
            partial(entropy_value, p),
            partial(native_entropy, p),
        )
        yield Case(
            "torch",
            "eager",
            "grad kl",
            shape,
            partial(grad_of, kl_divergence, p, q),
            partial(grad_of, native_kl, p, q),
        )


def _jax_cases(shapes: tuple[tuple[int, int], ...]) -> Iterator[Case]:
    import jax
    import jax.numpy as jnp

    def native_kl(p: Any, q: Any) -> Any:
        return jnp.mean(jnp.sum(jnp.exp(p) * (p - q), axis=-1))

    def native_entropy(p: Any) -> Any:
        return jnp.mean(-jnp.sum(jnp.exp(p) * p, axis=-1))

    def first(grads: tuple[Any, Any]) -> Any:
        return grads[0]

    sync = jax.block_until_ready
    ours_kl, theirs_kl = jax.jit(kl_divergence), jax.jit(native_kl)
    ours_h, theirs_h = jax.jit(entropy_value), jax.jit(native_entropy)
    ours_g = jax.jit(lambda p, q: first(jax.grad(kl_divergence, argnums=(0, 1))(p, q)))
    theirs_g = jax.jit(lambda p, q: first(jax.grad(native_kl, argnums=(0, 1))(p, q)))
    for shape, p_host, q_host in _pairs(shapes):
        p, q = jnp.asarray(p_host), jnp.asarray(q_host)
        yield Case(
            "jax", "jit", "kl", shape, partial(ours_kl, p, q), partial(theirs_kl, p, q), sync
        )
        yield Case("jax", "jit", "entropy", shape, partial(ours_h, p), partial(theirs_h, p), sync)
        yield Case(
            "jax", "jit", "grad kl", shape, partial(ours_g, p, q), partial(theirs_g, p, q), sync
        )


FRAMEWORKS: dict[str, Callable[[tuple[tuple[int, int], ...]], Iterator[Case]]] = {
    "numpy": _numpy_cases,
    "torch": _torch_cases,
    "jax": _jax_cases,
}


def _to_numpy(value: Any) -> np.ndarray:
    detach = getattr(value, "detach", None)
    return np.asarray(detach() if detach is not None else value)


def run(
    *, quick: bool = False, frameworks: tuple[str, ...] | None = None, torch_threads: int = 1
) -> list[Result]:
    """Measure every case of the installed frameworks (all of them, or ``frameworks``).

    ``torch_threads`` sets torch's intra-op threads (0 keeps torch's default); one
    by default, as in ``bench_penalties.py``: on a small shared machine OpenMP's
    parallel regions stall whenever another process holds a core.
    """
    shapes = (SMALL, QUICK_LARGE if quick else LARGE)
    results = []
    for _, cases in installed_frameworks(FRAMEWORKS, frameworks, torch_threads):
        for case in cases(shapes):
            # same math on both sides, else the ratio means nothing
            np.testing.assert_allclose(
                _to_numpy(case.ours()), _to_numpy(case.native()), rtol=1e-3, atol=1e-7
            )
            settings = QUICK if quick else (FULL if case.shape == SMALL else FULL_LARGE)
            shape = "x".join(str(n) for n in case.shape)
            results.append(
                Result(case.framework, case.mode, case.case, shape, **timed(case, settings))
            )
            del case
            gc.collect()  # the large inputs and their temporaries are 0.5 GB each
    return results


def format_table(results: list[Result]) -> str:
    """The results as a markdown table."""
    lines = [
        "| framework | mode | case | shape | ours µs | native µs | ratio |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.framework} | {r.mode} | {r.case} | {r.shape} | {us(r.ours_us, grouping=True)} "
        f"| {us(r.native_us, grouping=True)} | {r.ratio:.2f} |"
        for r in results
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    quick_help = "fewer, shorter repeats; [64, 4096] as the large input"
    return bench_main(__doc__, run, format_table, argv, quick_help=quick_help)


if __name__ == "__main__":
    sys.exit(main())
