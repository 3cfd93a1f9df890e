"""Every script in examples/ runs to completion (each checks its own claims with asserts),
and the gallery page is built from all of them."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "examples").glob("*.py"))
NEEDS = re.compile(r"this example needs (\w+)")
# run a script as if numpy were not installed: find_spec says so and importing it fails
WITHOUT_NUMPY = """
import importlib.abc, importlib.util, runpy, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "numpy":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Block())
real_find_spec = importlib.util.find_spec
importlib.util.find_spec = (
    lambda name, *args: None if name.split(".")[0] == "numpy" else real_find_spec(name, *args)
)
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _env() -> dict[str, str]:
    paths = [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}  # this checkout's package


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs(script: pathlib.Path) -> None:
    result = run(str(script))
    assert result.returncode == 0, result.stdout + result.stderr
    needed = NEEDS.search(result.stdout)
    if needed and importlib.util.find_spec(needed[1]) is not None:
        pytest.fail(f"{script.name} says it needs {needed[1]}, which is installed")
    if needed:
        pytest.skip(f"{script.name} needs {needed[1]}, which is not installed")
    assert result.stdout.strip(), f"{script.name} printed nothing"


def test_every_example_has_a_docstring_for_the_gallery() -> None:
    for script in SCRIPTS:
        text = script.read_text(encoding="utf-8")
        assert text.startswith('"""'), f"{script.name}: the gallery shows the module docstring"
        assert "Run: python examples/" in text, f"{script.name}: say how to run it"


def test_same_call_every_backend_runs_without_numpy() -> None:
    result = run("-c", WITHOUT_NUMPY, "examples/same_call_every_backend.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "numpy:" not in result.stdout
    if importlib.util.find_spec("torch") is not None:
        assert "torch: l1=3.7500" in result.stdout
    else:
        assert "no array library is installed" in result.stdout


@pytest.mark.parametrize("name", ["basic_usage", "pipeline_composition", "entropy_normalization"])
def test_numpy_examples_say_what_they_need(name: str) -> None:
    result = run("-c", WITHOUT_NUMPY, f"examples/{name}.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "this example needs numpy" in result.stdout
