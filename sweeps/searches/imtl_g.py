"""``imtl_g``: IMTL-G alone (Liu et al., ICLR 2021), TorchJD's weighting of the task Jacobian."""

from __future__ import annotations

from typing import ClassVar, Literal

from .jacobian import JacobianSearch

__all__ = ["ImtlGSearch"]


class ImtlGSearch(JacobianSearch):
    """One configuration; optional ``jacobian`` (see :class:`~.jacobian.JacobianSearch`)."""

    method: ClassVar[str] = "imtl_g"

    type: Literal["imtl_g"] = "imtl_g"
