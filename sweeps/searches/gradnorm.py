"""``gradnorm``: GradNorm trials over alpha, picked by Optuna (TPE) in a range or run as a grid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..validation import Fix, did_you_mean, problem
from .base import GRID, OPTUNA, SearchType
from .options import LearningRateRange, Optimizer, Range, number_list, own_optimizer

if TYPE_CHECKING:
    from trainables import TrialConfig

__all__ = ["AlphaRange", "GradNormSearch"]

_RANGE_FIX = "alpha must be a range {low, high} with 0 <= low < high"
_GRID_FIX = "for search: grid give a non-empty list of alphas >= 0, e.g. [0, 0.5, 1, 1.5]"
_NUM_TRIALS_MISSING = "give how many alphas Optuna tries, e.g. 'num_trials: 8'"
_LR_FIX = "give one learning rate > 0 (e.g. 0.025), or a range {low: 0.005, high: 0.2} with search: optuna"


def initial_loss_rules() -> tuple[str, ...]:
    """The rules for GradNorm's L_i(0), as :mod:`gradnorm_core` names them."""
    from gradnorm_core import INITIAL_LOSS_RULES

    return tuple(INITIAL_LOSS_RULES)


class AlphaRange(Range):
    """The alphas Optuna draws from: ``low <= alpha <= high``."""

    KEY_NOUN: ClassVar[str] = "alpha range key"
    SHAPE_FIX: ClassVar[str] = "write it as a range {low: 0.0, high: 3.0} (for search: optuna)"

    low: Annotated[float, Fix(_RANGE_FIX, missing="give e.g. 'low: 0.0'")] = Field(ge=0)
    high: Annotated[float, Fix(_RANGE_FIX, missing="give e.g. 'high: 3.0'")] = Field(ge=0)


class GradNormSearch(SearchType):
    """GradNorm trials over alpha.

    ``search: optuna`` (the default for a range): ``alpha`` is a range, ``num_trials`` alphas
    drawn by Optuna's TPE sampler. ``search: grid`` (the default for a list): one trial per alpha
    of the list. Optional ``optimizer`` of the task weights.

    ``weight_lr``, the task weights' learning rate: one number, or (search: optuna) a range
    ``{low, high}`` that Optuna searches log-uniform together with alpha. ``initial_losses``, the
    rule for L_i(0) (``first_step``, the paper's default, or ``chance``: the loss of the best
    constant prediction, the paper's footnote for losses that depend sharply on the
    initialisation): one rule, or a list of rules that Optuna chooses among (search: optuna) or
    that multiplies the alpha grid (search: grid). With the network's ``lr`` searched (a range,
    search: optuna; see :class:`~sweeps.searches.base.SearchType`) Optuna draws it jointly with the
    rest: the search space has at most four dimensions whatever the number of tasks.
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
    weight_lr: Annotated[float | LearningRateRange | None, Fix(_LR_FIX)] = None
    initial_losses: Annotated[str | list[str] | None, Fix(noun="initial loss rule")] = None
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

    @field_validator("weight_lr", mode="wrap")
    @classmethod
    def _weight_lr(cls, value: Any, handler: Any, info: ValidationInfo) -> float | LearningRateRange | None:
        """A number > 0, or a range (search: optuna only)."""
        if value is None or isinstance(value, LearningRateRange):
            return value
        if isinstance(value, dict):
            if info.data.get("search") == "grid":
                raise problem("a range is for search: optuna", "give one learning rate > 0 (e.g. 0.025)")
            return LearningRateRange.model_validate(value, context=info.context)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise problem(f"must be > 0 (a number) or a range, got {value!r}", _LR_FIX)
        return float(value)

    @field_validator("initial_losses", mode="before")
    @classmethod
    def _initial_losses(cls, value: Any) -> Any:
        """One rule or a non-empty list of distinct rules."""
        if value is None:
            return None
        rules = initial_loss_rules()
        fix = f"give one of {', '.join(rules)}, or a list of them to search"
        values = value if isinstance(value, list) else [value]
        if not values:
            raise problem("the list is empty", fix)
        for i, rule in enumerate(values):
            at = (i,) if isinstance(value, list) else ()
            if rule not in rules:
                raise problem(f"unknown initial loss rule {rule!r}", f"{did_you_mean(rule, rules)}{fix}", at)
            if rule in values[:i]:
                raise problem(f"{rule!r} is listed twice", "list each rule once", at)
        return value

    def space(self) -> str:
        return GRID if self.search == "grid" else OPTUNA

    def grid_lr_fix(self) -> str:
        return "give lr as a list of rates (a grid dimension), or use search: optuna with an alpha range"

    def num_trials_fix(self) -> str:
        return _NUM_TRIALS_MISSING

    @property
    def options(self) -> dict[str, Any]:
        return super().options | {"num_trials": self.config_count(0)}

    @property
    def _rules(self) -> list[str]:
        """The initial-loss rules to try (empty: GradNorm's default, the first step)."""
        rules = self.initial_losses
        return [] if rules is None else list(rules) if isinstance(rules, list) else [rules]

    def balancer_options(self) -> dict[str, Any]:
        options = own_optimizer(self.weight_lr if isinstance(self.weight_lr, float) else None, self.optimizer)
        if len(self._rules) == 1:
            options["initial_losses"] = self._rules[0]
        return options

    def own_points(self, num_tasks: int, seed: int) -> list[dict[str, Any]]:
        assert isinstance(self.alpha, list)  # search: grid
        if len(self._rules) > 1:
            return [{"alpha": alpha, "initial_losses": rule} for alpha in self.alpha for rule in self._rules]
        return [{"alpha": alpha} for alpha in self.alpha]

    def own_first(self, num_tasks: int) -> dict[str, Any]:
        """The first listed point, or (search: optuna) the low end of each range and the L(0)
        rule that asks the most of the problem."""
        if isinstance(self.alpha, list):
            return super().own_first(num_tasks)
        point: dict[str, Any] = {"alpha": self.alpha.low}
        if isinstance(self.weight_lr, LearningRateRange):
            point["weight_lr"] = self.weight_lr.low
        if len(self._rules) > 1:  # the rule that asks the most of the problem: the latest in gradnorm_core's list
            point["initial_losses"] = max(self._rules, key=initial_loss_rules().index)
        return point

    def point_balancer(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """A point's ``alpha`` and ``initial_losses`` as they are; its ``weight_lr`` (the spec's
        word) is GradNorm's ``lr``, the learning rate of its weights."""
        options = dict(point)
        if "weight_lr" in options:
            options["lr"] = options.pop("weight_lr")
        return options

    def own_space(self, num_tasks: int) -> dict[str, Any]:
        """Alpha (uniform), with a range ``weight_lr`` (log-uniform) and several L(0) rules, for
        ``search: optuna``; the base class adds a range network ``lr``."""
        from ray import tune

        assert isinstance(self.alpha, AlphaRange)

        space: dict[str, Any] = {"alpha": tune.uniform(self.alpha.low, self.alpha.high)}
        if isinstance(self.weight_lr, LearningRateRange):
            space["weight_lr"] = tune.loguniform(self.weight_lr.low, self.weight_lr.high)
        if len(self._rules) > 1:
            space["initial_losses"] = tune.choice(self._rules)
        return space

    def own_label(self, config: TrialConfig) -> str:
        """``alpha=1.3``, then what else the search varies: ``weight_lr=0.031``, ``L0=chance``."""
        options = config.balancer.options
        if options.get("alpha") is None:
            return "-"
        parts = [f"alpha={options['alpha']:.4g}"]
        if isinstance(self.weight_lr, LearningRateRange) and "lr" in options:
            parts.append(f"weight_lr={options['lr']:.3g}")
        if len(self._rules) > 1 and "initial_losses" in options:
            parts.append(f"L0={options['initial_losses']}")
        return ", ".join(parts)
