"""Random loss weighting, RLW (Lin et al., 2022): task weights drawn each step, as TorchJD's
``RandomWeighting`` draws them, from the balancer's own seeded stream."""

from __future__ import annotations

from typing import Any

import torch

from .base import Balancer
from .jacobian import RandomStream
from .registry import register


@register("rlw")
class RandomLossWeighting(Balancer):
    r"""Random loss weighting (Lin, Ye, Xu, Shi & Zhang, "Reasonable Effectiveness of Random
    Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022): each step draws

    .. math::  w = \mathrm{softmax}(\xi), \quad \xi_t \sim \mathcal N(0, 1) \text{ i.i.d.}, \qquad
               \nabla = \nabla \textstyle\sum_t w_t L_t,

    fresh weights summing to 1 (TorchJD's ``RandomWeighting``, the paper's normal draw). One
    backward pass per step, as equal weights; the weights are drawn on the host in float64.

    The draws come from the balancer's own stream (:class:`~.jacobian.RandomStream`, seeded by
    ``seed``; a trial fills in its training seed): the same seed gives the same weights, a restored
    balancer resumes exactly from ``state_dict``, and the training's own random numbers (its
    dropout, its data order) are left untouched. ``weights`` are those of the last step (in the
    losses' device and dtype, promoted to at least float32; :math:`1/T` each before the first): the
    training loop reads them before each step, so its ``mean_weights`` lag by one step.
    A non-finite loss raises :class:`~.base.NonFiniteLossError` before anything changes (no draw
    is consumed).
    """

    def __init__(self, num_tasks: int, seed: int = 0) -> None:
        super().__init__(num_tasks)
        self._stream = RandomStream(seed)
        self.seed = seed
        from torchjd.aggregation import RandomWeighting

        self._weighting = RandomWeighting()
        self._weights64 = [1.0 / num_tasks] * num_tasks
        self._dtype, self._device = torch.float32, torch.device("cpu")

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        with self._stream.drawing():  # the weighting reads only the number of rows of its matrix
            drawn = self._weighting(torch.zeros(self.num_tasks, 1, dtype=torch.float64))
        dtype = torch.promote_types(losses.dtype, torch.float32)
        (drawn.to(device=losses.device, dtype=dtype) * losses).sum().backward()
        self._weights64 = drawn.tolist()
        self._dtype, self._device = dtype, losses.device
        self.step_count += 1

    @property
    def weights(self) -> torch.Tensor:
        return torch.tensor(self._weights64, dtype=torch.float64).to(device=self._device, dtype=self._dtype)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(seed=self.seed, weights=torch.tensor(self._weights64, dtype=torch.float64),
                     random_state=self._stream.state.clone())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        name = type(self).__name__
        if state.get("num_tasks") == self.num_tasks:  # else the base class says so
            for key in ("seed", "weights", "random_state"):
                if key not in state:
                    raise ValueError(f"state_dict has no {key!r}: pass a state from {name}.state_dict()")
            if state["seed"] != self.seed:
                raise ValueError(f"state_dict is for seed={state['seed']!r}, but this {name} has seed={self.seed!r}; "
                                 "build it with the same seed")
            weights = state["weights"]
            if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (self.num_tasks,):
                raise ValueError(f"state_dict['weights'] must be a tensor of shape ({self.num_tasks},), got "
                                 f"{weights!r}; pass a state from {name}.state_dict()")
        super().load_state_dict(state)
        self._weights64 = state["weights"].double().tolist()
        self._stream.state = state["random_state"].clone()
