"""PCGrad, gradient surgery (Yu et al., NeurIPS 2020), on TorchJD's ``PCGradWeighting``, its random
task orders drawn from the balancer's own seeded stream."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .jacobian import Jacobian, JacobianBalancer, RandomStream
from .registry import register


@register("pcgrad")
class PCGrad(JacobianBalancer):
    r"""PCGrad (Yu, Kumar, Gupta, Levine, Hausman & Finn, "Gradient Surgery for Multi-Task Learning",
    NeurIPS 2020; TorchJD's ``PCGradWeighting``): each task gradient :math:`J_i` is projected, in a
    random order of the other tasks :math:`j`, onto the normal plane of every :math:`J_j` it conflicts
    with,

    .. math::  g_i^{PC} \leftarrow g_i^{PC} - \frac{g_i^{PC} \cdot J_j}{\lVert J_j \rVert^2} J_j
               \quad \text{if } g_i^{PC} \cdot J_j < 0, \qquad g = \sum_i g_i^{PC},

    all on the Gramian (:math:`g = \sum_t w_t J_t`, the weights :math:`\ge 1` each, :math:`T` in
    all without conflict: the sum, not the mean, as the paper's Algorithm 1).

    The random orders come from the balancer's own stream (:class:`~.jacobian.RandomStream`, seeded
    by ``seed``; a trial fills in its training seed): reproducible, resumed exactly from
    ``state_dict``, and the training's own random numbers untouched. ``jacobian="parameters"``
    (default) takes :math:`J` on the trunk's parameters (T backward passes per step, batched);
    ``"representation"`` on the trunk's output (one backward pass). Everything else is
    :class:`~.jacobian.JacobianBalancer`'s.
    """

    def __init__(self, num_tasks: int, params: Iterable[torch.Tensor], jacobian: Jacobian = "parameters",
                 seed: int = 0) -> None:
        super().__init__(num_tasks, params, jacobian)
        self._stream = RandomStream(seed)
        self.seed = seed
        from torchjd.aggregation import PCGradWeighting

        self._weighting = PCGradWeighting()

    def _weigh(self, jacobian: torch.Tensor) -> torch.Tensor:
        gramian = (jacobian @ jacobian.T).double()
        with self._stream.drawing():
            return self._weighting(gramian)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "seed": self.seed}

    def _extra_state(self) -> dict[str, Any]:
        return {"random_state": self._stream.state.clone()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._stream.state = state["random_state"].clone()
