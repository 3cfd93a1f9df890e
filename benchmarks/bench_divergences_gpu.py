"""The divergences on a GPU: absolute times against the memory-bandwidth roofline.

    python benchmarks/bench_divergences_gpu.py [--quick] [--json PATH] [--frameworks torch,jax]

Needs a CUDA GPU for torch and jax on a GPU; a framework without one is skipped
with a note (CI has no GPU and never runs this). The cases are those of
``bench_divergences.py`` (KL, entropy, entropy from logits, their gradients) on
float32 ``[4096, 32000]`` (``--quick``: ``[64, 4096]``) and ``[8, 32]``, the same
peers, torch eager on ``cuda`` and jax under ``jax.jit`` on the GPU.

Besides the ratio to the peer, each row gives the **roofline**: the fewest bytes
the case must move through GPU memory (each input read once, each gradient
written once: KL 2 inputs, entropy 1, a gradient of KL 2 read + 2 written) over
the device-to-device copy bandwidth measured at the start (a 1 GiB copy, bytes
read plus written), and ours as a fraction of it (1.00 = at the roofline).

Timing: each repeat launches ``number`` back-to-back calls and waits for the
device once at the end (``torch.cuda.synchronize`` / ``jax.block_until_ready``
of the last result), so launch latency overlaps the work as in a training loop;
the median per-call time over the repeats is reported, ours and the peer's
repeats interleaved.

A second table sweeps torch's chunk count on the GPU (``chunking(accelerator_chunks=)``;
"whole": no chunks) at ``[4096, 32000]``: the time of each case and its peak memory
beyond the inputs and gradients. 256 chunks is what 2 MiB chunks (the CPU's size)
come to there.

A third table gives peak GPU memory of forward + backward beyond the inputs and
their gradients, in inputs, at ``[2048, 32768]`` (256 MiB): torch from the caching
allocator's ``max_memory_allocated``; jax from XLA's compiled memory plan
(``memory_analysis().temp_size_in_bytes`` of the jitted gradient).
"""

from __future__ import annotations

import gc
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

try:
    from benchmarks import bench_divergences as cpu_bench
    from benchmarks import bench_divergences_memory as memory_bench
    from benchmarks._cli import bench_main, us
except ImportError:  # a script, or loaded from its path: the modules sit next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_divergences as cpu_bench  # type: ignore[no-redef]
    import bench_divergences_memory as memory_bench  # type: ignore[no-redef]
    from _cli import bench_main, us

# bytes each case must move, in inputs (reads + writes)
TRAFFIC = {"kl": 2, "entropy": 1, "entropy logits": 1, "grad kl": 4, "grad kl logits": 4}
DEVICE = "cuda"  # the torch device
MEMORY_SHAPE = (2048, 32768)
MEMORY_CASES = {  # (framework, mode, case) of bench_divergences_memory measured on the GPU
    "torch": [
        ("torch", "eager", c) for c in ("kl", "kl logits", "js", "entropy T=2", "entropy logits")
    ],
    "jax": [("jax", "jit", c) for c in ("kl", "kl logits", "js", "entropy logits")],
}


SWEEP = (4, 8, 16, 32, 256, 0)  # accelerator_chunks; 0: whole (no chunks)


@dataclass(frozen=True)
class SweepRow:
    case: str
    chunks: int  # 0: whole
    us: float
    extra_inputs: float  # peak beyond the inputs and gradients


@dataclass(frozen=True)
class Result:
    table: str  # "time" or "memory"
    framework: str
    mode: str
    case: str
    shape: str
    peer: str
    ours: float  # µs (time) or inputs (memory)
    theirs: float
    ratio: float
    roofline_us: float  # time rows only; 0 for memory rows
    copy_gbps: float


def _torch_gpu() -> Any | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch if torch.cuda.is_available() else None


def _jax_gpu() -> Any | None:
    if importlib.util.find_spec("jax") is None:
        return None
    import jax

    return jax if jax.default_backend() == "gpu" else None


def copy_bandwidth() -> float:
    """Device-to-device copy bandwidth in bytes/s (bytes read plus written), 1 GiB copies."""
    torch = _torch_gpu()
    if torch is not None:
        src = torch.rand(2**28, device=DEVICE)
        dst = torch.empty_like(src)
        for _ in range(3):
            dst.copy_(src)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(20):
            dst.copy_(src)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1e3
        return 2 * src.numel() * 4 * 20 / seconds
    jax = _jax_gpu()
    assert jax is not None
    x = jax.random.uniform(jax.random.key(0), (2**28,))
    copy = jax.jit(lambda v: v + 0.0)  # one read, one write
    jax.block_until_ready(copy(x))
    start_s = time.perf_counter()
    for _ in range(20):
        out = copy(x)
    jax.block_until_ready(out)
    return 2 * x.size * 4 * 20 / (time.perf_counter() - start_s)


def _repeat(fn: Callable[[], Any], sync: Callable[[Any], Any], number: int) -> float:
    start = time.perf_counter()
    out = None
    for _ in range(number):
        out = fn()
    sync(out)
    return (time.perf_counter() - start) / number


def _calibrated(fn: Callable[[], Any], sync: Callable[[Any], Any], min_time: float) -> int:
    """After a warm-up (compilation, allocator), the calls a repeat needs to last ``min_time``."""
    _repeat(fn, sync, 3)
    number = 1
    while _repeat(fn, sync, number) * number < min_time:
        number *= 2
    return number


def compare_gpu(
    ours: Callable[[], Any],
    theirs: Callable[[], Any],
    sync: Callable[[Any], Any],
    *,
    repeats: int,
    min_time: float,
) -> tuple[float, float]:
    """Median per-call seconds of ``ours`` and ``theirs``, repeats interleaved."""
    numbers = [_calibrated(fn, sync, min_time) for fn in (ours, theirs)]
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, number, times in zip((ours, theirs), numbers, samples, strict=True):
            times.append(_repeat(fn, sync, number))
    return statistics.median(samples[0]), statistics.median(samples[1])


def _time_cases(quick: bool, frameworks: tuple[str, ...] | None) -> Iterator[tuple[Any, Any]]:
    shapes = (cpu_bench.SMALL, cpu_bench.QUICK_LARGE if quick else cpu_bench.LARGE)
    torch = _torch_gpu() if frameworks is None or "torch" in frameworks else None
    jax = _jax_gpu() if frameworks is None or "jax" in frameworks else None
    if frameworks is None or "torch" in frameworks:
        if torch is None:
            print("note: no CUDA torch; the torch cases are skipped")
        else:
            for case in cpu_bench._torch_cases(shapes, device=DEVICE):
                yield case, _torch_sync
    if frameworks is None or "jax" in frameworks:
        if jax is None:
            print("note: no jax on a GPU; the jax cases are skipped")
        else:
            for case in cpu_bench._jax_cases(shapes):
                yield case, jax.block_until_ready


def _jax_temp_inputs(case: str, side: str) -> float:
    """XLA's planned temporaries of the jitted gradient on the GPU, in inputs."""
    count = 1 if case.startswith("entropy") else 2
    compiled = memory_bench.jax_compiled(case, side, MEMORY_SHAPE, count)
    temp = compiled.memory_analysis().temp_size_in_bytes
    return float(temp) / (MEMORY_SHAPE[0] * MEMORY_SHAPE[1] * 4)


def _torch_peak_inputs(case: str, side: str) -> float:
    """Peak CUDA memory of forward + backward beyond the inputs and gradients, in inputs."""
    import torch

    count = 1 if case.startswith("entropy") else 2
    host = memory_bench._inputs(MEMORY_SHAPE, count, logits="logits" in case or "entropy" in case)
    inputs = [torch.from_numpy(x).to(DEVICE) for x in host]
    step = memory_bench._torch_fn(case, side)
    step(*(x[:4, :16].clone() for x in inputs))  # autograd's lazy start-up, not measured
    input_bytes = host[0].size * 4
    return (_cuda_peak_bytes(partial(step, *inputs)) - count * input_bytes) / input_bytes


def _cuda_peak_bytes(call: Callable[[], Any]) -> int:
    """Bytes the CUDA caching allocator held at the peak of ``call()`` beyond those before."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = call()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del result
    return int(peak - before)


def _sweep_cases(torch: Any) -> dict[str, tuple[Callable[..., Any], int]]:
    import arraypenalties as ap

    def grad(fn: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *xs: torch.autograd.grad(fn(*xs), xs)

    return {  # name -> (call on leaves, inputs)
        "grad kl": (grad(ap.kl_divergence), 2),
        "grad kl logits": (grad(partial(ap.kl_divergence, from_logits=True)), 2),
        "grad js": (grad(ap.js_divergence), 2),
        "entropy logits": (partial(ap.entropy_value, from_logits=True), 1),
        "grad entropy logits": (grad(partial(ap.entropy_value, from_logits=True)), 1),
    }


def chunk_sweep(shape: tuple[int, int], settings: dict[str, Any]) -> list[SweepRow]:
    """Time and peak memory of torch's chunked cases on the GPU for each chunk count."""
    import torch

    from arraypenalties.divergences import chunking

    host = [cpu_bench._log_probs(shape, seed) for seed in (0, 1)]
    leaves = [torch.from_numpy(x).to(DEVICE).requires_grad_(True) for x in host]
    input_bytes = host[0].size * 4
    rows = []
    for name, (call, count) in _sweep_cases(torch).items():
        args = leaves[:count]
        with_grad = count if name.startswith("grad") else 0
        for chunks in SWEEP:
            options = {"accelerator_chunks": chunks} if chunks else {"threshold_bytes": 1 << 50}
            with chunking(**options):
                fn = partial(call, *args)
                number = _calibrated(fn, _torch_sync, settings["min_time"])
                times = [_repeat(fn, _torch_sync, number) for _ in range(settings["repeats"])]
                extra = (_cuda_peak_bytes(fn) - with_grad * input_bytes) / input_bytes
            rows.append(SweepRow(name, chunks, statistics.median(times) * 1e6, extra))
    return rows


def _torch_sync(_: Any) -> None:
    import torch

    torch.cuda.synchronize()


def run(
    *, quick: bool = False, frameworks: tuple[str, ...] | None = None, torch_threads: int = 1
) -> list[Any]:
    """Time every case on the GPU of each framework that has one, then its peak memory."""
    del torch_threads  # the GPU cases run on the device
    if _torch_gpu() is None and _jax_gpu() is None:
        print("note: no GPU (CUDA torch or jax on a GPU): nothing to measure")
        return []
    bandwidth = copy_bandwidth()
    print(f"device-to-device copy: {bandwidth / 1e9:,.0f} GB/s (read + write)")
    settings = {"repeats": 5, "min_time": 0.01} if quick else {"repeats": 15, "min_time": 0.05}
    results = []
    for case, sync in _time_cases(quick, frameworks):
        ours_value, native_value = case.ours(), case.native()
        sync(ours_value)
        sync(native_value)  # same math on both sides, else the ratio means nothing
        np.testing.assert_allclose(
            cpu_bench.to_numpy(ours_value), cpu_bench.to_numpy(native_value), rtol=1e-3, atol=1e-7
        )
        ours, theirs = compare_gpu(case.ours, case.native, sync, **settings)
        size = case.shape[0] * case.shape[1] * 4
        roofline = TRAFFIC[case.case] * size / bandwidth
        shape = "x".join(str(n) for n in case.shape)
        results.append(
            Result(
                "time",
                case.framework,
                case.mode,
                case.case,
                shape,
                case.peer,
                ours * 1e6,
                theirs * 1e6,
                ours / theirs,
                roofline * 1e6,
                bandwidth / 1e9,
            )
        )
        del case
        gc.collect()
    if not quick:
        sweep: list[Any] = []
        if (frameworks is None or "torch" in frameworks) and _torch_gpu() is not None:
            sweep = chunk_sweep(cpu_bench.LARGE, {"repeats": 7, "min_time": 0.03})
        results += sweep + _memory_rows(frameworks, bandwidth)
    return results


def _memory_rows(frameworks: tuple[str, ...] | None, bandwidth: float) -> list[Result]:
    rows = []
    shape = "x".join(str(n) for n in MEMORY_SHAPE)
    for name, keys in MEMORY_CASES.items():
        if frameworks is not None and name not in frameworks:
            continue
        if (_torch_gpu() if name == "torch" else _jax_gpu()) is None:
            continue
        for key in keys:
            peer = memory_bench.CASES[key][0]
            measure = _torch_peak_inputs if name == "torch" else _jax_temp_inputs
            ours, theirs = measure(key[2], "ours"), measure(key[2], "native")
            gc.collect()
            rows.append(
                Result(
                    "memory",
                    name,
                    key[1],
                    key[2],
                    shape,
                    peer,
                    ours,
                    theirs,
                    ours / theirs if theirs else float("nan"),
                    0.0,
                    bandwidth / 1e9,
                )
            )
    return rows


def format_table(results: list[Any]) -> str:
    """The time rows, the chunk sweep and the memory rows as markdown tables."""
    lines = [
        "| framework | mode | case | shape | against | ours µs | theirs µs | ratio "
        "| roofline µs | roofline / ours |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.framework} | {r.mode} | {r.case} | {r.shape} | {r.peer} "
        f"| {us(r.ours, grouping=True)} | {us(r.theirs, grouping=True)} | {r.ratio:.2f} "
        f"| {us(r.roofline_us, grouping=True)} | {r.roofline_us / r.ours:.2f} |"
        for r in results
        if isinstance(r, Result) and r.table == "time"
    ]
    sweep = [r for r in results if isinstance(r, SweepRow)]
    if sweep:
        lines += [
            "",
            "| case | chunks | µs | beyond inputs and gradients, inputs |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {r.case} | {r.chunks or 'whole'} | {us(r.us, grouping=True)} "
            f"| {r.extra_inputs:.2f} |"
            for r in sweep
        ]
    memory = [r for r in results if isinstance(r, Result) and r.table == "memory"]
    if memory:
        lines += [
            "",
            "| framework | mode | case | shape | ours, inputs | against | theirs, inputs |",
            "|---|---|---|---|---:|---|---:|",
        ]
        lines += [
            f"| {r.framework} | {r.mode} | {r.case} | {r.shape} | {r.ours:.2f} "
            f"| {r.peer} | {r.theirs:.2f} |"
            for r in memory
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    quick_help = "fewer, shorter repeats; [64, 4096] as the large input; no memory table"
    return bench_main(
        __doc__, run, format_table, argv, quick_help=quick_help, extra_modules=("optax",)
    )


if __name__ == "__main__":
    sys.exit(main())
