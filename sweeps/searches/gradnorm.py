"""``gradnorm``: GradNorm trials over alpha, picked by Optuna (TPE) in a range or run as a grid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..validation import Fix, fmt, problem, SpecModel
from .base import Optimizer, SearchType, learning_rate, number_list, own_optimizer

__all__ = ["AlphaRange", "GradNormSearch"]

_RANGE_FIX = "alpha must be a range {low, high} with 0 <= low < high"
_GRID_FIX = "for search: grid give a non-empty list of alphas >= 0, e.g. [0, 0.5, 1, 1.5]"
_NUM_TRIALS_MISSING = "give how many alphas Optuna tries, e.g. 'num_trials: 8'"


class AlphaRange(SpecModel):
    """The alphas Optuna draws from: ``low <= alpha <= high``."""

    KEY_NOUN: ClassVar[str] = "alpha range key"
    SHAPE_FIX: ClassVar[str] = "write it as a range {low: 0.0, high: 3.0} (for search: optuna)"

    low: Annotated[float, Fix(_RANGE_FIX, missing="give e.g. 'low: 0.0'")] = Field(ge=0)
    high: Annotated[float, Fix(_RANGE_FIX, missing="give e.g. 'high: 3.0'")] = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> AlphaRange:
        if not self.low < self.high:
            raise problem(
                f"low ({fmt(self.low)}) must be below high ({fmt(self.high)})", "swap them or widen the range"
            )
        return self


class GradNormSearch(SearchType):
    """GradNorm trials over alpha.

    ``search: optuna`` (the default for a range): ``alpha`` is a range, ``num_trials`` alphas
    drawn by Optuna's TPE sampler. ``search: grid`` (the default for a list): one trial per alpha
    of the list. Optional ``weight_lr`` and ``optimizer`` of the task weights.
    """

    method: ClassVar[str] = "gradnorm"
    recommends_static: ClassVar[bool] = True

    type: Literal["gradnorm"] = "gradnorm"
    search: Annotated[Literal["optuna", "grid"], Fix(noun="gradnorm search")]
    alpha: Annotated[
        AlphaRange | list[float],
        Fix(missing="give a range {low: 0.0, high: 3.0} (search: optuna) or a list of alphas (search: grid)"),
    ]
    num_trials: Annotated[
        int | None, Fix("give a whole number of trials >= 1", missing=_NUM_TRIALS_MISSING)
    ] = Field(None, ge=1)
    weight_lr: Annotated[float | None, learning_rate("GradNorm's weight learning rate")] = Field(None, gt=0)
    optimizer: Optimizer = None

    @model_validator(mode="before")
    @classmethod
    def _infer_search(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("search") is None:
            data["search"] = "grid" if isinstance(data.get("alpha"), list) else "optuna"
        if data["search"] == "grid" and data.get("num_trials") is not None:
            raise problem(
                "is for search: optuna; a grid runs one trial per alpha",
                "remove it, or use search: optuna with an alpha range",
                ("num_trials",),
            )
        return data

    @field_validator("alpha", mode="wrap")  # (not "plain": that would lose the union's serializer)
    @classmethod
    def _alpha(cls, value: Any, handler: Any, info: ValidationInfo) -> AlphaRange | list[float]:
        """A range for ``search: optuna``, a list for ``search: grid``."""
        search = info.data.get("search")
        if search == "grid":
            if isinstance(value, (dict, AlphaRange)):
                raise problem("a range is for search: optuna", _GRID_FIX)
            return number_list(value, _GRID_FIX, distinct="list each alpha once")
        if isinstance(value, AlphaRange):
            return value
        return AlphaRange.model_validate(value, context=info.context)

    @model_validator(mode="after")
    def _optuna_needs_num_trials(self) -> GradNormSearch:
        if self.search == "optuna" and self.num_trials is None:
            raise problem("missing required field", _NUM_TRIALS_MISSING, ("num_trials",))
        return self

    @property
    def options(self) -> dict[str, Any]:
        return super().options | {"num_trials": self.trial_count(0)}

    def balancer_options(self) -> dict[str, Any]:
        return own_optimizer(self.weight_lr, self.optimizer)

    def trial_count(self, num_tasks: int) -> int:
        if isinstance(self.alpha, list):
            return len(self.alpha)
        assert self.num_trials is not None  # checked by validation
        return self.num_trials

    def trial_points(self, num_tasks: int, seed: int) -> list[dict[str, Any]] | None:
        if isinstance(self.alpha, list):
            return [{"alpha": alpha} for alpha in self.alpha]
        return None

    def searcher(self, seed: int, metric: str, mode: str) -> Any:
        """Optuna's TPE sampler (seeded) over the alpha range, for ``search: optuna``."""
        if not isinstance(self.alpha, AlphaRange):
            return None
        from optuna.samplers import TPESampler
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch

        # converted here: OptunaSearch warns about a space of unresolved Tune domains
        return OptunaSearch(
            space=OptunaSearch.convert_search_space({"alpha": tune.uniform(self.alpha.low, self.alpha.high)}),
            metric=metric,
            mode=mode,
            sampler=TPESampler(seed=seed),
        )

    def label(self, config: Mapping[str, Any]) -> str:
        return "-" if config.get("alpha") is None else f"alpha={config['alpha']:.4g}"
