"""The benchmark scripts stay runnable (a smoke run each; no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
INSTALLED = {name for name in ("torch", "jax") if importlib.util.find_spec(name)}

Rows = list[dict[str, Any]]


def _penalties(payload: dict[str, Any], rows: Rows) -> None:
    assert {row["framework"] for row in rows} >= {"numpy"}


def _divergences(payload: dict[str, Any], rows: Rows) -> None:
    assert {row["framework"] for row in rows} >= {"numpy"}
    assert {row["case"] for row in rows} >= {"kl", "entropy"}
    assert {row["shape"] for row in rows} == {"8x32", "64x4096"}
    if "torch" in INSTALLED:
        peers = {row["peer"] for row in rows if row["framework"] == "torch"}
        assert peers >= {"F.kl_div", "Categorical", "TRL chunked", "log_softmax + ours"}


def _exactness(payload: dict[str, Any], rows: Rows) -> None:
    assert {row["framework"] for row in rows} == INSTALLED
    if "jax" in INSTALLED:  # XLA's flop estimate of the peer around the inline line
        optax = {r["shape"]: r["flops"] for r in rows if r["form"] == "optax itself"}
        assert optax["8x32"] < 1000 < optax["8x40"]
        forms = [r["form"] for r in rows if r["framework"] == "jax" and r["shape"] == "8x32"]
        assert forms[-1] == "entropy_value" and "kl_divergence" in forms


def _gradient_penalty(payload: dict[str, Any], rows: Rows) -> None:
    assert {row["framework"] for row in rows} == INSTALLED
    for row in rows:
        assert row["case"] == "WGAN-GP critic step" and row["size"] == 256


def _transforms(payload: dict[str, Any], rows: Rows) -> None:
    assert payload["quick"] is True
    for row in rows:
        assert row["size"] == 1_609_226  # the quick tree: ResNet-50 with widths / 4


def _pipeline(payload: dict[str, Any], rows: Rows) -> None:
    assert {row["framework"] for row in rows} == INSTALLED
    assert len(rows) == 4 * len(INSTALLED)


GP_SKIP = "the critic-step benchmark needs torch or jax; neither is installed"
EXACTNESS_SKIP = "the exactness benchmark measures torch and jax; neither is installed"
PIPELINE_SKIP = "the pipeline benchmark compares against torch and jax; neither is installed"

# script, the key the ratio divides by, the script's own checks, why to skip without torch/jax
SCRIPTS = [
    ("bench_penalties.py", "native_us", _penalties, None),
    ("bench_divergences.py", "native_us", _divergences, None),
    ("bench_exactness.py", "native_us", _exactness, EXACTNESS_SKIP),
    ("bench_gradient_penalty.py", "native_us", _gradient_penalty, GP_SKIP),
    ("bench_transforms.py", "native_us", _transforms, None),
    ("bench_pipeline.py", "reference_us", _pipeline, PIPELINE_SKIP),
]


@pytest.mark.parametrize(
    ("script", "reference", "check"),
    [
        pytest.param(
            script,
            reference,
            check,
            id=script.removeprefix("bench_").removesuffix(".py"),
            marks=[pytest.mark.skipif(not INSTALLED, reason=skip)] if skip else [],
        )
        for script, reference, check, skip in SCRIPTS
    ],
)
def test_quick_benchmark_runs_and_reports_ratios(
    tmp_path: pathlib.Path,
    script: str,
    reference: str,
    check: Callable[[dict[str, Any], Rows], None],
) -> None:
    out = tmp_path / "results.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--json", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    payload = json.loads(out.read_text())
    rows = payload["results"]
    check(payload, rows)
    for row in rows:
        assert row["ours_us"] > 0 and row[reference] > 0
        assert abs(row["ratio"] - row["ours_us"] / row[reference]) < 1e-9


def test_resnet50_shapes_are_the_real_ones() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_transforms import resnet50_shapes
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    torch_shapes = resnet50_shapes(layout="torch")
    flax_shapes = resnet50_shapes(layout="flax")
    assert len(torch_shapes) == 161
    # torchvision's resnet50 has 25,557,032 parameters
    assert sum(math.prod(shape) for shape in torch_shapes.values()) == 25_557_032
    assert torch_shapes["conv1.weight"] == (64, 3, 7, 7) and flax_shapes["conv1.weight"] == (
        7,
        7,
        3,
        64,
    )
    assert torch_shapes["fc.weight"] == (1000, 2048) and flax_shapes["fc.weight"] == (2048, 1000)


@pytest.mark.skipif("torch" not in INSTALLED, reason="the quick memory run measures torch KL")
@pytest.mark.skipif(not pathlib.Path("/proc/self/clear_refs").exists(), reason="Linux /proc only")
def test_quick_divergence_memory_benchmark_runs(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "memory.json"
    script = ROOT / "benchmarks" / "bench_divergences_memory.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    # the footer says what the numbers are: memory, not the timing scripts' times
    assert "peak memory beyond the inputs" in done.stdout and "per-call" not in done.stdout
    rows = json.loads(out.read_text())["results"]
    assert [(row["framework"], row["case"], row["shape"]) for row in rows] == [
        ("torch", "kl", "64x32768")
    ]
    # F.kl_div keeps its exp(p) and difference temporaries: well above nothing
    assert rows[0]["native_extra"] > 0.5 and math.isfinite(rows[0]["ours_extra"])


def test_gpu_divergence_benchmark_without_a_gpu_says_so(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "gpu.json"
    script = ROOT / "benchmarks" / "bench_divergences_gpu.py"
    env_check = "import torch; assert not torch.cuda.is_available()"
    if "torch" in INSTALLED and subprocess.run([sys.executable, "-c", env_check]).returncode:
        pytest.skip("this machine has a CUDA GPU: benchmarks/gpu_checks.sh runs the real thing")
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "no GPU" in done.stdout
    assert json.loads(out.read_text())["results"] == []


def test_gpu_divergence_table_puts_each_row_against_the_roofline() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_divergences_gpu import TRAFFIC, Result, SweepRow, compare_gpu, format_table
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert TRAFFIC == {
        "kl": 2,
        "entropy": 1,
        "entropy logits": 1,
        "grad kl": 4,
        "grad kl logits": 4,
    }
    time_row = Result("time", "torch", "eager", "kl", "4096x32000", "F.kl_div", 500.0, 250.0, 2.0,
                      246.0, 4263.0)  # fmt: skip
    sweep_row = SweepRow("grad kl", 0, 2686.0, 2.0)
    table = format_table([time_row, sweep_row])
    assert "| 500 | 250 | 2.00 | 246 | 0.49 |" in table  # roofline / ours = 246 / 500
    assert "| grad kl | whole | 2,686 | 2.00 |" in table
    ours, theirs = compare_gpu(lambda: sum(range(100)), lambda: 0, lambda _: None, repeats=3,
                               min_time=0.001)  # fmt: skip
    assert ours > 0 and theirs > 0
