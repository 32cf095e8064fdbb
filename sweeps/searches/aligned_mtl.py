"""``aligned_mtl``: Aligned-MTL (Senushkin et al., CVPR 2023), TorchJD's weighting of the task Jacobian."""

from __future__ import annotations

from typing import ClassVar, Literal

from .jacobian import JacobianSearch

__all__ = ["AlignedMtlSearch"]


class AlignedMtlSearch(JacobianSearch):
    """One configuration; optional ``jacobian`` (see :class:`~.jacobian.JacobianSearch`)."""

    method: ClassVar[str] = "aligned_mtl"

    type: Literal["aligned_mtl"] = "aligned_mtl"
