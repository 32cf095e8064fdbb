"""GradNorm: Chen, Badrinarayanan, Lee, Rabinovich, "GradNorm: Gradient Normalization for Adaptive
Loss Balancing in Deep Multitask Networks", ICML 2018.

The balancer and its weight update are here; how the norms n_i are measured is
:mod:`.gradient_norms`'s (any W) and :mod:`.linear_fast_path`'s (a shared ``nn.Linear``), and how
L_i(0) is chosen and checked :mod:`.initial_losses`'s."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from .base import Balancer, VectorOptimizer, check_positive
from .gradient_norms import (
    average_over_processes, check_every_task_reaches_w, check_shared_params, task_gradient_norms,
)
from .initial_losses import check_initial_losses, check_positive_initial_losses
from .linear_fast_path import LinearTaskGradients
from .registry import register
from .shared_layer import build_on_shared_layer


@register("gradnorm")
class GradNorm(Balancer):
    r"""Task weights that keep every task's gradient norm at the shared layer W in balance.

    Each call to :meth:`backward`, at step :math:`t`, with task losses :math:`L_i(t)` and weights
    :math:`w_i(t)` (initially 1):

    1. the network receives the gradient of :math:`\sum_i w_i(t) L_i(t)`, with :math:`w(t)`
       as it was before this step;
    2. :math:`n_i = \lVert \nabla_W L_i \rVert_2` (one norm over all tensors of W),
       :math:`G_i = w_i n_i`, :math:`\bar G = \operatorname{mean}_i G_i`;
    3. :math:`\tilde L_i = L_i(t) / L_i(0)`, with :math:`L_i(0)` the losses of the first step
       (``initial_losses`` None or ``"first_step"``) or the T numbers ``initial_losses`` (e.g.
       ``problem.chance_losses()``, which trial configs ask for as ``"chance"``), and :math:`r_i = \tilde L_i / \operatorname{mean}_j \tilde L_j`;
    4. :math:`\mathrm{target}_i = \bar G \, r_i^{\alpha}`, held constant;
    5. :math:`L_\mathrm{grad} = \sum_i \lvert G_i - \mathrm{target}_i \rvert`, whose gradient
       :math:`\partial L_\mathrm{grad} / \partial w_i = \operatorname{sign}(G_i - \mathrm{target}_i)\, n_i`
       is used in closed form (exact: no second-order graph is built);
    6. :math:`w` takes one step of its own optimizer (``"adam"``, or ``"sgd"``: plain SGD without
       momentum) with learning rate ``lr`` on that gradient, is clamped to at least
       ``min_weight``, and is renormalised so that :math:`\sum_i w_i = T`.

    Two ways to give W:

    * ``GradNorm(shared_layer.parameters(), num_tasks=T)``: W is any set of leaf tensors. The
      norms come from T extra ``autograd.grad`` calls, exact for any W, at the cost of T partial
      backward passes.
    * ``GradNorm.for_linear(shared_linear, num_tasks=T)`` and, in the forward pass,
      ``heads_inputs = gn.branch(features)``: W is the weight and bias of the ``nn.Linear`` whose
      output (or a function of it, such as its ReLU) feeds the heads. One ordinary backward pass
      fills the network's gradients and, through a hook, each head's gradient
      :math:`g_i = w_i \, \partial L_i / \partial z` at that layer's output :math:`z`; with the
      layer's input :math:`a`, :math:`\nabla_{\text{weight}} (w_i L_i) = g_i^\top a` and
      :math:`\nabla_{\text{bias}} (w_i L_i) = \sum_b g_{i,b}`, so
      :math:`G_i = (\lVert g_i^\top a \rVert_F^2 + \lVert \textstyle\sum_b g_{i,b} \rVert^2)^{1/2}`
      (through the Gram matrix :math:`a a^\top` when the batch is smaller than the layer's input)
      and :math:`n_i = G_i / w_i`. Same numbers as the first way, at a fraction of the cost.

    Decisions the paper leaves open:

    * weight optimizer ``"adam"`` by default, ``lr=0.025`` (the paper's toy setting);
      ``min_weight=1e-4`` keeps weights positive;
    * the weight update (steps 2 to 6 once the norms are known) is O(T) scalar work and runs on
      the host in float64; ``weights`` follows the losses' device and dtype (at least float32),
      and the norms are computed there. On CUDA this costs one synchronisation per step;
    * mixed precision: use it under ``torch.autocast`` (losses are float32 there); GradScaler's
      loss scaling is not applied by :meth:`backward`, so use bfloat16 autocast, which needs none;
    * DDP: when ``torch.distributed`` is initialised with more than one process, the losses
      :math:`L_i` (including :math:`L_i(0)`) and norms :math:`n_i` are averaged over processes
      before the weight update, so every process keeps the same weights (the network's own
      gradients are DDP's business);
    * a non-finite loss raises :class:`NonFiniteLossError` naming the task and the step, before
      anything (network gradients, weights, step counter) is changed.
    """

    MODEL_ARGUMENTS = ("shared_params",)
    #: W is the model's module at ``shared_layer``; the fast path where it applies
    build = classmethod(build_on_shared_layer)

    def __init__(
        self,
        shared_params: Iterable[torch.Tensor],
        num_tasks: int,
        alpha: float = 1.5,
        lr: float = 0.025,
        optimizer: str = "adam",
        initial_losses: Sequence[float] | torch.Tensor | Literal["first_step", "chance"] | None = None,
        min_weight: float = 1e-4,
    ) -> None:
        super().__init__(num_tasks)
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        self.lr = check_positive("lr", lr)
        self.min_weight = check_positive("min_weight", min_weight)
        if self.min_weight >= 1.0:
            raise ValueError(f"min_weight must be in (0, 1), got {min_weight!r}")
        self._weight_optimizer = VectorOptimizer(optimizer, self.lr)
        self.shared_params = check_shared_params(shared_params)
        # The weights live on the host as float64 (the update is O(T) scalar work); `_weights`
        # is their copy on the losses' device and dtype, for the network's backward pass.
        self._host_weights = [1.0] * num_tasks
        self._weights = torch.ones(num_tasks)
        self.initial_losses = check_initial_losses(initial_losses, num_tasks)
        self.last_norms: torch.Tensor | None = None
        self._fast: LinearTaskGradients | None = None

    @classmethod
    def for_linear(cls, shared_linear: nn.Linear, num_tasks: int, **kwargs: Any) -> "GradNorm":
        """GradNorm with W = ``shared_linear``'s parameters, using the single-backward fast path.

        In the forward pass, the heads must read the views returned by :meth:`branch`::

            features = trunk(x)                  # shared_linear is the trunk's last Linear
            outputs = [head(f) for head, f in zip(heads, gn.branch(features))]
        """
        if not isinstance(shared_linear, nn.Linear):
            raise TypeError(
                f"shared_linear must be an nn.Linear, got {type(shared_linear).__name__}; for "
                f"any other W use GradNorm(shared_params, num_tasks)"
            )
        gradnorm = cls(shared_linear.parameters(), num_tasks, **kwargs)
        gradnorm._fast = LinearTaskGradients(shared_linear, num_tasks)
        return gradnorm

    @property
    def weights(self) -> torch.Tensor:
        return self._weights.detach().clone()

    def shared_parameters(self) -> list[torch.Tensor]:
        return list(self.shared_params)

    @property
    def uses_branch(self) -> bool:
        """Whether this is the :meth:`for_linear` fast path, whose heads must read :meth:`branch`."""
        return self._fast is not None

    def branch(self, features: torch.Tensor) -> list[torch.Tensor]:
        """One view of ``features`` per head, so that each head's gradient can be told apart.

        Only needed with :meth:`for_linear`; with plain shared parameters it returns
        ``[features] * T``. Outside autograd (evaluation) it costs nothing.
        """
        if self._fast is None or not torch.is_grad_enabled():
            return [features] * self.num_tasks
        return self._fast.branch(features)

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        if self._fast is not None:
            self._fast.check_ready()
        if self.initial_losses is None:
            check_positive_initial_losses(losses.detach())
        self._follow(losses)
        weights = self._weights
        if self._fast is not None:
            (weights * losses).sum().backward()
            norms = self._fast.weighted_norms(dtype=weights.dtype) / weights
        else:
            norms = task_gradient_norms(losses, self.shared_params)
            (weights * losses).sum().backward()
        if self.step_count == 0:
            check_every_task_reaches_w(norms)

        losses, norms = average_over_processes(losses.detach(), norms)
        if self.initial_losses is None:
            self.initial_losses = losses.double().cpu()
        self._update_weights(losses, norms, self.initial_losses)
        self.last_norms = norms
        self.step_count += 1

    def _update_weights(self, losses: torch.Tensor, norms: torch.Tensor, initial: torch.Tensor) -> None:
        """Steps 2 to 6 of the contract, on the host in float64, from L_i(t) and n_i."""
        losses_now, norms_now = losses.tolist(), norms.tolist()
        count = self.num_tasks
        ratios = [loss / first for loss, first in zip(losses_now, initial.tolist())]
        mean_ratio = sum(ratios) / count
        grad_norms = [w * n for w, n in zip(self._host_weights, norms_now)]
        mean_grad_norm = sum(grad_norms) / count
        weight_grads = []
        for grad_norm, norm, ratio in zip(grad_norms, norms_now, ratios):
            gap = grad_norm - mean_grad_norm * (ratio / mean_ratio) ** self.alpha
            weight_grads.append(norm if gap > 0 else -norm if gap < 0 else 0.0)
        stepped = self._weight_optimizer.step(self._host_weights, weight_grads)
        clamped = [max(w, self.min_weight) for w in stepped]
        total = sum(clamped)
        self._set_weights([w * count / total for w in clamped])

    def _set_weights(self, values: list[float]) -> None:
        self._host_weights = values
        self._weights = torch.tensor(values, dtype=self._weights.dtype, device=self._weights.device)

    def _follow(self, losses: torch.Tensor) -> None:
        """Put the weights' tensor on the losses' device and dtype (at least float32)."""
        dtype = torch.promote_types(losses.dtype, torch.float32)
        if self._weights.device != losses.device or self._weights.dtype != dtype:
            self._weights = torch.tensor(self._host_weights, dtype=dtype, device=losses.device)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            weights=torch.tensor(self._host_weights, dtype=torch.float64),
            initial_losses=None if self.initial_losses is None else self.initial_losses.clone(),
            weight_optimizer=self._weight_optimizer.state_dict(),
            alpha=self.alpha,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._weight_optimizer.load_state_dict(state["weight_optimizer"])
        self._set_weights(torch.as_tensor(state["weights"]).double().tolist())
        initial = state["initial_losses"]
        self.initial_losses = None if initial is None else torch.as_tensor(initial).double().cpu()
