"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019)."""

from __future__ import annotations

from typing import Any

import torch

from .base import Balancer, check_positive
from .registry import register


@register("dwa")
class DynamicWeightAverage(Balancer):
    r"""Task weights from the rate at which each task's loss fell (Liu, Johns & Davison, CVPR 2019).

    For epoch :math:`t` and :math:`T` tasks, with temperature :math:`\tau`:

    .. math::

        w_i(t) = T \, \frac{\exp(r_i(t-1) / \tau)}{\sum_{j=1}^{T} \exp(r_j(t-1) / \tau)},
        \qquad r_i(t-1) = \frac{\bar L_i(t-1)}{\bar L_i(t-2)}

    where :math:`\bar L_i(e)` is the mean of task :math:`i`'s loss over the steps of epoch
    :math:`e`, and :math:`w_i = 1` in the first two epochs (:math:`t = 0, 1`). So
    :math:`\sum_i w_i = T` always. The network's gradient is that of
    :math:`\sum_i w_i(t) L_i`; the weights are constant within an epoch.

    ``backward`` adds the detached losses to the current epoch's sum; ``end_epoch()``, called
    by the training loop after each epoch, closes the epoch (its mean loss per task) and
    recomputes the weights for the next one. Choices the paper leaves open:

    - ``end_epoch()`` after an epoch with no ``backward`` step is ignored: no epoch is
      counted and nothing changes.
    - DWA needs positive losses. If a task's mean over epoch :math:`t-2` is 0, its ratio is
      not finite and ``end_epoch()`` raises ``ValueError`` with everything left unchanged.
    - The epoch means and the weights are computed in float64 on the CPU (once per epoch);
      the per-step sum stays on the losses' device in their dtype (promoted to at least
      float32). ``weights`` returns them in the device/dtype of the last losses (CPU float32
      before the first step).
    """

    def __init__(self, num_tasks: int, temperature: float = 2.0) -> None:
        super().__init__(num_tasks)
        self.temperature = check_positive("temperature", temperature)
        self.epoch_count = 0  # epochs closed by end_epoch()
        self._epoch_means: list[torch.Tensor] = []  # the last two closed epochs, oldest first
        self._epoch_sum: torch.Tensor | None = None
        self._epoch_steps = 0
        self._weights64 = torch.ones(num_tasks, dtype=torch.float64)
        self._weights = torch.ones(num_tasks, dtype=torch.float32)  # as applied to the losses

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        dtype = torch.promote_types(losses.dtype, torch.float32)
        if self._weights.device != losses.device or self._weights.dtype != dtype:
            self._weights = self._weights64.to(device=losses.device, dtype=dtype)
        total = (self._weights * losses).sum()
        total.backward()

        detached = losses.detach().to(dtype)
        if self._epoch_sum is None:
            self._epoch_sum = detached.clone()
        else:
            self._epoch_sum = self._epoch_sum.to(device=losses.device, dtype=dtype) + detached
        self._epoch_steps += 1
        self.step_count += 1

    def end_epoch(self) -> None:
        if self._epoch_steps == 0:
            return
        mean = self._epoch_sum.detach().to(device="cpu", dtype=torch.float64) / self._epoch_steps
        means = (self._epoch_means + [mean])[-2:]
        weights64 = self._weights64
        if len(means) == 2:
            ratio = means[1] / means[0]
            finite = torch.isfinite(ratio)
            if not bool(finite.all()):
                task = int((~finite).nonzero()[0, 0])
                raise ValueError(
                    f"task {task}'s mean loss over epoch {self.epoch_count - 1} was "
                    f"{float(means[0][task])}, so its DWA ratio is not finite; DWA needs task "
                    f"losses > 0 (nothing was changed)"
                )
            weights64 = self.num_tasks * torch.softmax(ratio / self.temperature, dim=0)
        self._epoch_means = means
        self._weights64 = weights64
        self._weights = weights64.to(device=self._weights.device, dtype=self._weights.dtype)
        self._epoch_sum = None
        self._epoch_steps = 0
        self.epoch_count += 1

    @property
    def weights(self) -> torch.Tensor:
        return self._weights.detach().clone()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["temperature"] = self.temperature
        state["epoch_count"] = self.epoch_count
        state["epoch_means"] = [mean.clone() for mean in self._epoch_means]
        epoch_sum = self._epoch_sum
        state["epoch_sum"] = None if epoch_sum is None else epoch_sum.detach().cpu().clone()
        state["epoch_steps"] = self._epoch_steps
        state["weights"] = self._weights64.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        previous_step_count = self.step_count
        super().load_state_dict(state)  # checks num_tasks first, with the shared message
        try:
            self._check_state(state)
        except BaseException:
            self.step_count = previous_step_count
            raise
        self.epoch_count = int(state["epoch_count"])
        self._epoch_means = [
            t.detach().to(device="cpu", dtype=torch.float64).clone() for t in state["epoch_means"]
        ]
        epoch_sum = state["epoch_sum"]
        self._epoch_sum = None if epoch_sum is None else epoch_sum.detach().clone()
        self._epoch_steps = int(state["epoch_steps"])
        self._weights64 = state["weights"].detach().to(device="cpu", dtype=torch.float64).clone()
        self._weights = self._weights64.to(device=self._weights.device, dtype=self._weights.dtype)

    def _check_state(self, state: dict[str, Any]) -> None:
        """Raise a one-line error unless ``state`` is a state of this balancer's configuration."""
        name = type(self).__name__
        keys = ("temperature", "epoch_count", "epoch_means", "epoch_sum", "epoch_steps", "weights")
        for key in keys:
            if key not in state:
                raise ValueError(f"state_dict has no {key!r}: pass a state from {name}.state_dict()")
        if state["temperature"] != self.temperature:
            raise ValueError(
                f"state_dict is for temperature={state['temperature']!r}, but this {name} has "
                f"temperature={self.temperature!r}; build it with the same temperature"
            )
        shape = (self.num_tasks,)
        tensors = list(state["epoch_means"]) + [state["weights"]]
        if state["epoch_sum"] is not None:
            tensors.append(state["epoch_sum"])
        if len(state["epoch_means"]) > 2 or any(
            not isinstance(t, torch.Tensor) or tuple(t.shape) != shape for t in tensors
        ):
            raise ValueError(
                f"state_dict holds tensors that are not of shape {shape} (or more than two "
                f"epoch_means); pass a state from {name}.state_dict()"
            )
