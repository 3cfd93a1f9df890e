"""The API reference lists every public name: each name in the ``__all__`` of
``arraypenalties`` and of its public (not underscore-prefixed) submodules has a
``::: identifier`` entry in docs/api/*.md that resolves to the same object."""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import pkgutil
import re
import types
from typing import Any

import pytest

import arraypenalties

ROOT = pathlib.Path(__file__).resolve().parents[1]
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)


def public_module_names() -> list[str]:
    names = ["arraypenalties"]
    for info in pkgutil.walk_packages(arraypenalties.__path__, "arraypenalties."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def resolve(identifier: str) -> Any:
    """The object a dotted path names, attribute first (``arraypenalties.gradient_penalty`` is
    the function, which the package binds over its submodule), else the submodule."""
    parts = identifier.split(".")
    value: Any = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=2):
        if hasattr(value, part):
            value = getattr(value, part)
        else:
            value = importlib.import_module(".".join(parts[:i]))
    return value


def documented() -> dict[str, Any]:
    found = {}
    for page in sorted((ROOT / "docs" / "api").glob("*.md")):
        for identifier in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            found[identifier] = resolve(identifier)
    return found


def test_reference_pages_name_existing_objects() -> None:
    entries = documented()
    assert "arraypenalties.l1" in entries
    assert all(value is not None for value in entries.values())


@pytest.mark.parametrize("module_name", public_module_names())
def test_every_public_name_is_in_the_reference(module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:  # an integration whose framework is not installed
        pytest.skip(f"{module_name} needs {exc.name}, which is not installed")
    objects = list(documented().values())
    missing = [
        name
        for name in getattr(module, "__all__", [])
        if not any(getattr(module, name) is value for value in objects)
    ]
    assert not missing, (
        f"{module_name}: {missing} are public (in __all__) but have no `::: "
        f"{module_name}.<name>` entry in docs/api/*.md"
    )


def test_public_submodules_of_the_top_level_are_documented_as_modules() -> None:
    objects = documented().values()
    for name in arraypenalties.__all__:
        value = getattr(arraypenalties, name)
        if isinstance(value, types.ModuleType):
            assert any(value is obj for obj in objects), name


def _script(name: str) -> types.ModuleType:
    """A module of docs/_scripts (the site's build scripts), loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "_scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_renders_rst_math_and_roles_as_markdown() -> None:
    convert = _script("griffe_rst").rst_to_markdown
    one_line = "Notes\n-----\n.. math:: a = b\n\nText."
    assert convert(one_line) == "Notes\n-----\n$$\na = b\n$$\n\nText."
    block = "    .. math::\n\n        x = 1\n        y = 2\n\n    After."
    assert convert(block) == "    $$\n    x = 1\n    y = 2\n    $$\n\n    After."
    roles = "See :class:`~arraypenalties.Pipeline`, :func:`l1` and :mod:`arraypenalties.telemetry`."
    assert convert(roles) == "See `Pipeline`, `l1` and `arraypenalties.telemetry`."


def test_benchmark_figure_reads_every_ratio_table() -> None:
    tables = _script("figures").benchmark_tables(
        "# T\n## Results\n\n| framework | case | size | ours µs | native µs | ratio |\n"
        "|---|---|---:|---:|---:|---:|\n| torch | l2 | 16 | 10.1 | 6.72 | 1.51 |\n"
        "| jax | l1 | 1,000 | 9.69 | 9.67 | 1.00 |\n\n## Other\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    assert tables == [("Results", ["torch · l2 · 16", "jax · l1 · 1,000"], [1.51, 1.00])]
    flops = _script("figures").benchmark_tables(  # a flop count is a number, not a label
        "## Exact\n\n| case | form | XLA flops | µs | ratio |\n|---|---|---:|---:|---:|\n"
        "| kl | ours | 2,048 | 30.1 | 3.93 |\n"
    )
    assert flops == [("Exact", ["kl · ours"], [3.93])]
