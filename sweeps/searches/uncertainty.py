"""``uncertainty``: one trial of uncertainty weighting (Kendall et al., 2018)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from .base import Optimizer, SearchType, learning_rate, own_optimizer

__all__ = ["UncertaintySearch"]


class UncertaintySearch(SearchType):
    """One trial; optional ``lr`` and ``optimizer`` of the learned log-variances."""

    method: ClassVar[str] = "uncertainty"

    type: Literal["uncertainty"] = "uncertainty"
    lr: Annotated[float | None, learning_rate("the log-variances' learning rate")] = Field(None, gt=0)
    optimizer: Optimizer = None

    def balancer_options(self) -> dict[str, Any]:
        return own_optimizer(self.lr, self.optimizer)
