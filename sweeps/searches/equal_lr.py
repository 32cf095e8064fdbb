"""``equal_lr``: equal task weights, with the network's learning rate tuned by Optuna."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..validation import Fix
from .base import LearningRateRange, SearchType, optuna_searcher

if TYPE_CHECKING:
    from trainables import TrialConfig

__all__ = ["EqualLrSearch"]

_SHAPE_FIX = ("write it as a range {low: 0.0001, high: 0.01}; for one learning rate use training.lr "
              "with an equal search")
_NUM_TRIALS_FIX = "give how many learning rates Optuna tries, a whole number >= 1, e.g. 'num_trials: 8'"


class EqualLrSearch(SearchType):
    """Equal weights (every task weight 1, method ``equal``), ``num_trials`` trials with the
    network's learning rate (the sweep's ``training.lr``, overridden per trial) drawn
    log-uniform from ``lr: {low, high}`` by Optuna's TPE sampler, seeded by the sweep's seed.

    The simple baseline that Xin et al. (NeurIPS 2022, "Do Current Multi-Task Optimization
    Methods in Deep Learning Even Help?") and Kurin et al. (NeurIPS 2022, "In Defense of the
    Unitary Scalarization for Deep Multi-Task Learning") found as strong as the balancing methods
    once it is tuned: it gives a balancer's search the same tuning budget to beat. Trials are
    labelled ``lr=0.0012``.
    """

    method: ClassVar[str] = "equal"

    type: Literal["equal_lr"] = "equal_lr"
    lr: Annotated[LearningRateRange, Fix(_SHAPE_FIX, missing="give a range, e.g. 'lr: {low: 0.0001, high: 0.01}'")]
    num_trials: Annotated[int, Fix(_NUM_TRIALS_FIX)] = Field(ge=1)

    def config_count(self, num_tasks: int) -> int:
        return self.num_trials

    def trial_points(self, num_tasks: int, seed: int) -> list[dict[str, Any]] | None:
        return None  # Optuna picks them as results come in

    def searcher(self, seed: int, metric: str, mode: str) -> Any:
        """Optuna's TPE sampler (seeded) over the learning rate, log-uniform."""
        from ray import tune

        return optuna_searcher({"lr": tune.loguniform(self.lr.low, self.lr.high)}, seed, metric, mode)

    def first_point(self, num_tasks: int, seed: int) -> dict[str, Any] | None:
        """The low end of the learning-rate range."""
        return {"lr": self.lr.low}

    def point_balancer(self, point: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def point_training(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The drawn ``lr`` is the network's (``training.lr``)."""
        return {"lr": point["lr"]}

    def label(self, config: TrialConfig) -> str:
        return f"lr={config.training.lr:.4g}"
