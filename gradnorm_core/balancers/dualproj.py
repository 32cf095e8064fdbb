"""DualProj, the mean gradient projected onto the dual cone of the task gradients (GEM's projection,
Lopez-Paz & Ranzato 2017, as Jacobian descent runs it), on TorchJD's ``DualProjWeighting``."""

from __future__ import annotations

from typing import Any

from .registry import register
from .upgrad import DualConeMethod


@register("dualproj")
class DualProj(DualConeMethod):
    r"""DualProj (the projection of Lopez-Paz & Ranzato's GEM, "Gradient Episodic Memory for
    Continual Learning", NeurIPS 2017, eq. 11, as Jacobian descent runs it; Quinton & Rey 2024;
    TorchJD's ``DualProjWeighting``): the mean gradient projected onto the dual cone of the task
    gradients,

    .. math::  g = \pi_J\Big(\frac{1}{T} \sum_t J_t\Big) = J^\top v^*, \qquad
               v^* = \arg\min_{v \ge \mathbf{1}/T} v^\top (J J^\top) v,

    one quadratic program of size T per step. The weights are :math:`\ge 1/T`.

    ``jacobian="parameters"`` (default) takes :math:`J` on the trunk's parameters (T backward passes
    per step, batched); ``"representation"`` on the trunk's output (one backward pass). Options
    ``norm_eps`` and ``reg_eps`` (the projector's); everything else is
    :class:`~.jacobian.JacobianBalancer`'s.
    """

    def _gramian_weighting(self) -> Any:
        from torchjd.aggregation import DualProjWeighting

        return DualProjWeighting(projector=self._projector)
