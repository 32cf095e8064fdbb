"""The base of every spec model: strict pydantic, no unknown keys, and each model rewords the
errors of its own fields (with the fix each field declares through :class:`Fix`) so that what
reaches :func:`sweeps.validation.spec_error` is one ``what; fix`` problem with its location.

Conventions of every model: numbers are strict (a bool or the string "3" is no number; an int is
fine where a float is expected; NaN and infinities are refused); a key given as ``null`` counts as
not given (a required one is missing, an optional one takes its default).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from .errors import did_you_mean, explain, first_error, problem

__all__ = ["NAME_FIX", "NAME_PATTERN", "STRICT", "Fix", "Name", "SpecModel"]

STRICT = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

NAME_FIX = "use only letters, digits, '_' and '-' (it names directories and runs)"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
#: A sweep or search name: it names directories and MLflow runs.
Name = Annotated[str, Field(pattern=NAME_PATTERN.pattern)]

FixText = str | Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class Fix:
    """Annotates a field with how to fix a bad value (``text``) or a missing one (``missing``,
    default ``text``); either may be a function of the validation context (e.g. the number of
    tasks). ``noun`` names the field's values in messages ("unknown optimizer 'adamw'")."""

    text: FixText = "fix the value"
    missing: FixText | None = None
    noun: str | None = None

    def render(self, *, missing: bool, context: Mapping[str, Any] | None) -> str:
        text = self.missing if missing and self.missing is not None else self.text
        return text if isinstance(text, str) else text(context or {})


class SpecModel(BaseModel):
    """A mapping of a spec. Subclasses set ``KEY_NOUN`` (unknown keys are "unknown <noun>") and
    ``SHAPE_FIX`` (the fix when the value is not a mapping)."""

    model_config = STRICT

    KEY_NOUN: ClassVar[str] = "key"
    SHAPE_FIX: ClassVar[str] = "write it as a mapping"

    @classmethod
    def user_keys(cls) -> tuple[str, ...]:
        """The keys a spec may give in this mapping."""
        return tuple(cls.model_fields)

    @classmethod
    def key_where(cls) -> str:
        """Said after an unknown key, e.g. ``" for search type 'dwa'"``."""
        return ""

    @classmethod
    def unknown_key(cls, key: Any) -> PydanticCustomError:
        accepted = cls.user_keys()
        return problem(
            f"unknown {cls.KEY_NOUN} {key!r}{cls.key_where()}",
            f"{did_you_mean(key, accepted)}accepted: {', '.join(accepted) or 'none'}",
            (key,),
        )

    @model_validator(mode="wrap")
    @classmethod
    def _one_problem(cls, data: Any, handler: Callable[[Any], Any], info: ValidationInfo) -> Any:
        if isinstance(data, dict):  # a field given as null is not given (unknown keys stay unknown)
            data = {key: value for key, value in data.items() if value is not None or key not in cls.model_fields}
        try:
            return handler(data)
        except ValidationError as exc:
            raise cls._reword(first_error(exc), info.context) from None

    @classmethod
    def _reword(cls, error: ErrorDetails, context: Mapping[str, Any] | None) -> PydanticCustomError:
        loc = error["loc"]
        if error["type"] == "extra_forbidden":
            return cls.unknown_key(loc[0])
        field = cls.model_fields.get(loc[0]) if loc and isinstance(loc[0], str) else None
        if field is None:  # the mapping itself, or an error already reworded
            return explain(error, cls.SHAPE_FIX)
        fix = next((m for m in field.metadata if isinstance(m, Fix)), Fix())
        return explain(
            error,
            fix.render(missing=error["type"] == "missing", context=context),
            noun=fix.noun or str(loc[0]),
            integer=_is_int(field),
            choices=_literal_choices(field),
        )


def _plain_types(field: FieldInfo) -> list[Any]:
    """The field's type, or the members of its union, ``None`` left out."""
    annotation = field.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return [annotation]


def _is_int(field: FieldInfo) -> bool:
    return _plain_types(field) == [int]


def _literal_choices(field: FieldInfo) -> tuple[str, ...]:
    return tuple(
        str(choice)
        for kind in _plain_types(field)
        if typing.get_origin(kind) is Literal
        for choice in typing.get_args(kind)
    )
