"""The training benchmarks stay runnable (a quick smoke run each; no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(tmp_path: pathlib.Path, script: str, *extra: str) -> list[dict[str, object]]:
    out = tmp_path / "results.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--json", str(out), *extra],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    payload = json.loads(out.read_text())
    assert payload["quick"] is True
    return payload["results"]  # type: ignore[no-any-return]


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("jax", "optax")),
    reason="the jax training benchmark needs jax and optax",
)
def test_jax_training_benchmark(tmp_path: pathlib.Path) -> None:
    rows = _run(tmp_path, "bench_training_jax.py")
    assert [row["framework"] for row in rows] == ["jax"] * 4
    for row in rows:
        assert row["ours_us"] > 0 and row["reference_us"] > 0
        assert abs(row["ratio"] - row["ours_us"] / row["reference_us"]) < 1e-9
    ours, rebuilt = rows[-1]["compilations"].split(" (")[0].split(" / ")
    assert ours == "1" and int(rebuilt) == 3  # 3 quick steps: the rebuilt pipeline compiles each


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("keras", "jax")),
    reason="the keras training benchmark needs keras and its jax backend",
)
def test_keras_training_benchmark(tmp_path: pathlib.Path) -> None:
    rows = _run(tmp_path, "bench_training_keras.py", "--frameworks", "jax")
    assert [row["framework"] for row in rows] == ["keras/jax"]
    for row in rows:
        assert row["ours_us"] > 0 and row["native_us"] > 0
        assert abs(row["ratio"] - row["ours_us"] / row["native_us"]) < 1e-9
