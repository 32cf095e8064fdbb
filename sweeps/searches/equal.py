"""``equal``: one trial with every task weight 1 (the baseline)."""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import SearchType

__all__ = ["EqualSearch"]


class EqualSearch(SearchType):
    """One trial, all weights equal. No options."""

    method: ClassVar[str] = "equal"

    type: Literal["equal"] = "equal"
