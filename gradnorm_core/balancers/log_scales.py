"""The machinery shared by the methods that learn one log-scale per task with their own optimizer
(uncertainty weighting, IMTL-L, IMTL): the weights are a * exp(sign * s) and s descends the
method's loss."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch

from .base import Balancer, VectorOptimizer, check_positive


class LearnedLogScales(Balancer):
    r"""Learnable per-task log-scales :math:`s_i` (init 0), task weights
    :math:`w_i = a_i e^{\sigma s_i}` with :math:`\sigma = \pm 1` (``SIGN``), per-task factors
    :math:`a_i` (1 unless a subclass sets ``_factors``), and the loss

    .. math::  L_{total} = \sum_{i=1}^{T} \left( a_i e^{\sigma s_i} L_i - \sigma b\, s_i \right)

    with :math:`b` = ``REGULARISER``. Per step, with :math:`s` as it was before the step: (1) the
    network's gradient is that of :math:`\sum_i a_i e^{\sigma s_i} L_i` (the other term does not
    depend on the network); (2) :math:`s` takes one step of its own optimizer (``"adam"`` or
    ``"sgd"``, learning rate ``lr``) on :math:`\partial L_{total} / \partial s_i = \sigma (a_i
    e^{\sigma s_i} L_i - b)`.

    :math:`s` is updated on the host in float64 (O(T) scalar work); ``weights`` and ``s`` follow
    the losses' device and dtype (promoted to at least float32, so half-precision losses get
    float32 weights); before the first step they are on the CPU in float32.
    ``load_state_dict`` refuses a state saved with another ``optimizer``, ``lr`` or options.
    """

    SIGN: ClassVar[int]
    REGULARISER: ClassVar[float] = 1.0
    STATE_KEY: ClassVar[str]  # the name of s in state_dict (and of the subclass's property)

    def __init__(self, num_tasks: int, lr: float = 0.025, optimizer: Literal["adam", "sgd"] = "adam") -> None:
        super().__init__(num_tasks)
        self.lr = check_positive("lr", lr)
        self._optimizer = VectorOptimizer(optimizer, self.lr)
        self.optimizer_name = optimizer
        self._factors = [1.0] * num_tasks
        self._host_s = [0.0] * num_tasks
        self._s = torch.zeros(num_tasks)  # the copy of s on the losses' device and dtype

    def _options(self) -> dict[str, Any]:
        """The options besides ``optimizer`` and ``lr`` that a saved state must match."""
        return {}

    def _place(self, device: torch.device, dtype: torch.dtype) -> None:
        if self._s.device != device or self._s.dtype != dtype:
            self._s = torch.tensor(self._host_s, dtype=dtype, device=device)

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        self._place(losses.device, torch.promote_types(losses.dtype, torch.float32))
        s_old = self._s
        (self._scales(s_old) * losses).sum().backward()
        self._step_scales(losses.detach().tolist())

    def _scales(self, s: torch.Tensor) -> torch.Tensor:
        """:math:`a_i e^{\\sigma s_i}`, on ``s``'s device and dtype."""
        factors = torch.tensor(self._factors, dtype=s.dtype, device=s.device)
        return factors * torch.exp(self.SIGN * s)

    def _step_scales(self, losses: list[float]) -> None:
        """One optimizer step of s on the losses' values; counts the step."""
        sign, b = self.SIGN, self.REGULARISER
        grads = [sign * (a * math.exp(sign * s) * loss - b) for a, s, loss in zip(self._factors, self._host_s, losses)]
        self._host_s = self._optimizer.step(self._host_s, grads)
        self._s = torch.tensor(self._host_s, dtype=self._s.dtype, device=self._s.device)
        self.step_count += 1

    @property
    def weights(self) -> torch.Tensor:
        return self._scales(self._s.detach())

    def _log_scales(self) -> torch.Tensor:
        return self._s.detach().clone()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["optimizer_name"] = self.optimizer_name
        state["lr"] = self.lr
        state.update(self._options())
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
        for needed in ("optimizer_name", "lr", *self._options(), key, "optimizer"):
            if needed not in state:
                raise ValueError(f"state_dict has no {needed!r}: pass a state from {name}.state_dict()")
        ours = {"optimizer": self.optimizer_name, "lr": self.lr, **self._options()}
        theirs = {"optimizer": state["optimizer_name"], "lr": state["lr"], **{k: state[k] for k in self._options()}}
        if theirs != ours:
            settings = lambda options: ", ".join(f"{k}={v!r}" for k, v in options.items())  # noqa: E731
            raise ValueError(
                f"state_dict is for {settings(theirs)}, but this {name} has {settings(ours)}; "
                f"build it with the same ones"
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
