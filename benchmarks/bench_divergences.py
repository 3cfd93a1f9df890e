"""KL divergence and entropy: arraypenalties versus what a user would otherwise call.

    python benchmarks/bench_divergences.py [--quick] [--json PATH] [--frameworks numpy,torch,jax]

Prints a markdown table of median per-call times and their ratio ``ours / theirs``
(1.00 = no overhead), one row per peer. Inputs are float32 of shape
``[4096, 32000]`` (a batch of LLM vocabulary rows; ``--quick`` uses ``[64, 4096]``)
and ``[8, 32]``. Cases (``grad``: forward + backward with respect to every input):

- ``kl``: ``kl_divergence(p, q)`` (forward, mean over rows) on log-probabilities,
  against ``F.kl_div(q, p, log_target=True, reduction="batchmean")`` (torch),
  ``optax.losses.kl_divergence_with_log_targets(q, p).mean()`` and the minimal
  ``mean(sum(exp(p) * (p - q), -1))`` (jax, numpy);
- ``entropy``: ``entropy_value(p)`` on log-probabilities against ``mean(-sum(exp(p) * p, -1))``;
- ``entropy logits``: ``entropy_value(logits, from_logits=True)`` against
  ``Categorical(logits=...).entropy().mean()`` and a TRL ``entropy_from_logits``-style
  loop over chunks of 128 rows (torch), and ``jax.nn.log_softmax`` then the entropy (jax);
- ``grad kl logits``: ``kl_divergence(a, b, from_logits=True)`` against the user's
  ``log_softmax`` of both inputs followed by ``kl_divergence`` (what ``from_logits``
  replaces).

numpy and torch run eagerly (torch with one intra-op thread, see
``--torch-threads``), jax under ``jax.jit`` on both sides. The peers return NaN
where a row has ``-inf`` in both inputs, which ours handles, so part of any ratio
above 1 is that guarantee.
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
FULL_LARGE = {"repeats": 5, "min_time": 0.02, "warmup": 1}  # ~0.1-1 s a call: fewer repeats
QUICK = {"repeats": 5, "min_time": 0.005, "warmup": 2}


@dataclass(frozen=True)
class Case:
    framework: str
    mode: str
    case: str
    shape: tuple[int, int]
    peer: str
    ours: Callable[[], Any]
    native: Callable[[], Any]
    sync: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Result:
    framework: str
    mode: str
    case: str
    shape: str
    peer: str
    ours_us: float  # medians
    native_us: float
    ratio: float
    ours_min_us: float
    native_min_us: float


def _logits(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) * 2


def _log_probs(shape: tuple[int, int], seed: int) -> np.ndarray:
    logits = _logits(shape, seed)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _pairs(shapes: tuple[tuple[int, int], ...]) -> Iterator[tuple[tuple[int, int], Any, Any]]:
    for shape in shapes:
        yield shape, _log_probs(shape, 0), _log_probs(shape, 1)


MINIMAL = "exp(p)*(p-q)"
MINIMAL_H = "-exp(p)*p"


def _numpy_cases(shapes: tuple[tuple[int, int], ...]) -> Iterator[Case]:
    def native_kl(p: np.ndarray, q: np.ndarray) -> Any:
        return np.mean(np.sum(np.exp(p) * (p - q), axis=-1))

    def native_entropy(p: np.ndarray) -> Any:
        return np.mean(-np.sum(np.exp(p) * p, axis=-1))

    for shape, p, q in _pairs(shapes):
        ours_kl, ours_h = partial(kl_divergence, p, q), partial(entropy_value, p)
        yield Case("numpy", "eager", "kl", shape, MINIMAL, ours_kl, partial(native_kl, p, q))
        yield Case(
            "numpy", "eager", "entropy", shape, MINIMAL_H, ours_h, partial(native_entropy, p)
        )


def _trl_entropy_from_logits(logits: Any, chunk_size: int = 128) -> Any:
    """TRL's ``entropy_from_logits`` pattern: log-softmax and entropy per chunk of rows."""
    import torch

    per_row = []
    for chunk in logits.split(chunk_size, dim=0):
        logps = torch.log_softmax(chunk, dim=-1)
        per_row.append(-(torch.exp(logps) * logps).sum(-1))
    return torch.cat(per_row).mean()


def _torch_cases(shapes: tuple[tuple[int, int], ...], device: str = "cpu") -> Iterator[Case]:
    import torch
    import torch.nn.functional as F

    def native_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return F.kl_div(q, p, log_target=True, reduction="batchmean")

    def native_entropy(p: torch.Tensor) -> torch.Tensor:
        return -(torch.exp(p) * p).sum(-1).mean()

    def categorical(logits: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Categorical(logits=logits).entropy().mean()

    def kl_logits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return kl_divergence(a, b, from_logits=True)

    def user_kl_logits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return kl_divergence(torch.log_softmax(a, -1), torch.log_softmax(b, -1))

    def grad_of(kl: Callable[[Any, Any], Any], p: torch.Tensor, q: torch.Tensor) -> Any:
        leaves = p.detach().requires_grad_(True), q.detach().requires_grad_(True)
        return torch.autograd.grad(kl(*leaves), leaves)[0]

    for shape, p_host, q_host in _pairs(shapes):
        p, q = torch.from_numpy(p_host).to(device), torch.from_numpy(q_host).to(device)
        a, b = p, q  # log-probabilities are logits too: no second pair of 0.5 GB inputs
        ours_h = partial(entropy_value, a, from_logits=True)
        kl_div = "F.kl_div"
        yield Case(
            "torch",
            "eager",
            "kl",
            shape,
            kl_div,
            partial(kl_divergence, p, q),
            partial(native_kl, p, q),
        )
        yield Case(
            "torch",
            "eager",
            "grad kl",
            shape,
            kl_div,
            partial(grad_of, kl_divergence, p, q),
            partial(grad_of, native_kl, p, q),
        )
        yield Case(
            "torch",
            "eager",
            "entropy",
            shape,
            MINIMAL_H,
            partial(entropy_value, p),
            partial(native_entropy, p),
        )
        yield Case(
            "torch",
            "eager",
            "entropy logits",
            shape,
            "Categorical",
            ours_h,
            partial(categorical, a),
        )
        yield Case(
            "torch",
            "eager",
            "entropy logits",
            shape,
            "TRL chunked",
            ours_h,
            partial(_trl_entropy_from_logits, a),
        )
        yield Case(
            "torch",
            "eager",
            "grad kl logits",
            shape,
            "log_softmax + ours",
            partial(grad_of, kl_logits, a, b),
            partial(grad_of, user_kl_logits, a, b),
        )


def _jax_cases(shapes: tuple[tuple[int, int], ...]) -> Iterator[Case]:
    import jax
    import jax.numpy as jnp
    import optax

    def native_kl(p: Any, q: Any) -> Any:
        return jnp.mean(jnp.sum(jnp.exp(p) * (p - q), axis=-1))

    def optax_kl(p: Any, q: Any) -> Any:
        return jnp.mean(optax.losses.kl_divergence_with_log_targets(q, p))

    def log_softmax_entropy(logits: Any) -> Any:
        logps = jax.nn.log_softmax(logits, axis=-1)
        return jnp.mean(-jnp.sum(jnp.exp(logps) * logps, axis=-1))

    def kl_logits(a: Any, b: Any) -> Any:
        return kl_divergence(a, b, from_logits=True)

    def user_kl_logits(a: Any, b: Any) -> Any:
        return kl_divergence(jax.nn.log_softmax(a, axis=-1), jax.nn.log_softmax(b, axis=-1))

    def grad_of(fn: Callable[[Any, Any], Any]) -> Any:
        # both gradients computed inside the jitted function (indexing inside it would let
        # XLA drop the unused one from one side only), the first returned for the check
        both = jax.jit(lambda p, q: jax.grad(fn, argnums=(0, 1))(p, q))
        return lambda p, q: both(p, q)[0]

    sync = jax.block_until_ready
    ours_kl, ours_g = jax.jit(kl_divergence), grad_of(kl_divergence)
    ours_h = jax.jit(partial(entropy_value, from_logits=True))
    for shape, p_host, q_host in _pairs(shapes):
        p, q = jnp.asarray(p_host), jnp.asarray(q_host)
        a, b = p, q  # log-probabilities are logits too
        for peer, theirs in (("optax", optax_kl), (MINIMAL, native_kl)):
            yield Case(
                "jax",
                "jit",
                "kl",
                shape,
                peer,
                partial(ours_kl, p, q),
                partial(jax.jit(theirs), p, q),
                sync,
            )
            yield Case(
                "jax",
                "jit",
                "grad kl",
                shape,
                peer,
                partial(ours_g, p, q),
                partial(grad_of(theirs), p, q),
                sync,
            )
        yield Case(
            "jax",
            "jit",
            "entropy logits",
            shape,
            "log_softmax entropy",
            partial(ours_h, a),
            partial(jax.jit(log_softmax_entropy), a),
            sync,
        )
        yield Case(
            "jax",
            "jit",
            "grad kl logits",
            shape,
            "log_softmax + ours",
            partial(grad_of(kl_logits), a, b),
            partial(grad_of(user_kl_logits), a, b),
            sync,
        )


FRAMEWORKS: dict[str, Callable[[tuple[tuple[int, int], ...]], Iterator[Case]]] = {
    "numpy": _numpy_cases,
    "torch": _torch_cases,
    "jax": _jax_cases,
}


def to_numpy(value: Any) -> np.ndarray:
    """A result on the host as numpy (torch tensors detached and moved off any device)."""
    detach = getattr(value, "detach", None)
    return np.asarray(detach().cpu() if detach is not None else value)


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
                to_numpy(case.ours()), to_numpy(case.native()), rtol=1e-3, atol=1e-7
            )
            settings = QUICK if quick else (FULL if case.shape == SMALL else FULL_LARGE)
            shape = "x".join(str(n) for n in case.shape)
            results.append(
                Result(
                    case.framework,
                    case.mode,
                    case.case,
                    shape,
                    case.peer,
                    **timed(case, settings),
                )
            )
            del case
            gc.collect()  # the large inputs and their temporaries are 0.5 GB each
    return results


def format_table(results: list[Result]) -> str:
    """The results as a markdown table."""
    lines = [
        "| framework | mode | case | shape | against | ours µs | theirs µs | ratio |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.framework} | {r.mode} | {r.case} | {r.shape} | {r.peer} "
        f"| {us(r.ours_us, grouping=True)} "
        f"| {us(r.native_us, grouping=True)} | {r.ratio:.2f} |"
        for r in results
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    quick_help = "fewer, shorter repeats; [64, 4096] as the large input"
    return bench_main(
        __doc__, run, format_table, argv, quick_help=quick_help, extra_modules=("optax",)
    )


if __name__ == "__main__":
    sys.exit(main())
