"""The command line: ``python -m arraypenalties info|demo`` and ``main(argv)``."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import arraypenalties
from arraypenalties.__main__ import main

X = [0.5, -1.0, 2.0, -0.25, 0.0, 1.5]
EXPECTED = {  # plain Python, independent of the library
    "l1": sum(abs(v) for v in X),
    "l2": 0.5 * sum(v * v for v in X),
    "elastic_net": 0.5 * sum(abs(v) for v in X) + 0.5 * sum(v * v for v in X),
}
WEIGHTS = {"l1": 0.1, "l2": 1.0, "elastic_net": 0.5}  # the demo pipeline's
L2_GRAD_NORM = math.sqrt(sum(v * v for v in X))  # ∇ 0.5·Σx² = x
# ∇ total = 0.1·sign(x) + x + 0.5·(0.5·sign(x) + x) ... with sign(0) = 0 (torch, numpy)
TOTAL_GRAD_NORM = math.sqrt(sum((0.35 * math.copysign(v != 0, v) + 1.5 * v) ** 2 for v in X))
FRAMEWORKS = ("numpy", "torch", "jax", "array_api_strict", "dask")
INSTALLED = [name for name in FRAMEWORKS if importlib.util.find_spec(name) is not None]
SRC = Path(__file__).resolve().parents[1] / "src"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    paths = [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}  # test this checkout
    return subprocess.run(
        [sys.executable, "-m", "arraypenalties", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def demo_rows(stdout: str) -> dict[tuple[str, str], tuple[float, str]]:
    """``{(backend, penalty): (value, grad norm cell)}`` parsed from the demo table."""
    cells = demo_cells(stdout).items()
    return {key: (float(row[0]), row[2]) for key, row in cells if key[1] != "total"}


def demo_cells(stdout: str) -> dict[tuple[str, str], list[str]]:
    """``{(backend, penalty or "total"): [value, weighted, grad norm, share]}``."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if len(cells) >= 6 and cells[0] in FRAMEWORKS and cells[1] in [*EXPECTED, "total"]:
            rows[cells[0], cells[1]] = cells[2:6]
    return rows


@pytest.fixture(scope="module")
def info() -> subprocess.CompletedProcess[str]:
    return run_cli("info")


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    return run_cli("demo")


def test_info_lists_version_frameworks_and_backends(
    info: subprocess.CompletedProcess[str],
) -> None:
    assert info.returncode == 0, info.stderr
    assert f"arraypenalties {arraypenalties.__version__}" in info.stdout
    for name in [*INSTALLED, "cupy"]:
        assert name in info.stdout
    if importlib.util.find_spec("cupy") is None:
        assert "not installed" in info.stdout
    if "torch" in INSTALLED:
        assert "cpu" in info.stdout
    if "dask" in INSTALLED:
        assert "values only" in info.stdout
    assert "autodiff" in info.stdout or not {"torch", "jax"} & set(INSTALLED)


def test_demo_values_match_plain_python(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stderr
    rows = demo_rows(demo.stdout)
    assert {backend for backend, _ in rows} == set(INSTALLED)
    for (_, penalty), (value, _) in rows.items():
        assert value == pytest.approx(EXPECTED[penalty], abs=1e-6)
    assert rows["numpy", "l1"][0] == pytest.approx(5.25)
    assert rows["numpy", "l2"][0] == pytest.approx(EXPECTED["l2"])


def test_demo_pipeline_weighted_values_shares_and_total(
    demo: subprocess.CompletedProcess[str],
) -> None:
    cells = demo_cells(demo.stdout)
    for backend in INSTALLED:
        total = sum(WEIGHTS[name] * EXPECTED[name] for name in EXPECTED)
        assert float(cells[backend, "total"][1]) == pytest.approx(total, abs=1e-6)
        for name in EXPECTED:
            weighted = float(cells[backend, name][1])
            assert weighted == pytest.approx(WEIGHTS[name] * EXPECTED[name], abs=1e-6)
        shares = [cells[backend, name][3] for name in EXPECTED]
        if backend == "dask":
            assert shares == ["-", "-", "-"] and cells[backend, "total"][2] == "-"
            continue
        assert sum(float(share.rstrip("%")) for share in shares) == pytest.approx(100, abs=0.2)
        if backend in ("numpy", "torch", "array_api_strict"):  # sign(0) = 0 there
            total_norm = float(cells[backend, "total"][2])
            assert total_norm == pytest.approx(TOTAL_GRAD_NORM, abs=1e-5)


def test_demo_gradient_norms_and_methods(demo: subprocess.CompletedProcess[str]) -> None:
    rows = demo_rows(demo.stdout)
    for (backend, penalty), (_, grad_norm) in rows.items():
        if backend == "dask":
            assert grad_norm == "-"
        elif penalty == "l2":
            assert float(grad_norm) == pytest.approx(L2_GRAD_NORM, abs=1e-5)
    assert "FiniteDifferenceWarning" in demo.stdout  # the footnote, not a warning
    assert "Warning:" not in demo.stderr
    if "dask" in INSTALLED:
        assert "n/a (values only)" in demo.stdout
    if {"torch", "jax"} & set(INSTALLED):
        assert "autodiff" in demo.stdout


def test_demo_backends_option_restricts_output() -> None:
    result = run_cli("demo", "--backends", "numpy")
    assert result.returncode == 0, result.stderr
    assert {backend for backend, _ in demo_rows(result.stdout)} == {"numpy"}
    assert "Pipeline('demo'" in result.stdout


def test_no_subcommand_prints_help_and_exits_2() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert "demo" in result.stderr
    assert "info" in result.stderr


def test_import_does_not_load_the_cli() -> None:
    code = "import sys, arraypenalties; assert 'arraypenalties._cli' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--backends", "numpy"]) == 0
    rows = demo_rows(capsys.readouterr().out)
    assert set(rows) == {("numpy", penalty) for penalty in EXPECTED}
    assert rows["numpy", "elastic_net"][0] == pytest.approx(EXPECTED["elastic_net"])


def test_main_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "info" in capsys.readouterr().out
    assert main(["demo", "--backends", "numpy,nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_demo_without_numpy_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,  # the module _cli calls, patched for this test only
        "find_spec",
        lambda name, *args: None if name == "numpy" else real_find_spec(name, *args),
    )
    assert main(["demo"]) == 1
    assert "pip install numpy" in capsys.readouterr().err


def test_info_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    assert arraypenalties.__version__ in capsys.readouterr().out


@pytest.mark.skipif("jax" not in INSTALLED, reason="jax is not installed")
def test_demo_restores_jax_float64_setting(capsys: pytest.CaptureFixture[str]) -> None:
    import jax

    config: Any = jax.config  # untyped in jax's stubs
    before = config.read("jax_enable_x64")
    assert main(["demo", "--backends", "jax"]) == 0
    assert config.read("jax_enable_x64") == before
    rows = demo_rows(capsys.readouterr().out)
    assert rows["jax", "l2"][0] == pytest.approx(EXPECTED["l2"], abs=1e-12)  # float64


def test_version_flag_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"arraypenalties {arraypenalties.__version__}"


def test_closed_pipe_exits_quietly() -> None:
    # the reader closes its end before the command writes: `info | head -0`
    paths = [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: every write gets EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "arraypenalties", "info"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    finally:
        os.close(write_end)
    stderr = result.stderr
    assert result.returncode == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def _pretend_missing(monkeypatch: pytest.MonkeyPatch, *missing: str) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,  # the module _cli calls, patched for this test only
        "find_spec",
        lambda name, *args: None if name in missing else real_find_spec(name, *args),
    )


def test_demo_of_a_missing_backend_fails_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _pretend_missing(monkeypatch, "torch")
    assert main(["demo", "--backends", "torch"]) == 1
    captured = capsys.readouterr()
    assert "skipping torch: not installed" in captured.err
    assert "none of the backends asked for can run (torch)" in captured.err
    assert "torch" not in demo_cells(captured.out).__repr__()


def test_demo_runs_what_it_can_when_one_asked_for_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _pretend_missing(monkeypatch, "torch")
    assert main(["demo", "--backends", "torch,numpy"]) == 0
    captured = capsys.readouterr()
    assert "skipping torch: not installed" in captured.err
    assert {backend for backend, _ in demo_rows(captured.out)} == {"numpy"}


def test_demo_cupy_is_a_known_backend_explained_when_unavailable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _pretend_missing(monkeypatch, "cupy")
    assert main(["demo", "--backends", "cupy"]) == 1
    err = capsys.readouterr().err
    assert "unknown backend" not in err
    assert "skipping cupy: not installed" in err and "NVIDIA GPU" in err


def test_demo_backends_are_deduplicated(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--backends", "numpy, numpy,numpy"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.split()[:2] == ["numpy", "l1"]]
    assert len(rows) == 1


def test_demo_unknown_backend_lists_every_known_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--backends", "tensorflow"]) == 2
    err = capsys.readouterr().err
    assert "tensorflow" in err
    assert "numpy, torch, jax, array_api_strict, dask, cupy" in err


def test_demo_cupy_without_a_gpu_is_explained(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from arraypenalties.backends import _frameworks

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(  # cupy "installed", but no device
        importlib.util,
        "find_spec",
        lambda name, *args: object() if name == "cupy" else real_find_spec(name, *args),
    )
    monkeypatch.setattr(_frameworks, "_cupy_devices", lambda: "no GPU")
    assert main(["demo", "--backends", "cupy"]) == 1
    err = capsys.readouterr().err
    assert "skipping cupy: installed, but there is no usable GPU" in err
    assert "none of the backends asked for can run (cupy)" in err


def test_info_reports_a_user_registered_backend(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backend registered by the user has no built-in demo array: `info` says so."""
    import sys
    import types
    from functools import partial

    import arraypenalties.backends as registry
    from arraypenalties.backends._finite_diff import FiniteDifferenceBackend

    for name in ("_REGISTRY", "_LOADED", "_BY_TYPE"):  # put the registry back afterwards
        monkeypatch.setattr(registry, name, dict(getattr(registry, name)))
    monkeypatch.setitem(sys.modules, "mylib", types.ModuleType("mylib"))  # "installed"
    registry.register_backend(
        "mylib", partial(FiniteDifferenceBackend, "mylib"), modules=("mylib",)
    )
    assert main(["info"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("mylib")]
    assert rows == [
        "mylib             ?               ?            registered here (not a built-in framework)"
    ]
