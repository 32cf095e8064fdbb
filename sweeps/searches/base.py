"""The interface every search type implements, and the option types several of them share.

A search type is a pydantic model (see :class:`sweeps.validation.SpecModel`) with a
``type: Literal["<type>"]`` field and its options as typed fields. The runner knows nothing of
the types: it asks the search object how many trials it runs, their varied keys (or a Ray Tune
searcher that picks them), the balancer options, the label of a trial and the params of the
search's own MLflow run.

Validation may be given a context (``num_tasks``, ``task_names``, ``problem``; see
:func:`tasks_context`); fixes that depend on the problem use it.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, TypeAdapter, ValidationError

from ..validation import NAME_FIX, STRICT, explain, first_error, Fix, fmt, Name, problem, SpecModel

__all__ = [
    "NonNegative",
    "Optimizer",
    "Positive",
    "SearchType",
    "learning_rate",
    "number_list",
    "own_optimizer",
    "tasks_context",
    "weights_label",
]

NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]

#: The optimizer of a method's own parameters (GradNorm's weights, uncertainty's log-variances).
Optimizer = Annotated[Literal["adam", "sgd"] | None, Fix(noun="optimizer")]


def learning_rate(what: str) -> Fix:
    """The fix of the optional learning rate of a method's own parameters; annotate the field
    ``Annotated[float | None, learning_rate("...")] = Field(None, gt=0)``."""
    return Fix(f"give {what}, > 0 (e.g. 0.025)")


def own_optimizer(lr: float | None, optimizer: str | None) -> dict[str, Any]:
    """The balancer options ``lr`` and ``optimizer`` of the given ones."""
    return {key: value for key, value in (("lr", lr), ("optimizer", optimizer)) if value is not None}


_NUMBERS: TypeAdapter[list[float]] = TypeAdapter(Annotated[list[NonNegative], Field(min_length=1)], config=STRICT)


def number_list(
    value: Any, fix: str, *, distinct: str | None = None, at: tuple[int, ...] = ()
) -> list[float]:
    """``value`` as a non-empty list of numbers >= 0. With ``distinct`` (its fix), a number given
    twice is an error. Errors are :func:`problem` s located below ``at``."""
    try:
        numbers = _NUMBERS.validate_python(value)
    except ValidationError as exc:
        error = explain(first_error(exc), fix).context or {}
        raise problem(error["what"], error["fix"], at + tuple(error["at"])) from None
    if distinct is not None:
        for i, number in enumerate(numbers):
            if number in numbers[:i]:
                raise problem(f"{fmt(number)} is listed twice", distinct, (*at, i))
    return numbers


def weights_label(config: Mapping[str, Any]) -> str:
    """``"weights=[1, 0.5, 2]"`` for a trial config with weights, else ``"-"``."""
    if config.get("weights") is None:
        return "-"
    return "weights=[" + ", ".join(f"{w:.4g}" for w in config["weights"]) + "]"


def tasks_context(task_names: Sequence[str], problem: str) -> dict[str, Any]:
    """The validation context of a search of a problem with these tasks."""
    return {"num_tasks": len(task_names), "task_names": list(task_names), "problem": problem}


class SearchType(SpecModel):
    """One search of a sweep: its options, and the trials it runs.

    ``name`` is its key in the spec's ``searches`` mapping (not an option of the mapping).
    Subclasses set ``type`` to a ``Literal`` and ``method`` to the
    :func:`gradnorm_core.make_balancer` method its trials use.
    """

    KEY_NOUN: ClassVar[str] = "option"
    SHAPE_FIX: ClassVar[str] = "write it as {type: gradnorm, ...}"

    method: ClassVar[str]
    #: Whether its trials' time-averaged weights give the sweep's recommended static weights.
    recommends_static: ClassVar[bool] = False

    name: Annotated[Name, Fix(NAME_FIX, noun="search name")]
    type: str

    @classmethod
    def type_name(cls) -> str:
        """The value of ``type`` that selects this class."""
        return typing.get_args(cls.model_fields["type"].annotation)[0]

    @classmethod
    def user_keys(cls) -> tuple[str, ...]:
        return tuple(key for key in cls.model_fields if key not in ("name", "type"))

    @classmethod
    def key_where(cls) -> str:
        return f" for search type {cls.type_name()!r}"

    @property
    def options(self) -> dict[str, Any]:
        """The validated options (those given, with inferred ones filled in)."""
        return self.model_dump(exclude={"name", "type"}, exclude_none=True)

    def check(self, num_tasks: int, task_names: Sequence[str], problem_name: str) -> None:
        """The checks that need the problem's tasks; raise a :func:`problem` located below the
        search."""

    def balancer_options(self) -> dict[str, Any]:
        """Fixed keyword options for ``make_balancer(self.method, ...)`` (not the varied ones)."""
        return {}

    def trial_count(self, num_tasks: int) -> int:
        """How many trials this search runs."""
        return 1

    def trial_points(self, num_tasks: int, seed: int) -> list[dict[str, Any]] | None:
        """The varied keys of each trial, or ``None`` when a searcher picks them as it goes."""
        return [{}]

    def searcher(self, seed: int, metric: str, mode: str) -> Any:
        """The Ray Tune searcher that picks the trials, or ``None`` (the trials are
        :meth:`trial_points`)."""
        return None

    def label(self, config: Mapping[str, Any]) -> str:
        """The varied part of a trial's config, for tables and progress lines."""
        return "-"

    def parent_params(self, num_tasks: int, seed: int) -> dict[str, Any]:
        """The params of the search's own MLflow run (JSON-able)."""
        return dict(self.options)
