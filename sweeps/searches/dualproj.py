"""``dualproj``: DualProj (Quinton & Rey, 2024), TorchJD's weighting of the task Jacobian."""

from __future__ import annotations

from typing import ClassVar, Literal

from .jacobian import JacobianSearch

__all__ = ["DualprojSearch"]


class DualprojSearch(JacobianSearch):
    """One configuration; optional ``jacobian`` (see :class:`~.jacobian.JacobianSearch`)."""

    method: ClassVar[str] = "dualproj"

    type: Literal["dualproj"] = "dualproj"
