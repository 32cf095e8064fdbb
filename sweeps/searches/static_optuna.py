"""``static_optuna``: static task weights drawn by Optuna's TPE, the sampled alternative to an
exhaustive grid at an alpha search's budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..validation import Fix
from .base import OPTUNA, SearchType
from .options import Range, weights_label

if TYPE_CHECKING:
    from trainables import TrialConfig

__all__ = ["StaticOptunaSearch", "WeightRange", "normalised_weights"]

_RANGE_FIX = "give the weights' range as {low, high} with 0 < low < high (drawn log-uniform per task)"
_WEIGHT = "weight_"  # the point's key of task i's drawn weight: weight_0, weight_1, ...


class WeightRange(Range):
    """The range each task's weight is drawn from, log-uniform, before normalisation."""

    KEY_NOUN: ClassVar[str] = "weight range key"
    SHAPE_FIX: ClassVar[str] = "write it as a range {low: 0.1, high: 10}"

    low: Annotated[float, Fix(_RANGE_FIX, missing="give e.g. 'low: 0.1'")] = Field(gt=0)
    high: Annotated[float, Fix(_RANGE_FIX, missing="give e.g. 'high: 10'")] = Field(gt=0)


def normalised_weights(drawn: list[float]) -> list[float]:
    """``w_i = T d_i / sum_j d_j``: the drawn weights ``d`` scaled to sum to T (their ratios kept)."""
    total = sum(drawn)
    return [len(drawn) * value / total for value in drawn]


class StaticOptunaSearch(SearchType):
    """Static weights sampled by Optuna: ``num_trials`` configurations, each task's weight drawn
    log-uniform from ``weights: {low, high}`` (default 0.1 to 10) by the TPE sampler, seeded by the
    sweep's seed, then normalised to sum to T (:func:`normalised_weights`; only the ratios matter
    to the trained network, up to the learning rate's scale). Repeats, early stopping and a
    searched network ``lr`` work as for every search. Trials are labelled by their normalised
    weights, ``weights=[1.3, 0.7]``.

    The practitioner's alternative to the exhaustive grid: a sampled static search with the same
    budget as the alpha search, T dimensions where GradNorm's has at most four.
    """

    method: ClassVar[str] = "static"

    type: Literal["static_optuna"] = "static_optuna"
    weights: Annotated[WeightRange, Fix("write it as a range {low: 0.1, high: 10}")] = Field(
        default_factory=lambda: WeightRange(low=0.1, high=10.0))

    def space(self) -> str:
        return OPTUNA

    def own_space(self, num_tasks: int) -> dict[str, Any]:
        from ray import tune

        if num_tasks < 1:
            raise ValueError(f"search {self.name!r}: static_optuna needs the number of tasks, got {num_tasks}")
        return {f"{_WEIGHT}{i}": tune.loguniform(self.weights.low, self.weights.high) for i in range(num_tasks)}

    def own_first(self, num_tasks: int) -> dict[str, Any]:
        """Every weight at the low end of its range (equal weights, once normalised)."""
        return {f"{_WEIGHT}{i}": self.weights.low for i in range(num_tasks)}

    def point_balancer(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The drawn ``weight_0 .. weight_{T-1}``, normalised to sum to T."""
        count = sum(key.startswith(_WEIGHT) for key in point)
        return {"weights": normalised_weights([float(point[f"{_WEIGHT}{i}"]) for i in range(count)])}

    def own_label(self, config: TrialConfig) -> str:
        return weights_label(config)
