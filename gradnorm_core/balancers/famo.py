"""FAMO, Fast Adaptive Multitask Optimization (Liu, Feng, Stone & Liu, NeurIPS 2023)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch

from .base import Balancer, NonFiniteLossError, VectorOptimizer, check_numbers, check_positive
from .registry import register

#: when FAMO's logits learn: from the losses re-evaluated on the same batch after the optimizer's
#: step (the public code), or from the next step's losses on the next batch (no extra forward)
UPDATES = ("same_batch", "next_batch")
Update = Literal["same_batch", "next_batch"]


@register("famo")
class FAMO(Balancer):
    r"""Task weights that make every task's loss fall at the same rate (FAMO; Liu, Feng, Stone
    & Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023), from the losses alone.

    Task logits :math:`\xi` (init 0) give :math:`z = \mathrm{softmax}(\xi)`. With the gaps
    :math:`D_i = \max(L_i - L_i^*, 0) + \epsilon` (:math:`L^*` = ``min_losses``,
    :math:`\epsilon` = ``eps``), the network's gradient is that of
    :math:`c \sum_i z_i \log D_i` with :math:`c` held constant:

    .. math::

        \nabla_\theta = \sum_{i=1}^{T} w_i \nabla_\theta L_i, \qquad
        w_i = \frac{c\, z_i}{D_i}, \qquad c = \Big( \sum_{j=1}^{T} \frac{z_j}{D_j} \Big)^{-1}

    so :math:`\sum_i w_i = 1`: a convex combination of the task gradients (about :math:`1/T` of
    the step of equal weights at the same learning rate, as in the paper and its code). The
    logits learn from how much each log-gap fell, :math:`\delta_i = \log D_i(\text{before}) -
    \log D_i(\text{after})`:

    .. math::

        g_j = \sum_i \delta_i \frac{\partial z_i}{\partial \xi_j} + \gamma \xi_j
            = z_j \Big( \delta_j - \sum_i z_i \delta_i \Big) + \gamma \xi_j

    and :math:`\xi` takes one Adam step (``lr``, betas 0.9/0.999, eps 1e-8) on :math:`g`, with
    :math:`z` that of the step's :math:`\xi`. :math:`\gamma` = ``weight_decay`` is added to the
    gradient before Adam's moments: ``torch.optim.Adam(weight_decay=gamma)`` of the public code
    (L2, not AdamW's decoupled decay). A task whose log-loss fell more gets a lower logit.

    ``update`` says which losses are "after":

    - ``"same_batch"`` (default; the public code, ``Cranial-XIX/FAMO`` and LibMTL): the losses of
      the same batch re-evaluated after the optimizer's step. ``backward(losses)`` fills the
      network's gradient with :math:`w` from :math:`z(\xi_t)`; then, after the step,
      ``after_step(losses_after)`` updates :math:`\xi_t \to \xi_{t+1}`. This costs one more
      forward pass per step, no backward, in training mode as in the public trainers (dropout
      draws new masks; BatchNorm's running statistics see the batch twice).
      ``wants_losses_after_step`` is True, so :class:`~gradnorm_core.training.Training` calls
      it; in your own loop::

          optimizer.zero_grad()
          famo.backward(task_losses(model(x), y))
          optimizer.step()
          with torch.no_grad():
              famo.after_step(task_losses(model(x), y))   # the same x, y: after the step

      A second ``backward`` without ``after_step`` in between raises a one-line ValueError (the
      logits would otherwise never learn).
    - ``"next_batch"``: no extra forward; ``backward(losses_t)`` first updates :math:`\xi` from
      the previous call's losses and these (the next batch, at the parameters after the step),
      then fills the gradient. :math:`\delta` then also holds the batch-to-batch noise of the
      losses; ``after_step`` is ignored.

    Where this differs from the public code, and choices left open:

    - A loss at or below its ``min_losses`` entry: the public code's gap :math:`L - L^* +
      \epsilon` is :math:`\epsilon` at the floor and negative (a NaN log) below it; here the
      gap is floored at :math:`\epsilon` and ``floored_gaps[i]`` counts how often task i's was
      (in ``backward`` and ``after_step``; in ``state_dict``), so a cross-entropy of exactly 0
      trains on. With ``eps`` 0 such a gap gives no finite weight: ``backward`` raises.
    - Defaults ``lr`` 0.025 (all public versions) and ``weight_decay`` 0.001 (LibMTL's, the
      MTRL agent's and the QM9 script's value; ``famo.py`` and the trainers' flag default to
      0.01, ``weight_methods.py`` to 1e-5). ``eps`` 1e-8 as in the code.
    - A non-finite loss raises :class:`NonFiniteLossError` naming the task, with nothing changed
      (no gradient, no logits or Adam update, no step counted); so does a non-finite weight.
    - The public ``famo.py`` clips the shared gradient norm to ``max_norm`` 1.0: that is the
      training loop's business (``clip_grad_norm``), not done here.
    - ``weights`` are the :math:`w_i` applied at the last step (summing to 1); before the first
      step :math:`1/T` each. The training loop reads them before each step, so its
      ``mean_weights`` lag by one step for this method. ``logits`` is :math:`\xi` now and
      ``softmax_weights`` its :math:`z`. All are detached, in the last losses' device and dtype
      (at least float32).
    - :math:`\xi`, Adam's moments and the losses awaiting their update live on the host in
      float64. ``load_state_dict`` refuses a state saved with other options.
    """

    def __init__(
        self,
        num_tasks: int,
        lr: float = 0.025,
        weight_decay: float = 0.001,
        min_losses: Sequence[float] | None = None,
        eps: float = 1e-8,
        update: Update = "same_batch",
    ) -> None:
        super().__init__(num_tasks)
        self.lr = check_positive("lr", lr)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.min_losses = [0.0] * num_tasks if min_losses is None else check_numbers("min_losses", min_losses, num_tasks)
        self.eps = check_positive("eps", eps, allow_zero=True)
        if update not in UPDATES:
            raise ValueError(f"update must be one of {', '.join(map(repr, UPDATES))}, got {update!r}")
        self.update = update
        self.wants_losses_after_step = update == "same_batch"
        self._optimizer = VectorOptimizer("adam", self.lr)
        self._logits = [0.0] * num_tasks
        self._pending: list[float] | None = None  # the losses whose "after" is still to come
        self._weights = torch.full((num_tasks,), 1.0 / num_tasks)
        self._floored = [0] * num_tasks

    def _gaps(self, values: list[float]) -> tuple[list[float], list[bool]]:
        """The gaps :math:`D_i` of ``values``, and which were floored at eps."""
        floored = [value <= floor for value, floor in zip(values, self.min_losses)]
        return [max(value - floor, 0.0) + self.eps for value, floor in zip(values, self.min_losses)], floored

    def _log_gaps(self, values: list[float], where: str = "") -> list[float]:
        """:math:`\\log D_i` of ``values``; a one-line error for a gap of 0 (only with eps 0)."""
        gaps = self._gaps(values)[0]
        task = next((i for i, gap in enumerate(gaps) if not gap > 0), None)
        if task is not None:
            raise NonFiniteLossError(
                f"{where}losses[{task}] is {values[task]} at step {self.step_count}: at or below "
                f"min_losses[{task}] = {self.min_losses[task]} with eps 0, its gap has no log (raise eps); "
                f"the balancer's state is unchanged", task=task, value=float(values[task]), step=self.step_count
            )
        return [math.log(gap) for gap in gaps]

    def _stepped(self, old: list[float], new: list[float]) -> list[float]:
        """The logits after one Adam step on the update from log-gaps ``old`` to ``new``."""
        logits = self._logits
        z = _softmax(logits)
        delta = [before - after for before, after in zip(old, new)]
        mean = sum(zi * di for zi, di in zip(z, delta))
        decay = self.weight_decay
        return self._optimizer.step(logits, [zi * (di - mean) + decay * xi for zi, di, xi in zip(z, delta, logits)])

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        if self.update == "same_batch" and self._pending is not None:
            raise ValueError(
                f"FAMO(update='same_batch') got backward at step {self.step_count} without after_step "
                f"since the last one: after optimizer.step(), call after_step(losses re-evaluated on the "
                f"same batch under torch.no_grad()), or build it with update='next_batch'"
            )
        values = losses.detach().tolist()  # one copy to the host
        gaps, floored = self._gaps(values)
        log_gaps = self._log_gaps(values)
        optimizer = self._optimizer
        saved = (optimizer.steps, optimizer.exp_avg, optimizer.exp_avg_sq)
        try:
            logits = self._logits
            if self._pending is not None:  # next_batch: the previous step's losses, then these
                logits = self._stepped(self._log_gaps(self._pending), log_gaps)
            z = _softmax(logits)
            scaled = [zi / gap for zi, gap in zip(z, gaps)]
            total = sum(scaled)
            if not 0 < total < math.inf:  # else every weight is finite
                task = next((i for i, s in enumerate(scaled) if not math.isfinite(s)), 0)
                raise NonFiniteLossError(
                    f"losses[{task}] is {values[task]} at step {self.step_count}: its FAMO weight is "
                    f"not finite (its gap to min_losses[{task}] is too small; raise eps); the "
                    f"balancer's state is unchanged", task=task, value=float(values[task]), step=self.step_count
                )
            dtype = torch.promote_types(losses.dtype, torch.float32)
            applied = torch.tensor([s / total for s in scaled], dtype=dtype, device=losses.device)
            (applied * losses).sum().backward()
        except BaseException:
            optimizer.steps, optimizer.exp_avg, optimizer.exp_avg_sq = saved
            raise
        self._logits = logits
        self._pending = values
        self._weights = applied
        self._floored = [count + hit for count, hit in zip(self._floored, floored)]
        self.step_count += 1

    def after_step(self, losses: torch.Tensor) -> None:
        """``update="same_batch"``: update the logits from the last ``backward``'s losses and
        ``losses``, the same batch's losses after the optimizer's step (a 1-D tensor of T
        finite losses; no gradient needed). Ignored with ``update="next_batch"``."""
        if self.update != "same_batch":
            return
        if self._pending is None:
            raise ValueError(
                "FAMO.after_step needs a backward(losses) on this batch first: call it once after each "
                "optimizer step, with the same batch's losses re-evaluated"
            )
        self.check_losses(losses, after_step=True)
        values = losses.detach().tolist()
        log_gaps, floored = self._log_gaps(values, "after_step: "), self._gaps(values)[1]
        self._logits = self._stepped(self._log_gaps(self._pending), log_gaps)
        self._pending = None
        self._floored = [count + hit for count, hit in zip(self._floored, floored)]

    @property
    def weights(self) -> torch.Tensor:
        return self._weights.detach().clone()

    @property
    def logits(self) -> torch.Tensor:
        """The task logits :math:`\\xi` now, a detached 1-D tensor."""
        return torch.tensor(self._logits, dtype=self._weights.dtype, device=self._weights.device)

    @property
    def softmax_weights(self) -> torch.Tensor:
        """:math:`z = \\mathrm{softmax}(\\xi)` of the logits now, a detached 1-D tensor."""
        return torch.tensor(_softmax(self._logits), dtype=self._weights.dtype, device=self._weights.device)

    @property
    def floored_gaps(self) -> list[int]:
        """Per task, how many of its losses were at or below its ``min_losses`` entry."""
        return list(self._floored)

    def _options(self) -> dict[str, Any]:
        return {"lr": self.lr, "weight_decay": self.weight_decay, "min_losses": list(self.min_losses),
                "eps": self.eps, "update": self.update}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        pending = None if self._pending is None else torch.tensor(self._pending, dtype=torch.float64)
        state.update(
            self._options(),
            logits=torch.tensor(self._logits, dtype=torch.float64),
            previous_losses=pending,
            weights=self._weights.detach().cpu().double(),
            floored_gaps=torch.tensor(self._floored, dtype=torch.int64),
            optimizer=self._optimizer.state_dict(),
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        previous_step_count = self.step_count
        super().load_state_dict(state)  # checks num_tasks first, with the shared message
        try:
            loaded = self._prepare_load(state)
        except BaseException:
            self.step_count = previous_step_count
            raise
        self._logits, self._pending, weights, self._floored, self._optimizer = loaded
        # as saved (float64): the dtype of the losses it sees next takes over at the next step
        self._weights = weights.to(device=self._weights.device)

    def _prepare_load(self, state: dict[str, Any]) -> tuple:
        """Everything ``state`` restores, built aside, so a bad state changes nothing."""
        name = type(self).__name__
        ours = self._options()
        for key in (*ours, "logits", "previous_losses", "weights", "floored_gaps", "optimizer"):
            if key not in state:
                raise ValueError(f"state_dict has no {key!r}: pass a state from {name}.state_dict()")
        options = {key: state[key] for key in ours}
        if options != ours:
            raise ValueError(f"state_dict is for {options}, but this {name} has {ours}; build it with the same options")
        tensors = [state["logits"], state["weights"], state["floored_gaps"]]
        if state["previous_losses"] is not None:
            tensors.append(state["previous_losses"])
        shape = (self.num_tasks,)
        if any(not isinstance(t, torch.Tensor) or tuple(t.shape) != shape for t in tensors):
            raise ValueError(f"state_dict holds tensors that are not of shape {shape}; pass a state from "
                             f"{name}.state_dict()")
        optimizer = VectorOptimizer("adam", self.lr)
        optimizer.load_state_dict(state["optimizer"])
        previous = state["previous_losses"]
        pending = None if previous is None else previous.detach().double().tolist()
        return (state["logits"].detach().double().tolist(), pending, state["weights"].detach().cpu().double(),
                [int(n) for n in state["floored_gaps"].tolist()], optimizer)


def _softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]
