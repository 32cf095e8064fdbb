"""``upgrad``: UPGrad (Quinton & Rey, 2024), TorchJD's weighting of the task Jacobian."""

from __future__ import annotations

from typing import ClassVar, Literal

from .jacobian import JacobianSearch

__all__ = ["UpgradSearch"]


class UpgradSearch(JacobianSearch):
    """One configuration; optional ``jacobian`` (see :class:`~.jacobian.JacobianSearch`)."""

    method: ClassVar[str] = "upgrad"

    type: Literal["upgrad"] = "upgrad"
