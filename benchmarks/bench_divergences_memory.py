"""Peak memory of the divergences (forward + backward) beyond the inputs and their gradients.

    python benchmarks/bench_divergences_memory.py [--quick] [--json PATH] [--frameworks ...]

Each measurement runs in a fresh subprocess: it builds the inputs, compiles (jax
``jit``: ahead of time, without running; jax eager: by one call first), then resets
the process's peak resident set size (``/proc/self/clear_refs``, Linux), runs one forward + backward
(numpy: forward only) and reads the new peak (``VmHWM``). The table reports that
peak minus the resident size just before the call, minus the gradients' own
size, in units of one input: the temporaries and saved intermediates. glibc's
mmap threshold is held at its initial 128 KiB (``MALLOC_MMAP_THRESHOLD_``) so that
the resident size follows the live buffers rather than the allocator's retention. SPEC §13
bounds it by about 1 for KL and entropy and 2 for JS, from 64 MiB inputs up.
Inputs are float32 ``[512, 32768]`` (64 MiB) and ``[2048, 32768]`` (256 MiB);
``--quick`` measures torch KL on ``[64, 32768]`` (8 MiB) only. Linux only.
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    from benchmarks._cli import bench_main, installed_frameworks
except ImportError:  # a script, or loaded from its path: _cli.py sits next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _cli import bench_main, installed_frameworks

SHAPES = ((512, 32768), (2048, 32768))
QUICK_SHAPES = ((64, 32768),)
LN2 = math.log(2.0)

# (framework, mode, case) -> (peer name, number of inputs with a gradient)
CASES: dict[tuple[str, str, str], tuple[str, int]] = {
    ("numpy", "eager", "kl (forward)"): ("exp(p)*(p-q)", 0),
    ("torch", "eager", "kl"): ("F.kl_div", 2),
    ("torch", "eager", "kl logits"): ("log_softmax + F.kl_div", 2),
    ("torch", "eager", "js"): ("logsumexp mixture + F.kl_div", 2),
    ("torch", "eager", "entropy T=2"): ("log_softmax(x/2) entropy", 1),
    ("torch", "eager", "entropy logits"): ("Categorical", 1),
    ("jax", "eager", "kl"): ("exp(p)*(p-q)", 2),
    ("jax", "jit", "kl"): ("optax", 2),
    ("jax", "jit", "kl logits"): ("log_softmax + optax", 2),
    ("jax", "jit", "js"): ("logaddexp mixture", 2),
    ("jax", "jit", "entropy logits"): ("log_softmax entropy", 1),
}
QUICK_CASES = (("torch", "eager", "kl"),)


@dataclass(frozen=True)
class Result:
    framework: str
    mode: str
    case: str
    shape: str
    peer: str
    input_mib: float
    ours_extra: float  # peak beyond inputs and gradients, in inputs
    native_extra: float


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    msg = f"no {field} in /proc/self/status"
    raise RuntimeError(msg)


def _inputs(shape: tuple[int, int], count: int, logits: bool) -> list[np.ndarray]:
    arrays = []
    for seed in range(count):
        x = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) * 2
        if not logits:
            x = x - x.max(axis=-1, keepdims=True)
            x = x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True))
        arrays.append(x)
    return arrays


def _torch_fn(case: str, side: str) -> Callable[..., Any]:
    import torch
    import torch.nn.functional as F

    import arraypenalties as ap

    def native(*xs: Any) -> Any:
        if case == "kl":
            return F.kl_div(xs[1], xs[0], log_target=True, reduction="batchmean")
        if case == "kl logits":
            lp, lq = torch.log_softmax(xs[0], -1), torch.log_softmax(xs[1], -1)
            return F.kl_div(lq, lp, log_target=True, reduction="batchmean")
        if case == "js":
            m = torch.logaddexp(xs[0], xs[1]) - LN2
            kl_p = F.kl_div(m, xs[0], log_target=True, reduction="batchmean")
            return 0.5 * (kl_p + F.kl_div(m, xs[1], log_target=True, reduction="batchmean"))
        if case == "entropy T=2":
            lp = torch.log_softmax(xs[0] / 2.0, -1)
            return -(torch.exp(lp) * lp).sum(-1).mean()
        return torch.distributions.Categorical(logits=xs[0]).entropy().mean()

    def ours(*xs: Any) -> Any:
        if case in ("kl", "kl logits"):
            return ap.kl_divergence(xs[0], xs[1], from_logits=case == "kl logits")
        if case == "js":
            return ap.js_divergence(xs[0], xs[1])
        if case == "entropy T=2":
            return ap.entropy_value(xs[0], temperature=2.0)
        return ap.entropy_value(xs[0], from_logits=True)

    value = ours if side == "ours" else native

    def step(*xs: Any) -> Any:
        leaves = [torch.as_tensor(x).requires_grad_(True) for x in xs]  # numpy: shared, no copy
        return torch.autograd.grad(value(*leaves), leaves)

    return step


def _jax_grad(mode: str, case: str, side: str, count: int) -> Callable[..., Any]:
    import jax
    import jax.numpy as jnp
    import optax

    import arraypenalties as ap

    def native(*xs: Any) -> Any:
        if case == "kl":
            if mode == "eager":
                return jnp.mean(jnp.sum(jnp.exp(xs[0]) * (xs[0] - xs[1]), axis=-1))
            return jnp.mean(optax.losses.kl_divergence_with_log_targets(xs[1], xs[0]))
        if case == "kl logits":
            lp, lq = jax.nn.log_softmax(xs[0]), jax.nn.log_softmax(xs[1])
            return jnp.mean(optax.losses.kl_divergence_with_log_targets(lq, lp))
        if case == "js":
            m = jnp.logaddexp(xs[0], xs[1]) - LN2
            to_p = jnp.sum(jnp.exp(xs[0]) * (xs[0] - m), axis=-1)
            return jnp.mean(0.5 * (to_p + jnp.sum(jnp.exp(xs[1]) * (xs[1] - m), axis=-1)))
        lp = jax.nn.log_softmax(xs[0])
        return jnp.mean(-jnp.sum(jnp.exp(lp) * lp, axis=-1))

    def ours(*xs: Any) -> Any:
        if case in ("kl", "kl logits"):
            return ap.kl_divergence(xs[0], xs[1], from_logits=case == "kl logits")
        if case == "js":
            return ap.js_divergence(xs[0], xs[1])
        return ap.entropy_value(xs[0], from_logits=True)

    return jax.grad(ours if side == "ours" else native, argnums=tuple(range(count)))


def jax_compiled(case: str, side: str, shape: tuple[int, int], count: int) -> Any:
    """The jitted forward + backward of ``case``, compiled ahead of time for float32 ``shape``."""
    import jax
    import jax.numpy as jnp

    spec = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.jit(_jax_grad("jit", case, side, count)).lower(*[spec] * count).compile()


def _jax_fn(mode: str, case: str, side: str, inputs: list[np.ndarray]) -> Callable[[], Any]:
    import jax
    import jax.numpy as jnp

    arrays = [jnp.asarray(x) for x in inputs]
    if mode == "jit":
        compiled = jax_compiled(case, side, inputs[0].shape, len(inputs))
        return lambda: jax.block_until_ready(compiled(*arrays))
    grad = _jax_grad(mode, case, side, len(inputs))
    jax.block_until_ready(grad(*arrays))  # eager: compiles its pieces once, not measured
    return lambda: jax.block_until_ready(grad(*arrays))


def _numpy_fn(side: str, inputs: list[np.ndarray]) -> Callable[[], Any]:
    import arraypenalties as ap

    p, q = inputs
    if side == "ours":
        return lambda: ap.kl_divergence(p, q)
    return lambda: np.mean(np.sum(np.exp(p) * (p - q), axis=-1))


def measure(framework: str, mode: str, case: str, side: str, shape: tuple[int, int]) -> float:
    """Run in this process: peak bytes beyond the inputs and their gradients, in inputs."""
    _, with_grad = CASES[(framework, mode, case)]
    count = 1 if case.startswith("entropy") else 2
    inputs = _inputs(shape, count, logits="logits" in case or case.startswith("entropy"))
    if framework == "torch":
        import torch

        torch.set_num_threads(1)
        step = _torch_fn(case, side)
        step(*(x[:4, :16].copy() for x in inputs))  # autograd's lazy start-up, not measured
        call: Callable[[], Any] = lambda: step(*inputs)  # noqa: E731
    elif framework == "jax":
        call = _jax_fn(mode, case, side, inputs)
    else:
        call = _numpy_fn(side, inputs)
    gc.collect()
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")  # resets the peak resident set size to the current one
    result = call()
    peak = _status_kib("VmHWM")
    del result
    input_bytes = shape[0] * shape[1] * 4
    return ((peak - before) * 1024 - with_grad * input_bytes) / input_bytes


def _child(framework: str, mode: str, case: str, side: str, shape: tuple[int, int]) -> float:
    command = [sys.executable, os.path.abspath(__file__), "--child", framework, mode, case, side]
    command += [str(n) for n in shape]
    # glibc's mmap threshold held at its initial 128 KiB: every large buffer is mapped when
    # allocated and unmapped when freed, so the resident size follows the live buffers (by
    # default glibc raises the threshold after the first frees and then keeps freed
    # chunk-sized blocks resident, which measured up to 0.6 input more, run to run)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=600, env=env
    )
    if done.returncode != 0:
        msg = f"the measurement {command[3:]} failed:\n{done.stderr[-2000:]}"
        raise RuntimeError(msg)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["extra"])


def _selected(quick: bool, frameworks: tuple[str, ...] | None, threads: int) -> Iterator[Any]:
    keys = QUICK_CASES if quick else tuple(CASES)
    by_framework = {name: [k for k in keys if k[0] == name] for name in ("numpy", "torch", "jax")}
    for _, found in installed_frameworks(by_framework, frameworks, threads):
        yield from found


def run(
    *, quick: bool = False, frameworks: tuple[str, ...] | None = None, torch_threads: int = 1
) -> list[Result]:
    """Measure every case of the installed frameworks, each side in its own subprocess."""
    results = []
    for framework, mode, case in _selected(quick, frameworks, torch_threads):
        peer, _ = CASES[(framework, mode, case)]
        for shape in QUICK_SHAPES if quick else SHAPES:
            ours = _child(framework, mode, case, "ours", shape)
            native = _child(framework, mode, case, "native", shape)
            mib = shape[0] * shape[1] * 4 / 2**20
            label = f"{shape[0]}x{shape[1]}"
            results.append(Result(framework, mode, case, label, peer, mib, ours, native))
    return results


def format_table(results: list[Result]) -> str:
    """The results as a markdown table."""
    lines = [
        "| framework | mode | case | shape | input MiB | ours, inputs | against | theirs, inputs |",
        "|---|---|---|---|---:|---:|---|---:|",
    ]
    lines += [
        f"| {r.framework} | {r.mode} | {r.case} | {r.shape} | {r.input_mib:.0f} "
        f"| {r.ours_extra:.2f} | {r.peer} | {r.native_extra:.2f} |"
        for r in results
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        framework, mode, case, side, rows, cols = argv[1:7]
        extra = measure(framework, mode, case, side, (int(rows), int(cols)))
        print(json.dumps({"extra": extra}))
        return 0
    quick_help = "torch KL on [64, 32768] only"
    footer = "peak memory beyond the inputs and their gradients, in inputs"
    return bench_main(__doc__, run, format_table, argv, quick_help=quick_help, footer=footer)


if __name__ == "__main__":
    sys.exit(main())
