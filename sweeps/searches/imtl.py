"""``imtl``: hybrid IMTL (Liu et al., ICLR 2021), IMTL-G's closed form at the shared
representation on IMTL-L's learned loss scales, as LibMTL runs it."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from .base import Optimizer, SearchType, learning_rate, own_optimizer

__all__ = ["ImtlSearch"]


class ImtlSearch(SearchType):
    """One configuration; optional ``weight_lr`` and ``optimizer`` of the learned log-scales."""

    method: ClassVar[str] = "imtl"

    type: Literal["imtl"] = "imtl"
    weight_lr: Annotated[float | None, learning_rate("the log-scales' learning rate")] = Field(None, gt=0)
    optimizer: Optimizer = None

    def balancer_options(self) -> dict[str, Any]:
        return own_optimizer(self.weight_lr, self.optimizer)
