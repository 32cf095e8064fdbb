"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

from typing import Any

import math

import torch

from .base import Balancer, VectorOptimizer, check_positive


class UncertaintyWeighting(Balancer):
    r"""Task weights from learnable homoscedastic uncertainties (Kendall, Gal & Cipolla, CVPR 2018).

    Each task has a learnable log-variance :math:`s_i = \log \sigma_i^2` (init 0) and

    .. math::  L_{total} = \sum_{i=1}^{T} \left( e^{-s_i} L_i + s_i \right)

    This is the common simplified form used by most reimplementations: the paper's
    :math:`\frac{1}{2\sigma_i^2} L_i + \log \sigma_i` for regression tasks, with the factors
    :math:`\frac{1}{2}` absorbed into :math:`s_i` and applied to every task alike.

    Per step, with :math:`s` as it was before the step:

    1. the network's gradient is that of :math:`\sum_i e^{-s_i} L_i`;
    2. :math:`s` takes one step of its own optimizer (``"adam"`` or ``"sgd"``, learning rate
       ``lr``) on :math:`\partial L_{total} / \partial s_i = 1 - e^{-s_i} L_i`.

    ``weights`` is :math:`e^{-s}`; ``log_variances`` is :math:`s`. Both are detached copies.

    :math:`s` is updated on the host in float64; ``weights`` and ``log_variances`` follow the
    losses' device and dtype (promoted to at least float32, so half-precision losses get float32
    weights); before the first step they are on the CPU in float32. ``load_state_dict`` refuses
    a state saved with another ``optimizer`` or ``lr``.
    """

    def __init__(self, num_tasks: int, lr: float = 0.025, optimizer: str = "adam") -> None:
        super().__init__(num_tasks)
        self.lr = check_positive("lr", lr)
        self._optimizer = VectorOptimizer(optimizer, self.lr)
        self.optimizer_name = optimizer
        # s lives on the host as float64 (its update is O(T) scalar work); `_log_variances` is
        # its copy on the losses' device and dtype.
        self._host_log_variances = [0.0] * num_tasks
        self._log_variances = torch.zeros(num_tasks)

    def _place(self, device: torch.device, dtype: torch.dtype) -> None:
        """Put the tensor copy of ``s`` on ``device``/``dtype``."""
        s = self._log_variances
        if s.device != device or s.dtype != dtype:
            self._log_variances = torch.tensor(self._host_log_variances, dtype=dtype, device=device)

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        self._place(losses.device, torch.promote_types(losses.dtype, torch.float32))
        s_old = self._log_variances
        precision = torch.exp(-s_old)
        total = (precision * losses).sum() + s_old.sum()
        total.backward()

        grads = [
            1.0 - math.exp(-s) * loss
            for s, loss in zip(self._host_log_variances, losses.detach().tolist())
        ]
        self._host_log_variances = self._optimizer.step(self._host_log_variances, grads)
        self._log_variances = torch.tensor(self._host_log_variances, dtype=s_old.dtype, device=s_old.device)
        self.step_count += 1

    @property
    def log_variances(self) -> torch.Tensor:
        """The current log-variances :math:`s`, a detached 1-D tensor."""
        return self._log_variances.detach().clone()

    @property
    def weights(self) -> torch.Tensor:
        return torch.exp(-self._log_variances.detach())

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["optimizer_name"] = self.optimizer_name
        state["lr"] = self.lr
        state["log_variances"] = torch.tensor(self._host_log_variances, dtype=torch.float64)
        state["optimizer"] = self._optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        previous_step_count = self.step_count
        super().load_state_dict(state)  # checks num_tasks first, with the shared message
        try:
            log_variances, optimizer = self._prepare_load(state)
        except BaseException:
            self.step_count = previous_step_count
            raise
        self._host_log_variances, self._optimizer = log_variances, optimizer
        self._log_variances = torch.tensor(
            log_variances, dtype=self._log_variances.dtype, device=self._log_variances.device
        )

    def _prepare_load(self, state: dict[str, Any]) -> tuple[list[float], VectorOptimizer]:
        """Build ``s`` and its optimizer from ``state`` aside, so a bad state changes nothing."""
        name = type(self).__name__
        for key in ("optimizer_name", "lr", "log_variances", "optimizer"):
            if key not in state:
                raise ValueError(f"state_dict has no {key!r}: pass a state from {name}.state_dict()")
        if state["optimizer_name"] != self.optimizer_name or state["lr"] != self.lr:
            raise ValueError(
                f"state_dict is for optimizer={state['optimizer_name']!r}, lr={state['lr']!r}, but this "
                f"{name} has optimizer={self.optimizer_name!r}, lr={self.lr!r}; build it with the same ones"
            )
        saved = state["log_variances"]
        if not isinstance(saved, torch.Tensor) or tuple(saved.shape) != (self.num_tasks,):
            raise ValueError(
                f"state_dict['log_variances'] must be a tensor of shape ({self.num_tasks},), "
                f"got {saved!r}; pass a state from {name}.state_dict()"
            )
        log_variances = saved.detach().double().tolist()
        optimizer = VectorOptimizer(self.optimizer_name, self.lr)
        optimizer.load_state_dict(state["optimizer"])
        return log_variances, optimizer
