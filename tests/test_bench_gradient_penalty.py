"""The gradient-penalty benchmark stays runnable (a smoke run; no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_benchmark_runs_and_reports_ratios(tmp_path: pathlib.Path) -> None:
    installed = {name for name in ("torch", "jax") if importlib.util.find_spec(name)}
    if not installed:
        pytest.skip("the critic-step benchmark needs torch or jax; neither is installed")
    out = tmp_path / "results.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_gradient_penalty.py"),
            "--quick",
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    rows = json.loads(out.read_text())["results"]
    assert {row["framework"] for row in rows} == installed
    for row in rows:
        assert row["case"] == "WGAN-GP critic step" and row["size"] == 256
        assert row["ours_us"] > 0 and row["native_us"] > 0
        assert abs(row["ratio"] - row["ours_us"] / row["native_us"]) < 1e-9
