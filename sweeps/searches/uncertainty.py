"""``uncertainty``: uncertainty weighting (Kendall, Gal & Cipolla, 2018)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .base import SearchType
from .options import OwnOptimizerOptions, learning_rate

__all__ = ["UncertaintySearch"]


class UncertaintySearch(OwnOptimizerOptions, SearchType):
    """One configuration; optional ``weight_lr`` and ``optimizer`` of the learned log-variances.
    Each task's kind (regression or classification, which sets its factor) comes from the
    problem (``Problem.task_kinds()``), filled in by the trial itself."""

    method: ClassVar[str] = "uncertainty"

    type: Literal["uncertainty"] = "uncertainty"
    weight_lr: Annotated[float | None, learning_rate("the log-variances' learning rate")] = Field(None, gt=0)
