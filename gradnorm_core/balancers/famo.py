"""FAMO, Fast Adaptive Multitask Optimization (Liu, Feng, Stone & Liu, NeurIPS 2023)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .base import Balancer, VectorOptimizer, check_positive
from .registry import register


def _check_min_losses(min_losses: Sequence[float] | None, num_tasks: int) -> list[float]:
    """``min_losses`` as T floats (zeros for ``None``), or a one-line error naming it."""
    if min_losses is None:
        return [0.0] * num_tasks
    if isinstance(min_losses, (str, bytes)) or not hasattr(min_losses, "__len__"):
        raise TypeError(f"min_losses must be a list of {num_tasks} numbers, one per task, got {min_losses!r}")
    if len(min_losses) != num_tasks:
        raise ValueError(f"min_losses must hold {num_tasks} numbers, one per task, got {min_losses!r}")
    values = []
    for index, item in enumerate(min_losses):
        if isinstance(item, (bool, str, bytes)):
            raise TypeError(f"min_losses[{index}] must be a number, got {item!r}")
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise TypeError(f"min_losses[{index}] must be a number, got {item!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"min_losses[{index}] must be a finite number, got {item!r}")
        values.append(value)
    return values


@register("famo")
class FAMO(Balancer):
    r"""Task weights that make every task's loss fall at the same rate (FAMO; Liu, Feng, Stone
    & Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023), from the losses alone.

    Task logits :math:`\xi` (init 0) give :math:`z = \mathrm{softmax}(\xi)`. With the gaps
    :math:`D_i = L_i - L_i^* + \epsilon` (:math:`L^*` = ``min_losses``, :math:`\epsilon` =
    ``eps``), the network's gradient is that of :math:`c \sum_i z_i \log D_i` with :math:`c`
    held constant:

    .. math::

        \nabla_\theta = \sum_{i=1}^{T} w_i \nabla_\theta L_i, \qquad
        w_i = \frac{c\, z_i}{D_i}, \qquad c = \Big( \sum_{j=1}^{T} \frac{z_j}{D_j} \Big)^{-1}

    so :math:`\sum_i w_i = 1`: the step is a convex combination of the task gradients (about
    :math:`1/T` of the step of equal weights :math:`\sum_i L_i` at the same learning rate, as in
    the paper and its code). The logits learn from how much each log-gap fell between two
    consecutive steps :math:`t-1, t`:

    .. math::

        \delta_i = \log D_i^{(t-1)} - \log D_i^{(t)}, \qquad
        g_j = \sum_i \delta_i \frac{\partial z_i}{\partial \xi_j} + \gamma \xi_j
            = z_j \Big( \delta_j - \sum_i z_i \delta_i \Big) + \gamma \xi_j

    and :math:`\xi` takes one Adam step (``lr``, betas 0.9/0.999, eps 1e-8) on :math:`g`, with
    :math:`z` that of the :math:`\xi` used at step :math:`t-1`. :math:`\gamma` =
    ``weight_decay`` is added to the gradient before Adam's moments: the L2 weight decay of
    ``torch.optim.Adam(weight_decay=gamma)`` used by the public code, the same formula (not
    AdamW's decoupled decay). A task whose log-loss fell more gets a lower logit.

    ``backward(losses_t)`` does, in order: (1) from step 2 on, the logits' update from the
    previous call's losses and these (:math:`\xi_{t-1} \to \xi_t`); (2) the weights
    :math:`w` of :math:`z(\xi_t)` and these losses, and the network's gradient.

    Where this differs from the public code (``Cranial-XIX/FAMO``: ``famo.py`` and class
    ``FAMO`` in ``methods/weight_methods.py``; LibMTL's ``FAMO`` is the same), and choices left
    open:

    - The public trainers call ``update(new_losses)`` after the network's step with the losses
      re-evaluated *on the same batch* (one more forward pass per step). A :class:`Balancer`
      sees one call per step, so here :math:`L^{(t)}` is the next step's loss on the next batch
      (no extra forward), taken at the same parameters :math:`\theta_t`: the update has the
      code's timing (:math:`\xi_t` is used first at step :math:`t`), but :math:`\delta` also
      holds the batch-to-batch noise of the losses. The formulas are otherwise the code's.
    - Defaults ``lr`` 0.025 (all public versions) and ``weight_decay`` 0.001 (LibMTL's, the
      MTRL agent's and the QM9 script's value, reportedly that of the paper's Algorithm 2;
      ``famo.py`` and the trainers' flag default to 0.01, class ``FAMO`` in
      ``weight_methods.py`` to 1e-5, CelebA's script uses 0.01). ``eps`` 1e-8 as in the code.
    - Every loss must exceed its ``min_losses`` entry (the code only adds ``eps``): otherwise,
      or on a non-finite loss or weight, ``backward`` raises a one-line ``ValueError`` naming
      the task, with nothing changed (no gradient, no logits or Adam update, no step counted).
    - The public ``famo.py`` clips the shared gradient norm to ``max_norm`` 1.0; that is the
      training loop's business, not done here.
    - ``weights`` are the :math:`w_i` applied at the last step (they sum to 1; they multiply
      :math:`L_i` in the gradient, as every method's weights here do); before the first step
      :math:`1/T` each. The training loop reads ``weights`` before each step, so its
      ``mean_weights`` lag by one step for this method (a step's weights depend on its losses).
      ``logits`` is :math:`\xi` and ``softmax_weights`` is :math:`z`, both as used at the last
      step. All are detached copies in the last losses' device and dtype (at least float32).
    - :math:`\xi`, Adam's moments and the previous losses live on the host in float64; the
      weights are computed there and copied to the losses' device once per step.
      ``load_state_dict`` refuses a state saved with other options.
    """

    def __init__(
        self,
        num_tasks: int,
        lr: float = 0.025,
        weight_decay: float = 0.001,
        min_losses: Sequence[float] | None = None,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(num_tasks)
        self.lr = check_positive("lr", lr)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.min_losses = _check_min_losses(min_losses, num_tasks)
        self.eps = check_positive("eps", eps, allow_zero=True)
        self._optimizer = VectorOptimizer("adam", self.lr)
        self._logits = [0.0] * num_tasks
        self._previous_losses: list[float] | None = None
        self._previous_log_gaps: list[float] | None = None
        self._weights = torch.full((num_tasks,), 1.0 / num_tasks)
        self._z = [1.0 / num_tasks] * num_tasks

    def _gaps(self, values: list[float]) -> list[float]:
        """The gaps :math:`L_i - L_i^* + \\epsilon`, or a one-line error naming the first bad task."""
        gaps = []
        for task, (value, floor) in enumerate(zip(values, self.min_losses)):
            gap = value - floor + self.eps
            if not (value > floor and 0 < gap < math.inf):
                raise ValueError(
                    f"losses[{task}] is {value} at step {self.step_count}: task {task}'s loss is not "
                    f"above its min_losses[{task}] = {floor}; FAMO takes the log of the gap, so it "
                    f"needs loss > min loss (the balancer's state is unchanged)"
                )
            gaps.append(gap)
        return gaps

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        values = losses.detach().tolist()  # one copy to the host
        gaps = self._gaps(values)
        log_gaps = [math.log(gap) for gap in gaps]
        optimizer = self._optimizer
        saved = (optimizer.steps, optimizer.exp_avg, optimizer.exp_avg_sq)
        try:
            logits = self._logits
            if self._previous_log_gaps is not None:
                z = _softmax(logits)
                delta = [old - new for old, new in zip(self._previous_log_gaps, log_gaps)]
                mean = sum(zi * di for zi, di in zip(z, delta))
                decay = self.weight_decay
                grads = [zi * (di - mean) + decay * xi for zi, di, xi in zip(z, delta, logits)]
                logits = optimizer.step(logits, grads)
            z = _softmax(logits)
            scaled = [zi / gap for zi, gap in zip(z, gaps)]
            total = sum(scaled)
            if not 0 < total < math.inf:  # else every weight is finite
                task = next((i for i, s in enumerate(scaled) if not math.isfinite(s)), 0)
                raise ValueError(
                    f"losses[{task}] is {values[task]} at step {self.step_count}: its FAMO weight is "
                    f"not finite (the gap to min_losses[{task}] is too small; raise eps); the "
                    f"balancer's state is unchanged"
                )
            weights = [s / total for s in scaled]
            dtype = torch.promote_types(losses.dtype, torch.float32)
            applied = torch.tensor(weights, dtype=dtype, device=losses.device)
            (applied * losses).sum().backward()
        except BaseException:
            optimizer.steps, optimizer.exp_avg, optimizer.exp_avg_sq = saved
            raise
        self._logits = logits
        self._previous_losses = values
        self._previous_log_gaps = log_gaps
        self._weights = applied
        self._z = z
        self.step_count += 1

    @property
    def weights(self) -> torch.Tensor:
        return self._weights.detach().clone()

    @property
    def softmax_weights(self) -> torch.Tensor:
        """:math:`z = \\mathrm{softmax}(\\xi)` as used at the last step, a detached 1-D tensor."""
        like = self._weights
        return torch.tensor(self._z, dtype=like.dtype, device=like.device)

    @property
    def logits(self) -> torch.Tensor:
        """The task logits :math:`\\xi` as used at the last step, a detached 1-D tensor."""
        return torch.tensor(self._logits, dtype=self._weights.dtype, device=self._weights.device)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        as_tensor = (lambda xs: None if xs is None else torch.tensor(xs, dtype=torch.float64))
        state.update(
            lr=self.lr,
            weight_decay=self.weight_decay,
            min_losses=list(self.min_losses),
            eps=self.eps,
            logits=as_tensor(self._logits),
            previous_losses=as_tensor(self._previous_losses),
            weights=self._weights.detach().cpu().double(),
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
        self._logits, self._previous_losses, self._previous_log_gaps, weights, self._optimizer = loaded
        like = self._weights
        self._weights = weights.to(device=like.device, dtype=like.dtype)
        self._z = _softmax(self._logits)

    def _prepare_load(self, state: dict[str, Any]) -> tuple:
        """Everything ``state`` restores, built aside, so a bad state changes nothing."""
        name = type(self).__name__
        keys = ("lr", "weight_decay", "min_losses", "eps", "logits", "previous_losses", "weights", "optimizer")
        for key in keys:
            if key not in state:
                raise ValueError(f"state_dict has no {key!r}: pass a state from {name}.state_dict()")
        options = {key: state[key] for key in ("lr", "weight_decay", "min_losses", "eps")}
        ours = {"lr": self.lr, "weight_decay": self.weight_decay, "min_losses": self.min_losses, "eps": self.eps}
        if options != ours:
            raise ValueError(
                f"state_dict is for {options}, but this {name} has {ours}; build it with the same options"
            )
        shape = (self.num_tasks,)
        tensors = [state["logits"], state["weights"]]
        if state["previous_losses"] is not None:
            tensors.append(state["previous_losses"])
        if any(not isinstance(t, torch.Tensor) or tuple(t.shape) != shape for t in tensors):
            raise ValueError(
                f"state_dict holds tensors that are not of shape {shape}; pass a state from {name}.state_dict()"
            )
        previous = state["previous_losses"]
        previous = None if previous is None else previous.detach().double().tolist()
        log_gaps = None if previous is None else [math.log(gap) for gap in self._gaps(previous)]
        optimizer = VectorOptimizer("adam", self.lr)
        optimizer.load_state_dict(state["optimizer"])
        logits = state["logits"].detach().double().tolist()
        return logits, previous, log_gaps, state["weights"].detach().cpu().double(), optimizer


def _softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]
