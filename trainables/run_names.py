"""How a trial is named where people read it: its MLflow run's name and the cost table's best
configuration, both from its search and its label (the varied part of its config, as its search
type wrote it: ``"alpha=1.271, weight_lr=0.0539, L0=chance"``).

:func:`short_label` shortens a label for reading: numbers to 3 significant digits, ``weight_lr``
to ``wlr`` and ``weights`` to ``w``, parts joined by spaces: ``"alpha=1.27 wlr=0.0539 L0=chance"``,
``"w=[2, 2, 0.5]"``. The label itself, and the params, keep their full precision. Pure Python.
"""

from __future__ import annotations

import re

__all__ = ["MAX_RUN_NAME", "short_label", "trial_run_name"]

#: MLflow's longest run name (a column of 250 characters in its SQL stores)
MAX_RUN_NAME = 250
#: the shorter words of a label's keys
_SHORT_KEYS = {"weight_lr": "wlr", "weights": "w"}
_NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
#: a value that is a number, or a list of numbers: the only values whose numbers are rounded
_NUMBERS = re.compile(rf"{_NUMBER.pattern}|\[\s*(?:{_NUMBER.pattern}\s*(?:,\s*|\]$))+")


def _parts(label: str) -> list[str]:
    """The label's ``key=value`` parts: split at the commas outside brackets."""
    parts, depth, current = [], 0, ""
    for char in label:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [part for part in [*parts, current.strip()] if part]


def _number(match: re.Match) -> str:
    return f"{float(match.group()):.3g}"


def short_label(label: str | None) -> str:
    """The label shortened for reading (see the module's docstring); ``""`` for none (``"-"``)."""
    if not label or label == "-":
        return ""
    out = []
    for part in _parts(label):
        key, sep, value = part.partition("=")
        if not sep:
            out.append(part)
            continue
        value = value.strip()
        if _NUMBERS.fullmatch(value):
            value = _NUMBER.sub(_number, value)
        out.append(f"{_SHORT_KEYS.get(key.strip(), key.strip())}={value}")
    return " ".join(out)


def trial_run_name(search: str | None, label: str | None) -> str:
    """A trial run's name: its search and its short label (``"gradnorm alpha=1.27 wlr=0.054
    L0=chance"``, ``"grid w=[2, 2, 0.5]"``), within MLflow's length."""
    name = " ".join(part for part in (search or "trial", short_label(label)) if part)
    return name if len(name) <= MAX_RUN_NAME else name[:MAX_RUN_NAME - 3] + "..."
