"""``imtl_l``: IMTL-L, learned loss scales alone (Liu et al., 2021): the same dynamics as
uncertainty weighting without Kendall's 1/2 (see :mod:`gradnorm_core.balancers.imtl_l`)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from .base import Optimizer, SearchType, learning_rate, own_optimizer

__all__ = ["ImtlLSearch"]


class ImtlLSearch(SearchType):
    """One configuration; optional ``weight_lr`` and ``optimizer`` of the learned log-scales."""

    method: ClassVar[str] = "imtl_l"

    type: Literal["imtl_l"] = "imtl_l"
    weight_lr: Annotated[float | None, learning_rate("the log-scales' learning rate")] = Field(None, gt=0)
    optimizer: Optimizer = None

    def balancer_options(self) -> dict[str, Any]:
        return own_optimizer(self.weight_lr, self.optimizer)
