"""Pipeline overhead versus the same weighted sum written by hand, in one process.

    python benchmarks/bench_pipeline.py [--quick] [--json PATH] [--frameworks torch,jax]

Four penalties (l1, l2, entropy bonus, soft orthogonality) on log-probabilities of
shape [256, 1024] float32, on torch (eager) and jax (jitted natives). Rows:

- ``compute_total``: ours versus the hand-written native total (target <= 1.10);
- ``compute``: ours with metrics (one host transfer) versus our ``compute_total``
  (target <= 1.3);
- ``tracked``: ``compute(track_grad_norms=True)`` versus one forward + backward of
  the hand-written total (target <= (N + 1) / 2 = 2.5);
- ``naive/tracked``: the naive tracker (N separate gradients + 1 total gradient,
  one host sync per norm) divided by ours: how many times faster ours is (target
  >= 1.5).

Prints a markdown table of medians; ``--quick`` takes fewer, shorter repeats and a
smaller input.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from arraypenalties import Pipeline

try:
    from benchmarks._cli import build_parser, installed_frameworks, target_table, write_json
    from benchmarks._timing import compare
except ImportError:  # run as a script: the helpers sit next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _cli import build_parser, installed_frameworks, target_table, write_json
    from _timing import compare

WEIGHTS = {"l1": 1e-3, "l2": 1e-4, "entropy": 1e-2, "orthogonality": 1e-1}
SHAPE, QUICK_SHAPE = (256, 1024), (32, 128)
FULL = {"repeats": 25, "min_time": 0.05, "warmup": 3}
QUICK = {"repeats": 3, "min_time": 0.005, "warmup": 1}
PIPELINE = (
    Pipeline(name="bench")
    .add("l1", "l1", weight=WEIGHTS["l1"])
    .add("l2", "l2", weight=WEIGHTS["l2"])
    .add("entropy", "entropy", weight=WEIGHTS["entropy"], opts={"mode": "bonus"})
    .add("orthogonality", "orthogonality", weight=WEIGHTS["orthogonality"])
)


@dataclass(frozen=True)
class Row:
    framework: str
    case: str
    ours_us: float
    reference_us: float
    ratio: float
    target: str


def _logprobs(shape: tuple[int, int]) -> np.ndarray:
    logits = np.random.default_rng(0).standard_normal(shape)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))).astype(np.float32)


def _torch_rows(shape: tuple[int, int], settings: dict[str, Any]) -> Iterator[Row]:
    import torch

    def terms(x: torch.Tensor) -> list[torch.Tensor]:
        rows = x / torch.clamp(torch.linalg.vector_norm(x, dim=-1, keepdim=True), min=1e-8)
        gram = rows @ rows.T
        return [
            torch.sum(torch.abs(x)),
            torch.sum(x * x),
            torch.mean(torch.sum(torch.exp(x) * x, dim=-1)),  # −H, the entropy bonus
            torch.sum(gram * gram) - torch.sum(torch.diagonal(gram) ** 2),
        ]

    weights = list(WEIGHTS.values())

    def native_total(x: torch.Tensor) -> torch.Tensor:
        return sum(w * t for w, t in zip(weights, terms(x), strict=True))  # type: ignore[return-value]

    def native_forward_backward(x: torch.Tensor) -> torch.Tensor:
        leaf = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(native_total(leaf), leaf)
        return grad

    def naive_tracking(x: torch.Tensor) -> list[float]:
        norms = []
        for index in range(len(weights)):
            leaf = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(terms(leaf)[index], leaf)
            norms.append(torch.linalg.vector_norm(grad).item())
        norms.append(torch.linalg.vector_norm(native_forward_backward(x)).item())
        return norms

    x = torch.from_numpy(_logprobs(shape))
    np.testing.assert_allclose(
        PIPELINE.compute_total(x).item(), native_total(x).item(), rtol=1e-4
    )  # same math on both sides, else the ratios mean nothing
    yield from _rows(
        "torch",
        settings,
        None,
        total=(lambda: PIPELINE.compute_total(x), lambda: native_total(x)),
        compute=lambda: PIPELINE.compute(x),
        tracked=lambda: PIPELINE.compute(x, track_grad_norms=True),
        forward_backward=lambda: native_forward_backward(x),
        naive=lambda: naive_tracking(x),
    )


def _jax_rows(shape: tuple[int, int], settings: dict[str, Any]) -> Iterator[Row]:
    import jax
    import jax.numpy as jnp

    def terms(x: jax.Array) -> list[jax.Array]:
        norms = jnp.linalg.norm(x, axis=-1, keepdims=True)
        rows = x / jnp.maximum(norms, 1e-8)
        gram = rows @ rows.T
        return [
            jnp.sum(jnp.abs(x)),
            jnp.sum(x * x),
            jnp.mean(jnp.sum(jnp.exp(x) * x, axis=-1)),
            jnp.sum(gram * gram) - jnp.sum(jnp.diagonal(gram) ** 2),
        ]

    weights = list(WEIGHTS.values())

    def native_total(x: jax.Array) -> jax.Array:
        return sum(w * t for w, t in zip(weights, terms(x), strict=True))  # type: ignore[return-value]

    native_jit = jax.jit(native_total)
    forward_backward = jax.jit(jax.value_and_grad(native_total))
    separate = [jax.jit(jax.grad(lambda x, i=i: terms(x)[i])) for i in range(len(weights))] + [
        jax.jit(jax.grad(native_total))
    ]

    def naive_tracking(x: jax.Array) -> list[float]:
        return [float(jnp.linalg.norm(grad(x))) for grad in separate]

    ours_total = jax.jit(PIPELINE.compute_total)
    x = jnp.asarray(_logprobs(shape))
    np.testing.assert_allclose(float(ours_total(x)), float(native_jit(x)), rtol=1e-4)
    yield from _rows(
        "jax",
        settings,
        jax.block_until_ready,
        total=(lambda: ours_total(x), lambda: native_jit(x)),
        compute=lambda: PIPELINE.compute(x),
        tracked=lambda: PIPELINE.compute(x, track_grad_norms=True),
        forward_backward=lambda: forward_backward(x),
        naive=lambda: naive_tracking(x),
    )


def _rows(
    framework: str,
    settings: dict[str, Any],
    sync: Callable[[Any], Any] | None,
    *,
    total: tuple[Callable[[], Any], Callable[[], Any]],
    compute: Callable[[], Any],
    tracked: Callable[[], Any],
    forward_backward: Callable[[], Any],
    naive: Callable[[], Any],
) -> Iterator[Row]:
    # compute() returns host floats (already synchronised); totals and gradients need sync
    def synced(fn: Callable[[], Any]) -> Callable[[], Any]:
        return fn if sync is None else (lambda: sync(fn()))

    ours_total, native_total = compare(*(synced(fn) for fn in total), **settings)
    yield Row(
        framework,
        "compute_total vs native total",
        ours_total.median * 1e6,
        native_total.median * 1e6,
        ours_total.median / native_total.median,
        "<= 1.10",
    )
    ours_compute, ours_total = compare(compute, synced(total[0]), **settings)
    yield Row(
        framework,
        "compute vs compute_total",
        ours_compute.median * 1e6,
        ours_total.median * 1e6,
        ours_compute.median / ours_total.median,
        "<= 1.3",
    )
    ours_tracked, native_fb, naive_time = compare(
        tracked, synced(forward_backward), naive, **settings
    )
    yield Row(
        framework,
        "compute(track_grad_norms) vs native fwd+bwd",
        ours_tracked.median * 1e6,
        native_fb.median * 1e6,
        ours_tracked.median / native_fb.median,
        "<= 2.5",
    )
    yield Row(
        framework,
        "naive tracker / ours (times faster)",
        naive_time.median * 1e6,
        ours_tracked.median * 1e6,
        naive_time.median / ours_tracked.median,
        ">= 1.5",
    )


FRAMEWORKS = {"torch": _torch_rows, "jax": _jax_rows}


def run(
    *, quick: bool = False, frameworks: tuple[str, ...] | None = None, torch_threads: int = 1
) -> list[Row]:
    """Measure every installed framework (or ``frameworks``); see the module docstring."""
    settings, shape = (QUICK, QUICK_SHAPE) if quick else (FULL, SHAPE)
    rows: list[Row] = []
    for _, make_rows in installed_frameworks(FRAMEWORKS, frameworks, torch_threads):
        rows.extend(make_rows(shape, settings))
    return rows


def format_table(rows: list[Row], shape: tuple[int, int]) -> str:
    title = f"4 penalties (l1, l2, entropy, orthogonality) on {list(shape)} float32"
    return target_table(title, rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__, "fewer repeats, smaller input").parse_args(argv)
    rows = run(quick=args.quick, frameworks=args.frameworks, torch_threads=args.torch_threads)
    print(format_table(rows, QUICK_SHAPE if args.quick else SHAPE))
    if args.json:
        write_json(args.json, {"results": [asdict(row) for row in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
