"""The README and every docs page: their ```pycon blocks run as doctests with the printed output
compared, and no page holds a ```python block that nothing executes.

The blocks of one page share one namespace, in page order, as one interactive session would.
Failures report the page's own line numbers.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# written by docs/_scripts/gallery.py during `make docs` (from examples/, which the suite runs)
GENERATED = {ROOT / "docs" / "examples.md"}
PAGES = sorted({ROOT / "README.md", *(ROOT / "docs").rglob("*.md")} - GENERATED)
# a fenced block at any indentation (lists, admonitions): its language and its body
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^[ \t]*```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
UNEXECUTED = {"python", "py", "python3"}
IMPORT = re.compile(r"^\s*(?:>>>|\.\.\.)\s+(?:from|import)\s+([A-Za-z_][\w]*)", re.MULTILINE)
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _page_id(page: pathlib.Path) -> str:
    return str(page.relative_to(ROOT))


def session_text(page: pathlib.Path) -> str:
    """The page's pycon blocks, dedented, at their own line numbers, everything else blank."""
    text = page.read_text(encoding="utf-8")
    lines = [""] * (text.count("\n") + 1)
    for match in FENCE.finditer(text):
        if match["lang"] != "pycon":
            continue
        first = text.count("\n", 0, match.start("body"))
        indent = len(match["indent"])
        for offset, line in enumerate(match["body"].splitlines()):
            lines[first + offset] = line[indent:]
    return "\n".join(lines)


def test_every_page_is_collected() -> None:
    names = {_page_id(page) for page in PAGES}
    assert {"README.md", "docs/index.md", "docs/porting.md", "docs/getting_started.md"} <= names


def test_the_license_is_apache_2_and_ships_in_the_wheel() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in text
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'license = "Apache-2.0"' in pyproject
    assert 'license-files = ["LICENSE"]' in pyproject  # hatchling puts it in .dist-info


def test_no_page_says_the_original_library_without_naming_it() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "the original library" not in text.lower(), (
            f"{_page_id(page)}: name it, [NxPenalties](https://hexdocs.pm/nx_penalties)"
        )


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_no_unexecuted_python_block(page: pathlib.Path) -> None:
    text = page.read_text(encoding="utf-8")
    bad = [
        text.count("\n", 0, match.start()) + 1
        for match in FENCE.finditer(text)
        if match["lang"] in UNEXECUTED
        or (match["lang"] != "pycon" and re.search(r"^\s*>>> ", match["body"], re.MULTILINE))
    ]
    assert not bad, (
        f"{_page_id(page)}: lines {bad} hold Python that the suite does not run; write it as "
        "a ```pycon block of >>> lines with the exact output"
    )


def run_page(path: str) -> int:
    """Run one page's session (in a fresh interpreter: pages register backends, attach
    telemetry handlers, enable jax's float64); print the failures; return their count."""
    page = pathlib.Path(path)
    parser = doctest.DocTestParser()
    test = parser.get_doctest(session_text(page), {"__name__": "__main__"}, page.name, path, 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test)
    print(f"{result.attempted} examples, {result.failed} failed")
    return 1 if result.failed or not result.attempted else 0


SESSIONS = [page for page in PAGES if ">>>" in session_text(page)]


def test_pages_with_snippets_are_found() -> None:
    assert {ROOT / "README.md", ROOT / "docs" / "porting.md"} <= set(SESSIONS)


@pytest.mark.parametrize("page", SESSIONS, ids=_page_id)
def test_page_snippets_print_what_the_page_says(page: pathlib.Path) -> None:
    text = session_text(page)
    missing = sorted({name for name in IMPORT.findall(text) if not importlib.util.find_spec(name)})
    if missing:
        pytest.skip(f"{_page_id(page)} needs {', '.join(missing)}, which is not installed")
    paths = [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}  # this checkout's package
    result = subprocess.run(
        [sys.executable, "-W", "error", __file__, str(page)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


if __name__ == "__main__":
    sys.exit(run_page(sys.argv[1]))
