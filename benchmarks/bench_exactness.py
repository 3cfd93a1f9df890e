"""What exactness costs where the divergences miss a speed target of SPEC §13.

    python benchmarks/bench_exactness.py [--quick] [--json PATH] [--frameworks torch,jax]

Each row times one form of a per-row sum against the peer of ``bench_divergences.py``
(ratio = form / peer, medians of interleaved repeats; the inputs are its float32
log-probabilities and logits). The forms go from the peer's math to ours one guard at a
time, so the table says what each guard costs and how close the exact form can get:

- jax ``jit``, KL forward, against ``optax.losses.kl_divergence_with_log_targets``: the
  minimal ``exp(p)*(p-q)`` (NaN where ``p = 0`` meets a ``-inf``); with ``log p``
  floored at the lowest finite value ``low``; with ``log q`` floored at ``low`` too (no
  NaN, but a finite value where ``p > 0 = q``); ``kl_divergence`` (exact: ``log q``
  floored at ``low·(1 + p/tiny)``, which stays ``-inf`` wherever ``p > 0``). ``flops``
  is XLA's own estimate for the compiled call: the CPU client runs a computation of
  under 1000 flops inline on the calling thread and a larger one on a worker thread.
  ``8x40`` puts the peer past that line.
- jax ``jit``, entropy of logits, against ``jax.nn.log_softmax`` then the entropy: our
  three reductions without the floor of ``log p`` (NaN wherever a logit is ``-inf``),
  and ``entropy_value(from_logits=True)``.
- torch eager (one thread), KL forward at ``[8, 32]``, against ``F.kl_div(log_target=True,
  reduction="batchmean")``: the exact form's ATen calls in a bare function (``exp``,
  subtract, compare, ``masked_fill_``, multiply, sum, mean; no checks, no dispatch) and
  ``kl_divergence``.
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
    from benchmarks.bench_divergences import LARGE, QUICK_LARGE, SMALL, to_numpy
    from benchmarks.bench_divergences import _log_probs as log_probs
    from benchmarks.bench_divergences import _logits as logits_of
except ImportError:  # a script, or loaded from its path: the others sit next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _cli import bench_main, installed_frameworks, timed, us
    from bench_divergences import LARGE, QUICK_LARGE, SMALL, to_numpy
    from bench_divergences import _log_probs as log_probs
    from bench_divergences import _logits as logits_of

PAST_INLINE = (8, 40)  # the optax KL by XLA's estimate: 768 flops at [8, 32], 1,152 here
FULL = {"repeats": 25, "min_time": 0.02, "warmup": 3}
FULL_LARGE = {"repeats": 5, "min_time": 0.02, "warmup": 1}
QUICK = {"repeats": 5, "min_time": 0.005, "warmup": 2}


@dataclass(frozen=True)
class Form:
    framework: str
    case: str
    shape: tuple[int, int]
    form: str
    exact: bool
    peer: str
    ours: Callable[[], Any]
    native: Callable[[], Any]
    sync: Callable[[Any], Any] | None = None
    flops: float | None = None


@dataclass(frozen=True)
class Result:
    framework: str
    case: str
    shape: str
    form: str
    exact: bool
    peer: str
    flops: float | None  # XLA's estimate for the form (jax)
    ours_us: float  # the form, median
    native_us: float  # the peer, median
    ratio: float
    ours_min_us: float
    native_min_us: float


def _jax_forms(large: tuple[int, int]) -> Iterator[Form]:
    import jax
    import jax.numpy as jnp
    import optax

    low = float(jnp.finfo(jnp.float32).min)

    def optax_kl(p: Any, q: Any) -> Any:
        return jnp.mean(optax.losses.kl_divergence_with_log_targets(q, p))

    def minimal(p: Any, q: Any) -> Any:
        return jnp.mean(jnp.sum(jnp.exp(p) * (p - q), axis=-1))

    def floor_p(p: Any, q: Any) -> Any:
        return jnp.mean(jnp.sum(jnp.exp(p) * (jnp.maximum(p, low) - q), axis=-1))

    def floor_both(p: Any, q: Any) -> Any:
        ratio = jnp.maximum(p, low) - jnp.maximum(q, low)
        return jnp.mean(jnp.sum(jnp.exp(p) * ratio, axis=-1))

    def peer_entropy(x: Any) -> Any:
        lp = jax.nn.log_softmax(x, axis=-1)
        return jnp.mean(-jnp.sum(jnp.exp(lp) * lp, axis=-1))

    def unfloored_entropy(x: Any) -> Any:  # our three reductions, no floor on log p
        shift = jnp.maximum(jnp.max(x, axis=-1, keepdims=True), low)
        total = jnp.sum(jnp.exp(x - shift), axis=-1, keepdims=True)
        lp = x - (jnp.log(total + float(jnp.finfo(jnp.float32).smallest_normal)) + shift)
        return jnp.mean(-jnp.sum(jnp.exp(lp) * lp, axis=-1))

    def flops(fn: Any, *args: Any) -> float:
        analysis = fn.lower(*args).compile().cost_analysis()
        analysis = analysis[0] if isinstance(analysis, list) else analysis
        return float(analysis["flops"])

    sync = jax.block_until_ready
    kl_forms = (
        ("exp(p)*(p-q)", False, minimal),
        ("+ max(log p, low)", False, floor_p),
        ("+ max(log q, low)", False, floor_both),
        ("kl_divergence", True, kl_divergence),
    )
    peer_kl = jax.jit(optax_kl)
    for shape in (SMALL, PAST_INLINE, large):
        p, q = jnp.asarray(log_probs(shape, 0)), jnp.asarray(log_probs(shape, 1))
        yield Form(
            "jax", "kl", shape, "optax itself", False, "optax",
            partial(peer_kl, p, q), partial(peer_kl, p, q), sync, flops(peer_kl, p, q),
        )  # fmt: skip
        for name, exact, fn in kl_forms:
            jitted = jax.jit(fn)
            yield Form(
                "jax", "kl", shape, name, exact, "optax",
                partial(jitted, p, q), partial(peer_kl, p, q), sync, flops(jitted, p, q),
            )  # fmt: skip
    peer_h = jax.jit(peer_entropy)
    entropy_forms = (
        ("without the floor of log p", False, jax.jit(unfloored_entropy)),
        ("entropy_value", True, jax.jit(partial(entropy_value, from_logits=True))),
    )
    for shape in (SMALL, large):
        x = jnp.asarray(logits_of(shape, 0))
        for name, exact, jitted in entropy_forms:
            yield Form(
                "jax", "entropy logits", shape, name, exact, "log_softmax entropy",
                partial(jitted, x), partial(peer_h, x), sync, flops(jitted, x),
            )  # fmt: skip


def _torch_forms(large: tuple[int, int]) -> Iterator[Form]:
    import torch
    import torch.nn.functional as F

    def peer(p: Any, q: Any) -> Any:
        return F.kl_div(q, p, log_target=True, reduction="batchmean")

    def bare_exact(p: Any, q: Any) -> Any:  # the exact form's ATen calls, nothing else
        probs = torch.exp(p)
        ratio = torch.sub(p, q).masked_fill_(probs == 0, 0.0)
        return ratio.mul_(probs).sum(dim=-1).mean()

    p, q = torch.from_numpy(log_probs(SMALL, 0)), torch.from_numpy(log_probs(SMALL, 1))
    for name, fn in (("exact ATen ops, bare", bare_exact), ("kl_divergence", kl_divergence)):
        yield Form(
            "torch", "kl", SMALL, name, True, "F.kl_div", partial(fn, p, q), partial(peer, p, q)
        )


FRAMEWORKS: dict[str, Callable[[tuple[int, int]], Iterator[Form]]] = {
    "torch": _torch_forms,
    "jax": _jax_forms,
}


def run(
    *, quick: bool = False, frameworks: tuple[str, ...] | None = None, torch_threads: int = 1
) -> list[Result]:
    """Time every form of the installed frameworks (all of them, or ``frameworks``)."""
    large = QUICK_LARGE if quick else LARGE
    results = []
    for _, forms in installed_frameworks(FRAMEWORKS, frameworks, torch_threads):
        for form in forms(large):
            np.testing.assert_allclose(  # finite inputs: every form is the same math
                to_numpy(form.ours()), to_numpy(form.native()), rtol=1e-3, atol=1e-7
            )
            settings = QUICK if quick else (FULL_LARGE if form.shape == large else FULL)
            results.append(
                Result(
                    form.framework,
                    form.case,
                    "x".join(str(n) for n in form.shape),
                    form.form,
                    form.exact,
                    form.peer,
                    form.flops,
                    **timed(form, settings),
                )
            )
            del form
            gc.collect()
    return results


def format_table(results: list[Result]) -> str:
    """The results as a markdown table."""
    lines = [
        "| framework | case | shape | form | exact | XLA flops | µs | against | µs | ratio |",
        "|---|---|---|---|---|---:|---:|---|---:|---:|",
    ]
    lines += [
        f"| {r.framework} | {r.case} | {r.shape} | {r.form} | {'yes' if r.exact else 'no'} "
        f"| {'' if r.flops is None else f'{r.flops:,.0f}'} | {us(r.ours_us, grouping=True)} "
        f"| {r.peer} | {us(r.native_us, grouping=True)} | {r.ratio:.2f} |"
        for r in results
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        __doc__,
        run,
        format_table,
        argv,
        quick_help="fewer, shorter repeats; [64, 4096] as the large input",
        extra_modules=("optax",),
        footer="median per-call times; ratio = form / peer",
    )


if __name__ == "__main__":
    sys.exit(main())
