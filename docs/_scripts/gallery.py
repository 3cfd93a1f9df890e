"""The examples gallery page, written at ``make docs`` time: every ``examples/*.py`` script
is run and shown with its docstring, its source and what it printed.

Run: python docs/_scripts/gallery.py OUTPUT_PAGE
"""

from __future__ import annotations

import ast
import concurrent.futures
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# NxPenalties' examples first, in its order, then the rest alphabetically
ORDER = (
    "basic_usage",
    "pipeline_composition",
    "curriculum",
    "torch_training",
    "jax_training",
    "keras_training",
    "optimizer_transforms",
    "constraints",
    "entropy_normalization",
    "gradient_penalty",
    "gradient_tracking",
)
INTRO = """# Examples gallery

Each script in `examples/` runs in the test suite
(`tests/test_examples.py`) and checks its own claims with `assert`s. The outputs below
were printed when this site was built (`make docs`). Scripts named after the examples of
[NxPenalties](https://hexdocs.pm/nx_penalties) come first, in that library's order.
"""


def ordered(scripts: list[pathlib.Path]) -> list[pathlib.Path]:
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(scripts, key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem))


def run(script: pathlib.Path) -> str:
    paths = [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        msg = f"{script.name} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        raise RuntimeError(msg)
    return result.stdout.rstrip()


def section(script: pathlib.Path, output: str) -> str:
    source = script.read_text(encoding="utf-8")
    module = ast.parse(source)
    doc = ast.get_docstring(module) or ""
    title, _, body = doc.partition("\n")
    first = module.body[0]
    code = source
    if doc and isinstance(first, ast.Expr):  # show the code below the docstring
        code = "\n".join(source.splitlines()[first.end_lineno :]).strip("\n")
    return "\n".join(
        [
            f"## {script.stem}",
            "",
            f"**{title.strip()}**",
            "",
            body.strip(),
            "",
            '??? example "Source"',
            "",
            "    ```python",
            *(f"    {line}" if line else "" for line in code.splitlines()),
            "    ```",
            "",
            "Output:",
            "",
            "```text",
            output,
            "```",
            "",
        ]
    )


def build(page: pathlib.Path) -> None:
    scripts = ordered(sorted((ROOT / "examples").glob("*.py")))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        outputs = list(pool.map(run, scripts))
    text = INTRO + "\n" + "\n".join(section(s, o) for s, o in zip(scripts, outputs, strict=True))
    page.parent.mkdir(parents=True, exist_ok=True)
    if not page.exists() or page.read_text(encoding="utf-8") != text:
        page.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    build(pathlib.Path(sys.argv[1]))
