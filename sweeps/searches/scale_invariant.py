"""``scale_invariant``: one trial of the scale-invariant (sum of log-losses) baseline."""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import SearchType

__all__ = ["ScaleInvariantSearch"]


class ScaleInvariantSearch(SearchType):
    """One trial minimising sum_i log L_i. No options."""

    method: ClassVar[str] = "scale_invariant"

    type: Literal["scale_invariant"] = "scale_invariant"
