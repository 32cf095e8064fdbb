"""``cagrad``: CAGrad (Liu et al., NeurIPS 2021), TorchJD's weighting of the task Jacobian."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from ..validation import Fix
from .jacobian import JacobianSearch

__all__ = ["CagradSearch"]


class CagradSearch(JacobianSearch):
    """One configuration; optional ``jacobian`` (see :class:`~.jacobian.JacobianSearch`) and ``c``,
    the radius of CAGrad's ball around the mean gradient relative to its norm (left out: 0.4)."""

    method: ClassVar[str] = "cagrad"

    type: Literal["cagrad"] = "cagrad"
    c: Annotated[float | None, Fix("give CAGrad's c, >= 0 (0: the mean gradient; e.g. 0.4)")] = Field(None, ge=0)
