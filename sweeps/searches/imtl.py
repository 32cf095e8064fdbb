"""``imtl``: hybrid IMTL (Liu et al., ICLR 2021), IMTL-G's closed form at the shared
representation on IMTL-L's learned loss scales, as LibMTL runs it."""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import SearchType
from .options import OwnOptimizerOptions

__all__ = ["ImtlSearch"]


class ImtlSearch(OwnOptimizerOptions, SearchType):
    """One configuration; optional ``weight_lr`` and ``optimizer`` of the learned log-scales."""

    method: ClassVar[str] = "imtl"

    type: Literal["imtl"] = "imtl"
