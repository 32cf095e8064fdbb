"""``famo``: FAMO, Fast Adaptive Multitask Optimization (Liu et al., NeurIPS 2023)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from ..validation import Fix, problem
from .base import SearchType
from .options import learning_rate

__all__ = ["FamoSearch"]


class FamoSearch(SearchType):
    """One configuration; optional ``weight_lr`` and ``weight_decay`` of the learned task logits,
    and ``update``: ``same_batch`` (the default, the public code's timing: the logits learn from
    the losses re-evaluated on the same batch after the step) or ``next_batch`` (from the next
    batch's losses, a variant no published result uses)."""

    method: ClassVar[str] = "famo"

    type: Literal["famo"] = "famo"
    weight_lr: Annotated[float | None, learning_rate("the task logits' learning rate")] = Field(None, gt=0)
    weight_decay: Annotated[
        float | None, Fix("give the task logits' weight decay (FAMO's gamma), >= 0 (e.g. 0.001)")
    ] = Field(None, ge=0)
    update: Annotated[str | None, Fix("give one of same_batch, next_batch")] = None

    @field_validator("update")
    @classmethod
    def _update(cls, value: str | None) -> str | None:
        """One of the timings FAMO's balancer takes (its constructor is the one list of them)."""
        if value is None:
            return None
        from gradnorm_core import BalancerOptionError, check_balancer_options

        try:
            check_balancer_options(cls.method, {"update": value})
        except BalancerOptionError as error:
            raise problem(f"unknown FAMO update {value!r}", error.fix) from None
        return value

    def balancer_options(self) -> dict[str, Any]:
        options = (("lr", self.weight_lr), ("weight_decay", self.weight_decay), ("update", self.update))
        return {key: value for key, value in options if value is not None}
