"""MGDA, the multiple-gradient descent algorithm (Désidéri 2012) as multitask learning runs it
(Sener & Koltun, NeurIPS 2018), on TorchJD's ``MGDAWeighting``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .base import check_positive
from .jacobian import Jacobian, JacobianBalancer, check_count
from .registry import register


@register("mgda")
class MGDA(JacobianBalancer):
    r"""MGDA (Désidéri, "Multiple-gradient descent algorithm (MGDA) for multiobjective optimization",
    C. R. Acad. Sci. 2012; Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization",
    NeurIPS 2018): the trunk's gradient is the minimum-norm point of the convex hull of the task
    gradients,

    .. math::  w = \arg\min_{w \ge 0,\ \sum_t w_t = 1} \Big\lVert \sum_t w_t J_t \Big\rVert^2
               = \arg\min_{w \in \Delta} w^\top (J J^\top) w,

    a direction that decreases every task's loss unless the point is Pareto-stationary (then 0).
    Solved by Frank-Wolfe on the Gramian (Sener & Koltun's Algorithm 2; TorchJD's ``MGDAWeighting``),
    from :math:`w = 1/T`, stopping when the step :math:`\gamma` falls below ``epsilon`` or after
    ``max_iters`` iterations; with two tasks one iteration is the exact line search along the
    segment, :math:`w_1 = \mathrm{clip}\big((J_2 - J_1)\cdot J_2 / \lVert J_1 - J_2\rVert^2, 0, 1\big)`.

    ``jacobian="parameters"`` (default) takes :math:`J` on the trunk's parameters (T backward passes
    per step, batched); ``"representation"`` on the trunk's output, Sener & Koltun's MGDA-UB (one
    backward pass). The weights sum to 1, so the trunk's step is at most that of one task: the
    network's learning rate usually wants to be larger than for equal weights. Everything else is
    :class:`~.jacobian.JacobianBalancer`'s.
    """

    def __init__(self, num_tasks: int, params: Iterable[torch.Tensor], jacobian: Jacobian = "parameters",
                 epsilon: float = 0.001, max_iters: int = 100) -> None:
        super().__init__(num_tasks, params, jacobian)
        self.epsilon = check_positive("epsilon", epsilon)
        self.max_iters = check_count("max_iters", max_iters)
        from torchjd.aggregation import MGDAWeighting

        self._weighting = MGDAWeighting(epsilon=self.epsilon, max_iters=self.max_iters)

    def _gramian_weighting(self) -> Any:
        return self._weighting

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "epsilon": self.epsilon, "max_iters": self.max_iters}
