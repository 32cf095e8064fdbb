"""What the spec and the search types validate with: pydantic models that forbid extra keys and
take numbers strictly (:class:`SpecModel`), per-field fixes (:class:`Fix`), and the translation
of a pydantic error into one :class:`SpecError` line ``"<source>: <field.path>: <what>; <fix>"``
with did-you-mean hints. Imports neither Ray nor MLflow nor Optuna."""

from .errors import (
    SpecError,
    describe,
    did_you_mean,
    explain,
    first_error,
    fmt,
    one_line,
    path_of,
    problem,
    relocate,
    spec_error,
)
from .schema import NAME_FIX, NAME_PATTERN, STRICT, Fix, Name, SpecModel

__all__ = [
    "NAME_FIX",
    "NAME_PATTERN",
    "STRICT",
    "Fix",
    "Name",
    "SpecError",
    "SpecModel",
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
