"""A griffe extension for the API reference. mkdocstrings renders docstrings as Markdown,
not reStructuredText, so two reStructuredText forms of the numpydoc docstrings would show
as raw text: ``.. math::`` directives become ``$$ … $$`` blocks (pymdownx.arithmatex hands
them to MathJax), and roles such as ``:class:`~arraypenalties.Pipeline``` become code."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_INLINE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<expr>\S.*)$", re.MULTILINE)
_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n(?:[ \t]*\n)*"  # the directive, blank lines
    r"(?P<body>(?:(?P=indent)[ \t]+\S.*\n?|[ \t]*\n)+)",  # its indented block
    re.MULTILINE,
)


_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|data|obj|exc):`(?P<tilde>~?)(?P<target>[^`]+)`"
)


def _role(match: re.Match[str]) -> str:
    target = match["target"]
    return f"`{target.rsplit('.', 1)[-1] if match['tilde'] else target}`"


def rst_to_markdown(text: str) -> str:
    """Math directives to ``$$`` blocks, cross-reference roles to code spans."""
    return _ROLE.sub(_role, rst_math_to_markdown(text))


def rst_math_to_markdown(text: str) -> str:
    """Replace every ``.. math::`` directive (one line, or an indented block) by ``$$``."""

    def block(match: re.Match[str]) -> str:
        indent = match["indent"]
        body = textwrap.dedent(match["body"]).strip("\n")
        lines = [f"{indent}$$", *(f"{indent}{line}" for line in body.splitlines()), f"{indent}$$"]
        return "\n".join(lines) + "\n\n"

    text = _BLOCK.sub(block, text)
    return _INLINE.sub(
        lambda m: f"{m['indent']}$$\n{m['indent']}{m['expr']}\n{m['indent']}$$", text
    )


class RstToMarkdown(griffe.Extension):
    """Rewrites docstrings as they are loaded, before mkdocstrings parses them."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
