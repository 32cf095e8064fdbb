"""``famo``: one trial of FAMO, Fast Adaptive Multitask Optimization (Liu et al., 2023)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..validation import Fix
from .base import SearchType, learning_rate

__all__ = ["FamoSearch"]


class FamoSearch(SearchType):
    """One trial; optional ``lr`` and ``weight_decay`` of the learned task logits."""

    method: ClassVar[str] = "famo"

    type: Literal["famo"] = "famo"
    lr: Annotated[float | None, learning_rate("the task logits' learning rate")] = Field(None, gt=0)
    weight_decay: Annotated[
        float | None, Fix("give the task logits' weight decay (FAMO's gamma), >= 0 (e.g. 0.001)")
    ] = Field(None, ge=0)

    def balancer_options(self) -> dict[str, Any]:
        options = (("lr", self.lr), ("weight_decay", self.weight_decay))
        return {key: value for key, value in options if value is not None}
