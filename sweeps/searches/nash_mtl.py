"""``nash_mtl``: Nash-MTL (Navon et al., ICML 2022), TorchJD's aggregator of the task Jacobian."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from ..validation import Fix
from .jacobian import JacobianSearch

__all__ = ["NashMtlSearch"]


class NashMtlSearch(JacobianSearch):
    """One configuration; optional ``jacobian`` (see :class:`~.jacobian.JacobianSearch`),
    ``update_weights_every`` (solve for the weights every this many steps, reusing them in between;
    left out: 1) and ``max_norm`` (the largest norm of the update; 0 turns the clipping off; left
    out: 1.0)."""

    method: ClassVar[str] = "nash_mtl"

    type: Literal["nash_mtl"] = "nash_mtl"
    update_weights_every: Annotated[
        int | None, Fix("give how many steps Nash-MTL keeps its weights, a whole number >= 1 (e.g. 1)")
    ] = Field(None, ge=1)
    max_norm: Annotated[
        float | None, Fix("give the largest norm of Nash-MTL's update, >= 0 (0: no clipping; e.g. 1.0)")
    ] = Field(None, ge=0)
