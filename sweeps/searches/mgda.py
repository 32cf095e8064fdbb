"""``mgda``: MGDA (Sener & Koltun, NeurIPS 2018), TorchJD's weighting of the task Jacobian."""

from __future__ import annotations

from typing import ClassVar, Literal

from .jacobian import JacobianSearch

__all__ = ["MgdaSearch"]


class MgdaSearch(JacobianSearch):
    """One configuration; optional ``jacobian`` (see :class:`~.jacobian.JacobianSearch`)."""

    method: ClassVar[str] = "mgda"

    type: Literal["mgda"] = "mgda"
