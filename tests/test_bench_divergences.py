"""The divergence benchmark script stays runnable (a smoke run; no timing is asserted)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_benchmark_runs_and_reports_ratios(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "results.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_divergences.py"),
            "--quick",
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    rows = json.loads(out.read_text())["results"]
    assert {row["framework"] for row in rows} >= {"numpy"}
    assert {row["case"] for row in rows} >= {"kl", "entropy"}
    assert {row["shape"] for row in rows} == {"8x32", "64x4096"}
    for row in rows:
        assert row["ours_us"] > 0 and row["native_us"] > 0
        assert abs(row["ratio"] - row["ours_us"] / row["native_us"]) < 1e-9
