"""``dwa``: one trial of Dynamic Weight Average (Liu et al., 2019)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..validation import Fix
from .base import SearchType

__all__ = ["DwaSearch"]


class DwaSearch(SearchType):
    """One trial; optional softmax ``temperature``."""

    method: ClassVar[str] = "dwa"

    type: Literal["dwa"] = "dwa"
    temperature: Annotated[float | None, Fix("give DWA's temperature, > 0 (e.g. 2.0)")] = Field(None, gt=0)

    def balancer_options(self) -> dict[str, Any]:
        return {} if self.temperature is None else {"temperature": self.temperature}
