"""The pipeline benchmark stays runnable (a smoke run; no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None and importlib.util.find_spec("jax") is None,
    reason="the pipeline benchmark compares against torch and jax; neither is installed",
)
def test_quick_pipeline_benchmark_reports_ratios(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "results.json"
    script = ROOT / "benchmarks" / "bench_pipeline.py"
    subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    rows = json.loads(out.read_text())["results"]
    installed = {name for name in ("torch", "jax") if importlib.util.find_spec(name)}
    assert {row["framework"] for row in rows} == installed
    assert len(rows) == 4 * len(installed)
    for row in rows:
        assert row["ours_us"] > 0 and row["reference_us"] > 0
        assert abs(row["ratio"] - row["ours_us"] / row["reference_us"]) < 1e-9
