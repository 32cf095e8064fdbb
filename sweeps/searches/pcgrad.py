"""``pcgrad``: PCGrad (Yu et al., NeurIPS 2020), TorchJD's weighting of the task Jacobian."""

from __future__ import annotations

from typing import ClassVar, Literal

from .jacobian import JacobianSearch

__all__ = ["PcgradSearch"]


class PcgradSearch(JacobianSearch):
    """One configuration; optional ``jacobian`` (see :class:`~.jacobian.JacobianSearch`). The random
    orders of the projections are seeded by each trial's training seed."""

    method: ClassVar[str] = "pcgrad"

    type: Literal["pcgrad"] = "pcgrad"
