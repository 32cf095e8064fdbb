"""The machinery shared by the methods that learn one log-scale per task with their own optimizer
(uncertainty weighting, IMTL-L): the weights are exp(sign * s) and s descends the method's loss."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from .base import Balancer, VectorOptimizer, check_positive


class LearnedLogScales(Balancer):
    r"""Learnable per-task log-scales :math:`s_i` (init 0), task weights
    :math:`w_i = e^{\sigma s_i}` with :math:`\sigma = \pm 1` (``SIGN``), and the loss

    .. math::  L_{total} = \sum_{i=1}^{T} \left( e^{\sigma s_i} L_i - \sigma s_i \right)

    Per step, with :math:`s` as it was before the step: (1) the network's gradient is that of
    :math:`\sum_i e^{\sigma s_i} L_i` (the other term does not depend on the network); (2)
    :math:`s` takes one step of its own optimizer (``"adam"`` or ``"sgd"``, learning rate
    ``lr``) on :math:`\partial L_{total} / \partial s_i = \sigma (e^{\sigma s_i} L_i - 1)`.

    :math:`s` is updated on the host in float64 (O(T) scalar work); ``weights`` and ``s`` follow
    the losses' device and dtype (promoted to at least float32, so half-precision losses get
    float32 weights); before the first step they are on the CPU in float32.
    ``load_state_dict`` refuses a state saved with another ``optimizer`` or ``lr``.
    """

    SIGN: ClassVar[int]
    STATE_KEY: ClassVar[str]  # the name of s in state_dict (and of the subclass's property)

    def __init__(self, num_tasks: int, lr: float = 0.025, optimizer: str = "adam") -> None:
        super().__init__(num_tasks)
        self.lr = check_positive("lr", lr)
        self._optimizer = VectorOptimizer(optimizer, self.lr)
        self.optimizer_name = optimizer
        self._host_s = [0.0] * num_tasks
        self._s = torch.zeros(num_tasks)  # the copy of s on the losses' device and dtype

    def _place(self, device: torch.device, dtype: torch.dtype) -> None:
        if self._s.device != device or self._s.dtype != dtype:
            self._s = torch.tensor(self._host_s, dtype=dtype, device=device)

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        self._place(losses.device, torch.promote_types(losses.dtype, torch.float32))
        s_old, sign = self._s, self.SIGN
        (torch.exp(sign * s_old) * losses).sum().backward()
        grads = [sign * (math.exp(sign * s) * loss - 1.0) for s, loss in zip(self._host_s, losses.detach().tolist())]
        self._host_s = self._optimizer.step(self._host_s, grads)
        self._s = torch.tensor(self._host_s, dtype=s_old.dtype, device=s_old.device)
        self.step_count += 1

    @property
    def weights(self) -> torch.Tensor:
        return torch.exp(self.SIGN * self._s.detach())

    def _log_scales(self) -> torch.Tensor:
        return self._s.detach().clone()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["optimizer_name"] = self.optimizer_name
        state["lr"] = self.lr
        state[self.STATE_KEY] = torch.tensor(self._host_s, dtype=torch.float64)
        state["optimizer"] = self._optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        previous_step_count = self.step_count
        super().load_state_dict(state)  # checks num_tasks first, with the shared message
        try:
            s, optimizer = self._prepare_load(state)
        except BaseException:
            self.step_count = previous_step_count
            raise
        self._host_s, self._optimizer = s, optimizer
        self._s = torch.tensor(s, dtype=self._s.dtype, device=self._s.device)

    def _prepare_load(self, state: dict[str, Any]) -> tuple[list[float], VectorOptimizer]:
        """Build ``s`` and its optimizer from ``state`` aside, so a bad state changes nothing."""
        name, key = type(self).__name__, self.STATE_KEY
        for needed in ("optimizer_name", "lr", key, "optimizer"):
            if needed not in state:
                raise ValueError(f"state_dict has no {needed!r}: pass a state from {name}.state_dict()")
        if state["optimizer_name"] != self.optimizer_name or state["lr"] != self.lr:
            raise ValueError(
                f"state_dict is for optimizer={state['optimizer_name']!r}, lr={state['lr']!r}, but this "
                f"{name} has optimizer={self.optimizer_name!r}, lr={self.lr!r}; build it with the same ones"
            )
        saved = state[key]
        if not isinstance(saved, torch.Tensor) or tuple(saved.shape) != (self.num_tasks,):
            raise ValueError(
                f"state_dict[{key!r}] must be a tensor of shape ({self.num_tasks},), "
                f"got {saved!r}; pass a state from {name}.state_dict()"
            )
        optimizer = VectorOptimizer(self.optimizer_name, self.lr)
        optimizer.load_state_dict(state["optimizer"])
        return saved.detach().double().tolist(), optimizer
