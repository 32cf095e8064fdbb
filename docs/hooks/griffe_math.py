"""A griffe extension (mkdocs.yml: the python handler's ``extensions``): the math of the docstrings,
written as Sphinx's ``:math:`...``` roles and ``.. math::`` directives in LaTeX, becomes MathML when
the site is built (latex2mathml), which browsers render without a script or a web font."""

from __future__ import annotations

import re

import griffe
from latex2mathml.converter import convert

INLINE = re.compile(r":math:`([^`]+)`")
# ".. math:: FORMULA" on its line, or ".. math::" followed by an indented block of formula lines
DIRECTIVE = re.compile(r"^([ \t]*)\.\. math::[ \t]*(.*)\n((?:\1[ \t]+\S.*\n|[ \t]*\n)*)", flags=re.MULTILINE)


def _display(match: re.Match) -> str:
    indent, first, block = match.groups()
    formula = " ".join([first, *(line.strip() for line in block.splitlines())]).strip()
    mathml = convert(formula, display="block").replace("\n", "")
    return f"\n{indent}<div class=\"math\">{mathml}</div>\n\n"


def mathml(text: str) -> str:
    """``text`` with every ``.. math::`` block and ``:math:`` role as MathML."""
    text = DIRECTIVE.sub(_display, text if text.endswith("\n") else text + "\n")
    # in a span: Markdown takes a line that starts with <math> (a block-level tag to it) for a block
    return INLINE.sub(lambda match: f"<span class=\"math\">{convert(match.group(1))}</span>".replace("\n", ""),
                      text).rstrip("\n")


class MathML(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None and "math:" in obj.docstring.value:
            obj.docstring.value = mathml(obj.docstring.value)
