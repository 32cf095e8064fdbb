"""Fixed task weights: the baseline every adaptive method is compared against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .base import Balancer, check_numbers
from .registry import register


@register("static")
class StaticWeights(Balancer):
    r"""Fixed, user-given task weights.

    The network's gradient is that of

    .. math::  L_{total} = \sum_{i=1}^{T} w_i L_i

    with :math:`w_i` the constructor's ``weights``, never changed (``T = len(weights)``).
    Each :math:`w_i` must be finite and :math:`\ge 0`, and at least one must be :math:`> 0`.
    The weights are not renormalised.

    The weights are applied in the losses' device and dtype (promoted to at least float32),
    built from the Python floats given, so float64 losses see the exact float64 weights.
    ``weights`` returns them in the device/dtype of the last losses (CPU float32 before the
    first step). ``load_state_dict`` refuses a state saved with other weights.
    """

    @classmethod
    def build(cls, num_tasks: int, model: Any = None, shared_layer: str | None = None, *,
              weights: Sequence[float]) -> StaticWeights:
        """Static weights for ``num_tasks`` tasks: ``weights`` must hold one per task."""
        if not hasattr(weights, "__len__") or len(weights) != num_tasks:
            raise ValueError(f"weights must hold {num_tasks} numbers, one per task, got {weights!r}")
        return cls(weights)

    def __init__(self, weights: Sequence[float]) -> None:
        values = check_numbers("weights", weights, minimum=0.0)
        if not any(value > 0 for value in values):
            raise ValueError(f"weights must have at least one entry > 0 (all zero would train nothing), got {values}")
        super().__init__(len(values))
        self._values = values
        self._weights = torch.tensor(values, dtype=torch.float32)

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        dtype = torch.promote_types(losses.dtype, torch.float32)
        if self._weights.device != losses.device or self._weights.dtype != dtype:
            self._weights = torch.tensor(self._values, dtype=dtype, device=losses.device)
        total = (self._weights * losses).sum()
        total.backward()
        self.step_count += 1

    @property
    def weights(self) -> torch.Tensor:
        return self._weights.detach().clone()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["weights"] = list(self._values)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        previous_step_count = self.step_count
        super().load_state_dict(state)  # checks num_tasks first, with the shared message
        saved = state.get("weights")
        try:
            same = saved is not None and [float(v) for v in saved] == self._values
        except (TypeError, ValueError):
            same = False
        if not same:
            self.step_count = previous_step_count
            raise ValueError(
                f"state_dict has weights={saved!r}, but this {type(self).__name__} has "
                f"weights={self._values}; build it with the same weights"
            )


@register("equal")
class EqualWeights(StaticWeights):
    r"""All tasks weighted alike: :math:`L_{total} = \sum_{i=1}^{T} L_i`.

    The special case of :class:`StaticWeights` with :math:`w_i = 1` for every task.
    """

    @classmethod
    def build(cls, num_tasks: int, model: Any = None, shared_layer: str | None = None) -> EqualWeights:
        return cls(num_tasks)

    def __init__(self, num_tasks: int) -> None:
        Balancer.__init__(self, num_tasks)  # validates num_tasks with the shared message
        super().__init__([1.0] * num_tasks)
