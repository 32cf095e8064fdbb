"""``imtl_l``: IMTL-L, learned loss scales alone (Liu et al., 2021): the same dynamics as
uncertainty weighting without Kendall's 1/2 (see :mod:`gradnorm_core.balancers.imtl_l`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import SearchType
from .options import OwnOptimizerOptions

__all__ = ["ImtlLSearch"]


class ImtlLSearch(OwnOptimizerOptions, SearchType):
    """One configuration; optional ``weight_lr`` and ``optimizer`` of the learned log-scales."""

    method: ClassVar[str] = "imtl_l"

    type: Literal["imtl_l"] = "imtl_l"
