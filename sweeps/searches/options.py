"""The option types and helpers several search types share: numbers, a method's own optimizer and
learning rate, lists of numbers, ranges ``{low, high}`` (learning rates here; GradNorm's alphas
and static_optuna's weights in their modules), the Optuna searcher, the validation context. Its
one owner: the search types import these from here. Imports neither Ray nor MLflow nor Optuna at
import time."""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from ..validation import STRICT, explain, first_error, Fix, fmt, problem, SpecModel

if typing.TYPE_CHECKING:
    from trainables import TrialConfig

__all__ = [
    "LearningRateRange",
    "NonNegative",
    "Optimizer",
    "OwnOptimizerOptions",
    "Positive",
    "Range",
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


class OwnOptimizerOptions(SpecModel):
    """The options of a method that learns parameters of its own (log-scales, log-variances):
    optional ``weight_lr`` and ``optimizer``, its balancer's ``lr`` and ``optimizer``. A search
    type takes them by listing this class before :class:`~.base.SearchType` among its bases (and
    may re-declare ``weight_lr`` to name its parameters in the fix)."""

    weight_lr: Annotated[float | None, learning_rate("the log-scales' learning rate")] = Field(None, gt=0)
    optimizer: Optimizer = None

    def balancer_options(self) -> dict[str, Any]:
        return own_optimizer(self.weight_lr, self.optimizer)


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


class Range(SpecModel):
    """A range ``{low, high}`` with ``low < high``. A subclass declares ``low`` and ``high`` with their
    bounds and fixes (and ``KEY_NOUN``, ``SHAPE_FIX``); the order is checked here."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise problem(
                f"low ({fmt(self.low)}) must be below high ({fmt(self.high)})", "swap them or widen the range"
            )
        return self


_LR_RANGE_FIX = "give learning rates to search as {low, high} with 0 < low < high (drawn log-uniform)"


class LearningRateRange(Range):
    """Learning rates Optuna draws from, log-uniform: ``0 < low <= lr <= high`` (the network's,
    for a search's ``lr``; the task weights', for GradNorm's ``weight_lr``)."""

    KEY_NOUN: ClassVar[str] = "learning rate range key"
    SHAPE_FIX: ClassVar[str] = "write it as a range {low: 0.001, high: 0.1}"

    low: Annotated[float, Fix(_LR_RANGE_FIX, missing="give e.g. 'low: 0.001'")] = Field(gt=0)
    high: Annotated[float, Fix(_LR_RANGE_FIX, missing="give e.g. 'high: 0.1'")] = Field(gt=0)


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
