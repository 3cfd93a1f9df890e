"""A griffe extension for the API reference: numpydoc's ``.. math::`` directives become
``$$ … $$`` blocks, which pymdownx.arithmatex hands to MathJax (mkdocstrings renders
Markdown, not reStructuredText, so the directive would otherwise show as raw text)."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_INLINE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<expr>\S.*)$", re.MULTILINE)
_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n(?:[ \t]*\n)*(?P<body>(?:(?P=indent)[ \t]+\S.*\n?|[ \t]*\n)+)",
    re.MULTILINE,
)


def rst_math_to_markdown(text: str) -> str:
    """Replace every ``.. math::`` directive (one line, or an indented block) by ``$$``."""

    def block(match: re.Match[str]) -> str:
        indent = match["indent"]
        body = textwrap.dedent(match["body"]).strip("\n")
        lines = [f"{indent}$$", *(f"{indent}{line}" for line in body.splitlines()), f"{indent}$$"]
        return "\n".join(lines) + "\n\n"

    text = _BLOCK.sub(block, text)
    return _INLINE.sub(lambda m: f"{m['indent']}$$\n{m['indent']}{m['expr']}\n{m['indent']}$$", text)


class RstMath(griffe.Extension):
    """Rewrites docstrings as they are loaded, before mkdocstrings parses them."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ".. math::" in obj.docstring.value:
            obj.docstring.value = rst_math_to_markdown(obj.docstring.value)
