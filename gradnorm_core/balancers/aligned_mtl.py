"""Aligned-MTL (Senushkin et al., CVPR 2023), on TorchJD's ``AlignedMTLWeighting``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch

from .jacobian import Jacobian, JacobianBalancer
from .registry import register

#: the eigenvalue that scales Aligned-MTL's balance transformation
SCALE_MODES = ("min", "median", "rmse")


@register("aligned_mtl")
class AlignedMTL(JacobianBalancer):
    r"""Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin, "Independent Component Alignment for
    Multi-Task Learning", CVPR 2023; TorchJD's ``AlignedMTLWeighting``): the task gradients are
    aligned into an orthogonal system of equal magnitudes, which makes the linear system of
    gradients as well conditioned as it can be. With the eigendecomposition of the Gramian
    :math:`J J^\top = V \Lambda V^\top` (its :math:`r` positive eigenvalues),

    .. math::  B = \sqrt{\sigma}\, V \Lambda^{-1/2} V^\top, \qquad w = B\, \tfrac{1}{T}\mathbf{1},

    with :math:`\sigma` the smallest positive eigenvalue (``scale_mode="min"``, the paper's), their
    median (``"median"``) or their mean (``"rmse"``, the authors' code). The weights may be negative.

    ``jacobian="parameters"`` (default) takes :math:`J` on the trunk's parameters (T backward passes
    per step, batched); ``"representation"`` on the trunk's output, the paper's Aligned-MTL-UB (one
    backward pass). Everything else is :class:`~.jacobian.JacobianBalancer`'s.
    """

    def __init__(self, num_tasks: int, params: Iterable[torch.Tensor], jacobian: Jacobian = "parameters",
                 scale_mode: Literal["min", "median", "rmse"] = "min") -> None:
        super().__init__(num_tasks, params, jacobian)
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {', '.join(SCALE_MODES)}, got {scale_mode!r}")
        self.scale_mode = scale_mode
        from torchjd.aggregation import AlignedMTLWeighting

        self._weighting = AlignedMTLWeighting(scale_mode=scale_mode)

    def _gramian_weighting(self) -> Any:
        return self._weighting

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "scale_mode": self.scale_mode}
