"""The transforms benchmark script stays runnable (a smoke run; no timing is asserted)."""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_transforms_benchmark_runs_and_reports_ratios(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "results.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_transforms.py"),
            "--quick",
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    payload = json.loads(out.read_text())
    assert payload["quick"] is True
    rows = payload["results"]
    for row in rows:
        assert row["ours_us"] > 0 and row["native_us"] > 0
        assert abs(row["ratio"] - row["ours_us"] / row["native_us"]) < 1e-9
        assert row["size"] == 1_609_226  # the quick tree: ResNet-50 with widths / 4


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
