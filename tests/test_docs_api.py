"""The API reference lists every public name: each name in the ``__all__`` of
``arraypenalties`` and of its public (not underscore-prefixed) submodules has a
``::: identifier`` entry in docs/api/*.md that resolves to the same object."""

from __future__ import annotations

import importlib
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
