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

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from ..validation import NAME_FIX, STRICT, explain, first_error, Fix, fmt, Name, problem, SpecModel
from .early_stopping import SCHEDULER_FIX, AshaScheduler

if typing.TYPE_CHECKING:
    from trainables import TrialBase, TrialConfig

__all__ = [
    "LearningRateRange",
    "NonNegative",
    "Optimizer",
    "Positive",
    "SearchType",
    "learning_rate",
    "number_list",
    "optuna_searcher",
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


def weights_label(config: TrialConfig) -> str:
    """``"weights=[1, 0.5, 2]"`` for a trial whose balancer has weights, else ``"-"``."""
    weights = config.balancer.options.get("weights")
    if weights is None:
        return "-"
    return "weights=[" + ", ".join(f"{w:.4g}" for w in weights) + "]"


_LR_RANGE_FIX = "give learning rates to search as {low, high} with 0 < low < high (drawn log-uniform)"


class LearningRateRange(SpecModel):
    """Learning rates Optuna draws from, log-uniform: ``0 < low <= lr <= high`` (the network's,
    for ``equal_lr``; the task weights', for ``gradnorm``)."""

    KEY_NOUN: ClassVar[str] = "learning rate range key"
    SHAPE_FIX: ClassVar[str] = "write it as a range {low: 0.001, high: 0.1}"

    low: Annotated[float, Fix(_LR_RANGE_FIX, missing="give e.g. 'low: 0.001'")] = Field(gt=0)
    high: Annotated[float, Fix(_LR_RANGE_FIX, missing="give e.g. 'high: 0.1'")] = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LearningRateRange:
        if not self.low < self.high:
            raise problem(
                f"low ({fmt(self.low)}) must be below high ({fmt(self.high)})", "swap them or widen the range"
            )
        return self


def optuna_searcher(space: dict[str, Any], seed: int, metric: str, mode: str) -> Any:
    """Ray Tune's Optuna searcher with the TPE sampler seeded by ``seed``, over ``space`` (Tune
    domains such as ``tune.uniform``; converted here: OptunaSearch warns about unresolved ones)."""
    from optuna.samplers import TPESampler
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(space=OptunaSearch.convert_search_space(space), metric=metric, mode=mode,
                        sampler=TPESampler(seed=seed))


def tasks_context(task_names: Sequence[str], problem: str) -> dict[str, Any]:
    """The validation context of a search of a problem with these tasks."""
    return {"num_tasks": len(task_names), "task_names": list(task_names), "problem": problem}


class SearchType(SpecModel):
    """One search of a sweep: its options, and the trials it runs.

    ``name`` is its key in the spec's ``searches`` mapping (not an option of the mapping).
    Subclasses set ``type`` to a ``Literal`` and ``method`` to the
    :func:`gradnorm_core.make_balancer` method its trials use. Each trial's
    :class:`trainables.TrialConfig` is built by :meth:`trial_config` from the sweep's shared part,
    the search's fixed balancer options and the point it varies.
    """

    KEY_NOUN: ClassVar[str] = "option"
    SHAPE_FIX: ClassVar[str] = "write it as {type: gradnorm, ...}"

    method: ClassVar[str]
    #: Whether its trials' time-averaged weights give the sweep's recommended static weights.
    recommends_static: ClassVar[bool] = False

    name: Annotated[Name, Fix(NAME_FIX, noun="search name")]
    type: str
    #: Seeds per configuration: each configuration is trained with the sweep's seed, seed + 1, ...
    repeats: Annotated[int, Fix("give how many seeds train each configuration, a whole number >= 1")] = Field(1, ge=1)
    #: Early stopping of the search's trials (see :mod:`sweeps.searches.early_stopping`); None: every
    #: trial trains all of the sweep's epochs.
    scheduler: Annotated[AshaScheduler | None, Fix(SCHEDULER_FIX)] = None

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
        """The validated options (those given, with inferred ones filled in; ``repeats`` only
        when more than one)."""
        exclude = {"name", "type"} | ({"repeats"} if self.repeats == 1 else set())
        return self.model_dump(exclude=exclude, exclude_none=True)

    def check(self, num_tasks: int, task_names: Sequence[str], problem_name: str) -> None:
        """The checks that need the problem's tasks; raise a :func:`problem` located below the
        search."""

    def balancer_options(self) -> dict[str, Any]:
        """Fixed keyword options for ``make_balancer(self.method, ...)`` (not the varied ones)."""
        return {}

    def config_count(self, num_tasks: int) -> int:
        """How many configurations this search trains (each ``repeats`` times)."""
        return 1

    def trial_count(self, num_tasks: int) -> int:
        """How many trials this search runs: configurations times repeats."""
        return self.config_count(num_tasks) * self.repeats

    def trial_points(self, num_tasks: int, seed: int) -> list[dict[str, Any]] | None:
        """The varied keys of each configuration, or ``None`` when a searcher picks them as it
        goes (repeats are not listed: the sweep's searcher trains each point ``repeats`` times)."""
        return [{}]

    def first_point(self, num_tasks: int, seed: int) -> dict[str, Any] | None:
        """A point to check the search's trials with before Ray starts: its first listed point,
        or, where a searcher picks them, one of its space (a type with a searcher overrides this:
        the low end of each range); None for a search of no trials."""
        points = self.trial_points(num_tasks, seed)
        return dict(points[0]) if points else None

    def point_balancer(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The balancer options a point (as listed or as a searcher picked it) sets: by default
        the point itself."""
        return dict(point)

    def point_training(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The training keys a point overrides (the network's ``lr``, for ``equal_lr``): none by
        default."""
        return {}

    def trial_config(self, base: TrialBase, point: Mapping[str, Any], repeat: int = 0) -> TrialConfig:
        """The config of one trial: the sweep's problem, training and run (``base``), a balancer
        of this search's method with its fixed options and the point's, and the point's label.
        With ``repeats > 1``, repeat ``k`` trains with the sweep's seed + k and says so."""
        balancer = {"method": self.method, **self.balancer_options(), **self.point_balancer(point)}
        training = self.point_training(point)
        if self.repeats > 1:
            training["seed"] = base.training.seed + repeat
        config = base.trial(balancer, training=training, search=self.name,
                            repeat=repeat if self.repeats > 1 else None)
        return config.model_copy(update={"label": self.label(config)})

    def searcher(self, seed: int, metric: str, mode: str) -> Any:
        """The Ray Tune searcher that picks the trials, or ``None`` (the trials are
        :meth:`trial_points`)."""
        return None

    def label(self, config: TrialConfig) -> str:
        """The varied part of a trial's config, for tables and progress lines."""
        return "-"

    def parent_params(self, num_tasks: int, seed: int) -> dict[str, Any]:
        """The params of the search's own MLflow run (JSON-able)."""
        return dict(self.options)
