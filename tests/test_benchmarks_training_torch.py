"""benchmarks/bench_training_torch.py stays runnable (a smoke run; no timing is asserted)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.backend("torch")
def test_quick_training_benchmark_runs_and_reports_ratios(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("torch", reason="the training benchmark measures torch")
    out = tmp_path / "results.json"
    script = ROOT / "benchmarks" / "bench_training_torch.py"
    subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    payload = json.loads(out.read_text())
    assert payload["quick"] is True
    rows = payload["results"]
    assert [row["target"] for row in rows] == ["<= 1.05", "<= 1.02", "<= 1.6"]
    for row in rows:
        assert row["framework"] == "torch"
        assert row["ours_us"] > 0 and row["reference_us"] > 0
        assert abs(row["ratio"] - row["ours_us"] / row["reference_us"]) < 1e-9
