"""mkdocs hooks: before each build, draw the figures and write the examples gallery.

Both run in a subprocess with this checkout's ``src`` first on the path, so the site shows
what the code in this tree computes, and mkdocs itself never imports torch or jax.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = pathlib.Path(__file__).resolve().parent
# generated into docs/ at build time and ignored by git
FIGURES = ROOT / "docs" / "figures"
GALLERY = ROOT / "docs" / "examples.md"


def _run(script: str, target: pathlib.Path) -> None:
    paths = [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    subprocess.run([sys.executable, str(SCRIPTS / script), str(target)], env=env, check=True)


def on_pre_build(config: Any, **kwargs: Any) -> None:
    # DOCS_REUSE_GENERATED=1 keeps outputs of an earlier build (`mkdocs serve` while editing)
    reuse = os.environ.get("DOCS_REUSE_GENERATED") == "1"
    if not (reuse and FIGURES.is_dir()):
        _run("figures.py", FIGURES)
    if not (reuse and GALLERY.is_file()):
        _run("gallery.py", GALLERY)
