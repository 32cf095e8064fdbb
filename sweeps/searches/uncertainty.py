"""``uncertainty``: uncertainty weighting (Kendall, Gal & Cipolla, 2018)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from .base import Optimizer, SearchType, learning_rate, own_optimizer

__all__ = ["UncertaintySearch"]


class UncertaintySearch(SearchType):
    """One configuration; optional ``weight_lr`` and ``optimizer`` of the learned log-variances.
    Each task's kind (regression or classification, which sets its factor) comes from the
    problem (``Problem.task_kinds()``), filled in by the trial itself."""

    method: ClassVar[str] = "uncertainty"

    type: Literal["uncertainty"] = "uncertainty"
    weight_lr: Annotated[float | None, learning_rate("the log-variances' learning rate")] = Field(None, gt=0)
    optimizer: Optimizer = None

    def balancer_options(self) -> dict[str, Any]:
        return own_optimizer(self.weight_lr, self.optimizer)
