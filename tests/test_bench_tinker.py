"""benchmarks/bench_tinker.py stays runnable (a smoke run; no timing is asserted)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="the Tinker adapter and its benchmark need torch")

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_tinker_benchmark_runs_and_reports_ratios(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_tinker.py"),
            "--quick",
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = json.loads(out.read_text())["results"]
    assert [row["case"].split(":")[0] for row in rows] == [
        "tracking",
        "adapter (no tracking) vs hand-written sum of the same terms",
        "built-ins + adapter vs the total in plain torch",
    ]
    for row in rows:
        assert row["framework"] == "torch" and row["ours_us"] > 0 and row["reference_us"] > 0
        assert abs(row["ratio"] - row["ours_us"] / row["reference_us"]) < 1e-9
    assert "| torch | tracking" in done.stdout
