"""The shape of the house (DESIGN.md): small modules. The layering itself is checked by
import-linter in ``make lint``."""

from __future__ import annotations

import ast
import io
import pathlib
import tokenize

import arraypenalties

ROOT = pathlib.Path(arraypenalties.__file__).parent
MAX_CODE_LINES = 400


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not comments, not docstrings."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, kinds) and node.body:
            first = node.body[0]
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in skipped or token.type == tokenize.ENDMARKER:
            continue
        lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def test_code_lines_counts_code_only() -> None:
    source = (
        '"""Doc\n\nstring."""\n\n# a comment\nx = 1\n\n\n'
        'def f():\n    """Doc."""\n    return (\n        x\n    )\n'
    )
    assert code_lines(source) == 5  # x = 1, def, and the three lines of the return


def test_no_module_is_over_400_lines_of_code() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): code_lines(path.read_text())
        for path in ROOT.rglob("*.py")
    }
    assert len(sizes) > 50
    assert {name: n for name, n in sizes.items() if n > MAX_CODE_LINES} == {}
