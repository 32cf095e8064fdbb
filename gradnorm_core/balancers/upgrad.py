"""UPGrad, the dual-cone projection of Jacobian descent (Quinton & Rey, 2024), on TorchJD's
``UPGradWeighting`` with its quadprog projector; and what it shares with DualProj."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .base import check_positive
from .jacobian import Jacobian, JacobianBalancer
from .registry import register


class DualConeMethod(JacobianBalancer):
    """A method that projects onto the dual cone of the task gradients; ``norm_eps`` and ``reg_eps``
    are those of TorchJD's ``QuadprogProjector``: the Gramian is divided by its norm (when above
    ``norm_eps``) and ``reg_eps`` added to its diagonal before the quadratic programs are solved."""

    def __init__(self, num_tasks: int, params: Iterable[torch.Tensor], jacobian: Jacobian = "parameters",
                 norm_eps: float = 0.0001, reg_eps: float = 0.0001) -> None:
        super().__init__(num_tasks, params, jacobian)
        self.norm_eps = check_positive("norm_eps", norm_eps, allow_zero=True)
        self.reg_eps = check_positive("reg_eps", reg_eps, allow_zero=True)
        from torchjd.linalg import QuadprogProjector

        self._projector = QuadprogProjector(norm_eps=self.norm_eps, reg_eps=self.reg_eps)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "norm_eps": self.norm_eps, "reg_eps": self.reg_eps}


@register("upgrad")
class UPGrad(DualConeMethod):
    r"""UPGrad (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024; TorchJD's
    ``UPGradWeighting``): each task gradient is projected onto the dual cone of all of them (the
    directions that increase no task's loss), and the projections are averaged:

    .. math::  g = \frac{1}{T} \sum_{t} \pi_J(J_t), \qquad
               \pi_J(J^\top u) = J^\top v^*, \quad v^* = \arg\min_{v \ge u} v^\top (J J^\top) v,

    one quadratic program on the Gramian per task (quadprog), so :math:`w = \sum_t v^*(e_t / T)`.
    A non-conflicting Jacobian gives the mean of the gradients; the weights are :math:`\ge 1/T`.

    ``jacobian="parameters"`` (default) takes :math:`J` on the trunk's parameters (T backward passes
    per step, batched); ``"representation"`` on the trunk's output (one backward pass). Per step it
    also solves T quadratic programs of size T. Options ``norm_eps`` and ``reg_eps`` (the
    projector's); everything else is :class:`~.jacobian.JacobianBalancer`'s.
    """

    def _gramian_weighting(self) -> Any:
        from torchjd.aggregation import UPGradWeighting

        return UPGradWeighting(projector=self._projector)
