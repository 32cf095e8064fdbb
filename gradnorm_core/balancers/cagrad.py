"""CAGrad, conflict-averse gradient descent (Liu et al., NeurIPS 2021), on TorchJD's
``CAGradWeighting`` (cvxpy)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .base import check_positive
from .jacobian import Jacobian, JacobianBalancer
from .registry import register


@register("cagrad")
class CAGrad(JacobianBalancer):
    r"""CAGrad (Liu, Liu, Jin, Stone & Liu, "Conflict-Averse Gradient Descent for Multi-task Learning",
    NeurIPS 2021; TorchJD's ``CAGradWeighting``): the update that maximises the worst task's local
    improvement within a ball around the mean gradient :math:`g_0 = \frac1T \sum_t J_t`,

    .. math::  \max_{d} \min_t \langle J_t, d \rangle \ \text{ s.t. } \lVert d - g_0 \rVert \le c \lVert g_0 \rVert,

    solved in its dual over the simplex, :math:`w^* = \arg\min_{w \in \Delta} g_w^\top g_0 + \sqrt\phi
    \lVert g_w \rVert` with :math:`g_w = \sum_t w_t J_t` and :math:`\sqrt\phi = c \lVert g_0 \rVert`,
    then :math:`d = g_0 + \sqrt\phi\, g_{w^*} / \lVert g_{w^*} \rVert`, i.e. the weights
    :math:`1/T + \sqrt\phi\, w^*_t / \lVert g_{w^*} \rVert`. All on the Gramian (normalised by its
    norm when above ``norm_eps``), the convex program solved by cvxpy's CLARABEL solver. ``c`` = 0
    is the mean gradient; larger ``c`` moves toward MGDA. Default ``c`` 0.4, the paper's value on
    NYU-v2 and CityScapes.

    ``jacobian="parameters"`` (default) takes :math:`J` on the trunk's parameters (T backward passes
    per step, batched); ``"representation"`` on the trunk's output (one backward pass). Per step it
    also solves one small convex program (cvxpy), which the step-overhead bench measures.
    Everything else is :class:`~.jacobian.JacobianBalancer`'s.
    """

    def __init__(self, num_tasks: int, params: Iterable[torch.Tensor], jacobian: Jacobian = "parameters",
                 c: float = 0.4, norm_eps: float = 0.0001) -> None:
        super().__init__(num_tasks, params, jacobian)
        self.c = check_positive("c", c, allow_zero=True)
        self.norm_eps = check_positive("norm_eps", norm_eps, allow_zero=True)
        from torchjd.aggregation import CAGradWeighting

        self._weighting = CAGradWeighting(c=self.c, norm_eps=self.norm_eps)

    def _gramian_weighting(self) -> Any:
        return self._weighting

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "c": self.c, "norm_eps": self.norm_eps}
