"""One-line spec errors: ``"<source>: <field.path>: <what is wrong>; <how to fix>"``.

Validation raises :func:`problem` errors (a pydantic custom error that carries what is wrong, the
fix, and where below the field that raised it); pydantic's own errors (a missing field, a string
where a number belongs, ...) are reworded by :func:`explain`. :func:`spec_error` turns the first
error of a :class:`pydantic.ValidationError` into one :class:`SpecError` line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

__all__ = [
    "PROBLEM",
    "SpecError",
    "describe",
    "did_you_mean",
    "explain",
    "first_error",
    "fmt",
    "one_line",
    "path_of",
    "problem",
    "relocate",
    "spec_error",
]

PROBLEM = "spec_problem"

Location = tuple[str | int, ...]


class SpecError(ValueError):
    """A bad sweep spec; the message is one line naming the file, the field and the fix."""


def problem(what: str, fix: str, at: Sequence[str | int] = ()) -> PydanticCustomError:
    """A validation error saying what is wrong and how to fix it. ``at`` locates it below the
    field being validated (e.g. ``(2,)`` for the third item of a list); pydantic adds the rest."""
    return PydanticCustomError(
        PROBLEM, "{what}; {fix}", {"what": one_line(what), "fix": one_line(fix), "at": tuple(at)}
    )


def first_error(exc: ValidationError) -> ErrorDetails:
    """The one error to report: a non-string key, then an unknown key, then a missing field,
    then the first in validation order (the order of the fields)."""
    priority = {"invalid_key": 0, "extra_forbidden": 1, "missing": 2}
    errors = exc.errors(include_url=False)
    return min(errors, key=lambda error: priority.get(error["type"], 3))


def explain(
    error: ErrorDetails,
    fix: str,
    *,
    noun: str = "value",
    integer: bool = False,
    choices: Sequence[str] = (),
) -> PydanticCustomError:
    """``error`` as a :func:`problem` at the same location. ``fix`` is the field's fix, ``noun``
    names its values ("optimizer"), ``integer`` says it takes whole numbers, ``choices`` are the
    values a literal field accepts."""
    kind, value, loc = error["type"], error.get("input"), tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if kind == PROBLEM:
        return problem(ctx["what"], ctx["fix"], loc + tuple(ctx["at"]))
    if kind == "invalid_key":
        return problem(
            f"key {value!r} is a {type(value).__name__}, not a name",
            "quote it or use a plain name (YAML reads yes/no/on/off as booleans)",
            loc[:-1],
        )
    if kind == "literal_error" and choices:
        hint = did_you_mean(value, choices)
        return problem(f"unknown {noun} {value!r}", f"{hint}choose one of: {', '.join(choices)}", loc)
    return problem(_what(kind, value, ctx, noun, integer, error["msg"]), fix, loc)


_EXPECTED = {
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a non-empty list",
    "too_short": "a non-empty list",
}


def _what(kind: str, value: Any, ctx: dict[str, Any], noun: str, integer: bool, msg: str) -> str:
    if kind == "missing":
        return "missing required field"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {describe(value)}"
    if kind == "finite_number":
        return f"expected a finite number, got {value!r}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        bound = next(iter(ctx.values()))
        return f"must be {'an integer ' if integer else ''}{bounds[kind]} {fmt(bound)}, got {value!r}"
    if kind == "string_pattern_mismatch":
        return f"invalid {noun} {value!r}"
    return f"{msg[:1].lower()}{msg[1:]}, got {describe(value)}"


def relocate(exc: ValidationError | PydanticCustomError, prefix: Location = ()) -> PydanticCustomError:
    """The first error of ``exc`` as one :func:`problem`, located below ``prefix``."""
    reported = explain(first_error(exc), "fix the value") if isinstance(exc, ValidationError) else exc
    ctx = reported.context or {}
    if reported.type != PROBLEM:  # raised by hand, not through problem()
        return problem(reported.message(), "fix the value", prefix)
    return problem(ctx["what"], ctx["fix"], tuple(prefix) + tuple(ctx["at"]))


def spec_error(exc: ValidationError | PydanticCustomError, source: str, prefix: Location = ()) -> SpecError:
    """The :class:`SpecError` line for the first error of ``exc``; ``prefix`` is where the
    validated value sits in the spec (e.g. ``("searches",)``)."""
    ctx = relocate(exc, prefix).context or {}
    return SpecError(f"{source}: {path_of(ctx['at'])}: {ctx['what']}; {ctx['fix']}")


def path_of(loc: Iterable[str | int]) -> str:
    """``("searches", "grid", "levels", 2, 1)`` -> ``"searches.grid.levels[2][1]"``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "top level"


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of ``choices``, or ``""``."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def describe(value: Any) -> str:
    """``"list [0, 1]"``, ``"string '3'"``, ``"boolean True"``, ``"nothing (null)"``..."""
    if value is None:
        return "nothing (null)"
    kinds = {dict: "mapping", list: "list", str: "string", bool: "boolean"}
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kinds.get(type(value), type(value).__name__)} {text}"


def fmt(number: float) -> str:
    return f"{number:g}"


def one_line(text: str) -> str:
    return " ".join(str(text).split())
