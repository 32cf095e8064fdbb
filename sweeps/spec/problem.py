"""The ``problem`` of a spec: a registered problem and its options. Validation checks the options
and learns the task names through :func:`gradnorm_core.problems.problem_tasks`, which loads no
data (the driver never does; trials do, on their workers)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import Field, PrivateAttr, field_validator, model_validator

from ..validation import describe, did_you_mean, Fix, one_line, problem, SpecModel

__all__ = ["ProblemSpec"]


def _problem_names(context: Mapping[str, Any] | None = None) -> str:
    """The fix of a missing or bad problem name."""
    from gradnorm_core import PROBLEMS

    return f"give one of: {', '.join(PROBLEMS)}"


class ProblemSpec(SpecModel):
    """The problem to train: ``name`` (a key of ``gradnorm_core.problems.PROBLEMS``) and its
    keyword ``options``. ``problem: toy_t2`` is short for ``problem: {name: toy_t2}``."""

    KEY_NOUN: ClassVar[str] = "problem key"
    SHAPE_FIX: ClassVar[str] = "write it as {name: multidigits, options: {num_train: 2000}}"

    name: Annotated[str, Fix(_problem_names)]
    options: dict[str, Any] = Field(default_factory=dict)

    _task_names: tuple[str, ...] = PrivateAttr(default=())

    @property
    def task_names(self) -> list[str]:
        return list(self._task_names)

    @property
    def num_tasks(self) -> int:
        return len(self._task_names)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("options", mode="plain")
    @classmethod
    def _options(cls, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise problem(f"expected a mapping, got {describe(value)}", "write it as a mapping, e.g. {num_train: 2000}")
        for key in value:
            if not isinstance(key, str):
                raise problem(
                    f"key {key!r} is a {type(key).__name__}, not a name",
                    "quote it or use a plain name (YAML reads yes/no/on/off as booleans)",
                )
        return dict(value)

    @model_validator(mode="after")
    def _learn_tasks(self) -> ProblemSpec:
        self._task_names = _task_names(self.name, self.options)
        return self


def _task_names(name: str, options: dict[str, Any]) -> tuple[str, ...]:
    from gradnorm_core import PROBLEMS, problem_tasks

    accepted = ""
    if name in PROBLEMS:  # the spec's own checks, for the did-you-mean hints
        parameters = inspect.signature(PROBLEMS[name]).parameters
        accepted = ", ".join(parameters)
        for key in options:
            if key not in parameters:
                raise problem(
                    f"unknown option {key!r} for problem {name!r}",
                    f"{did_you_mean(key, parameters)}accepted: {accepted}",
                    ("options", key),
                )
        for key, parameter in parameters.items():
            if parameter.default is inspect.Parameter.empty and key not in options:
                raise problem(
                    f"problem {name!r} needs option {key!r}",
                    f"add it under problem.options (accepted options: {accepted})",
                    ("options", key),
                )
    try:
        return tuple(problem_tasks(name, **options))
    except (TypeError, ValueError) as exc:
        message = one_line(str(exc))
    if message.startswith("unknown problem"):
        raise problem(
            f"unknown problem {name!r}",
            f"{did_you_mean(name, PROBLEMS)}choose one of: {', '.join(PROBLEMS)}",
            ("name",),
        )
    named = re.search(r"option '([^']+)'", message)
    if name not in PROBLEMS and named:  # unknown or missing option of a problem found elsewhere
        what, _, fix = message.partition("; ")
        raise problem(what, fix or "fix problem.options", ("options", named.group(1)))
    key = next((k for k in options if message.startswith((f"{k} ", f"{k}["))), None)
    raise problem(
        f"bad option for problem {name!r}: {message}",
        f"fix the value (accepted options: {accepted})" if accepted else "fix the value",
        ("options", key) if key else ("options",),
    )
