"""The errors of a trial's configuration (:mod:`.config`): one line, ``"<key.path>: <what>; <fix>"``,
worded from pydantic's errors or from what a validator found."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

__all__ = ["Bad", "TrialConfigError", "first_error", "shown"]


class TrialConfigError(ValueError):
    """A trial's config is invalid: one line, ``"<key.path>: <what>; <fix>"``; ``at`` is the key
    path (``("training", "lr")``), ``what`` and ``fix`` the two halves of the message."""

    def __init__(self, what: str, fix: str = "", at: tuple[str | int, ...] = ()) -> None:
        self.what, self.fix, self.at = " ".join(str(what).split()), " ".join(str(fix).split()), tuple(at)
        path = ".".join(str(part) for part in self.at)
        super().__init__(f"{path + ': ' if path else ''}{self.what}{'; ' + self.fix if self.fix else ''}")


class Bad(ValueError):
    """Raised inside a validator: what is wrong, the fix, and where below the validated value."""

    def __init__(self, what: str, fix: str, at: tuple[str | int, ...] = ()) -> None:
        self.what, self.fix, self.at = what, fix, at
        super().__init__(f"{what}; {fix}")


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_EXPECTED = {"float_type": "a number", "int_type": "an integer", "int_from_float": "an integer",
             "bool_type": "true or false", "string_type": "a string", "dict_type": "a mapping",
             "model_type": "a mapping", "model_attributes_type": "a mapping", "list_type": "a list"}
_FIX_OF = {"a number": "give a number", "an integer": "give a whole number", "true or false": "write true or false",
           "a string": "give a string", "a mapping": "give a mapping", "a list": "give a list"}


def first_error(exc: ValidationError, at: tuple[str, ...], fixes: Mapping[str, str],
                keys_at: Callable[[tuple], list[str]]) -> TrialConfigError:
    """The one error of ``exc`` to report, worded ``what; fix`` at its key path (below ``at``);
    ``fixes`` are the training keys' fixes, ``keys_at(path)`` the keys accepted at a path."""
    priority = {"extra_forbidden": 0, "missing": 1}
    error = min(exc.errors(include_url=False), key=lambda e: priority.get(e["type"], 2))
    kind, loc, value = error["type"], tuple(at) + tuple(error["loc"]), error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, Bad):
        return TrialConfigError(cause.what, cause.fix, loc + tuple(cause.at))
    key = loc[-1] if loc else ""
    fix = fixes.get(str(key), "fix the value") if loc[:1] == ("training",) else "fix the value"
    if kind == "extra_forbidden":
        section = {"training": "training key", "problem": "problem key", "run": "run key"}.get(str(loc[0]), "key")
        known = keys_at(loc[:-1])
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return TrialConfigError(f"unknown {section} {key!r}", f"{hint}accepted: {', '.join(known)}", loc)
    if kind == "missing":
        return TrialConfigError("missing", "add it", loc)
    if kind == "finite_number":
        return TrialConfigError(f"expected a finite number, got {value!r}", fix, loc)
    if kind in _EXPECTED:
        expected = _EXPECTED[kind]
        return TrialConfigError(f"expected {expected}, got {shown(value)}",
                                fix if fix != "fix the value" else _FIX_OF[expected], loc)
    bound = next(iter((error.get("ctx") or {}).values()), None)
    if kind in ("greater_than", "greater_than_equal"):
        return TrialConfigError(f"must be {'>' if kind == 'greater_than' else '>='} {bound}, got {shown(value)}",
                                fix, loc)
    if kind == "too_short":
        return TrialConfigError("must not be empty", fix, loc)
    return TrialConfigError(f"{error['msg'][:1].lower()}{error['msg'][1:]}, got {shown(value)}", fix, loc)
