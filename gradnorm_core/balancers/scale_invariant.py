"""Scale-invariant (log) loss: minimise the sum of the tasks' log-losses."""

from __future__ import annotations

from typing import Any

import torch

from .base import Balancer
from .registry import register


@register("scale_invariant")
class ScaleInvariant(Balancer):
    r"""Minimise the sum of log-losses, the "scale-invariant" baseline of Nash-MTL (Navon et al.,
    2022) and FAMO (Liu et al., 2023; ``scaleinvls`` in its code).

    .. math::

        L_{total} = \sum_{i=1}^{T} \log L_i, \qquad
        \nabla_\theta L_{total} = \sum_{i=1}^{T} \frac{1}{L_i} \nabla_\theta L_i

    Multiplying a task's loss by a constant :math:`c > 0` adds :math:`\log c` to
    :math:`L_{total}` and leaves the gradient unchanged, hence the name. The method is the
    weighted sum :math:`\sum_i w_i L_i` with :math:`w_i = 1 / L_i`, the :math:`L_i` in
    :math:`w_i` detached (this step's losses); that is how it is computed, and it is exactly the
    gradient of :math:`\sum_i \log L_i`. It has no options and no learned state.

    Choices the papers leave open:

    - ``weights`` are the raw :math:`w_i = 1 / L_i` of the last step, not renormalised (so
      ``weights * losses`` is 1 for every task, and the weights are the gradient coefficients
      actually applied); before the first step they are ones. The training loop reads
      ``weights`` *before* each step, so its ``mean_weights`` lag by one step for this method
      (the weights of a step depend on that step's losses).
    - :math:`\log L_i` needs :math:`L_i > 0`. A loss :math:`\le 0` (or so small that
      :math:`1 / L_i` overflows the losses' dtype) raises a one-line ``ValueError`` naming the
      task, with nothing changed: no gradient, no step counted. No :math:`\epsilon` is added to
      the losses (FAMO's ``scaleinvls`` adds none either; its ``log_*`` variants add 1e-8).
    - The weights are computed in the losses' device and dtype, promoted to at least float32;
      ``weights`` follows them (CPU float32 before the first step).
    """

    def __init__(self, num_tasks: int) -> None:
        super().__init__(num_tasks)
        self._weights = torch.ones(num_tasks)

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        detached = losses.detach().to(torch.promote_types(losses.dtype, torch.float32))
        weights = detached.reciprocal()
        usable = (detached > 0) & torch.isfinite(weights)
        if not bool(usable.all()):  # one host sync for both checks
            task = int((~usable).nonzero()[0, 0])
            value = float(detached[task])
            reason = (
                "is not > 0: the scale_invariant method minimises sum_i log L_i and needs positive losses"
                if value <= 0
                else f"is so small that 1/L overflows {detached.dtype}"
            )
            raise ValueError(
                f"losses[{task}] is {value} at step {self.step_count}: task {task}'s loss {reason}; "
                f"the balancer's state is unchanged"
            )
        (weights * losses).sum().backward()
        self._weights = weights
        self.step_count += 1

    @property
    def weights(self) -> torch.Tensor:
        return self._weights.detach().clone()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["weights"] = self._weights.detach().cpu().clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        name = type(self).__name__
        saved = state.get("weights")
        previous_step_count = self.step_count
        super().load_state_dict(state)  # checks num_tasks first, with the shared message
        if not isinstance(saved, torch.Tensor) or tuple(saved.shape) != (self.num_tasks,):
            self.step_count = previous_step_count
            raise ValueError(
                f"state_dict['weights'] must be a tensor of shape ({self.num_tasks},), got {saved!r}; "
                f"pass a state from {name}.state_dict()"
            )
        device = self._weights.device
        self._weights = saved.detach().to(device).clone()
