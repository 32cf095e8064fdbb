"""IMTL, the hybrid Impartial Multi-task Learning (Liu et al., ICLR 2021): IMTL-G's closed-form
gradient balance at the shared representation, on IMTL-L's learned loss scales."""

from __future__ import annotations

from typing import Any, Literal

import torch

from ..problems.models import accepts_branch
from .branch_views import BranchViews
from .log_scales import LearnedLogScales
from .registry import register


def imtl_g_alphas(grads: torch.Tensor) -> torch.Tensor | None:
    r"""IMTL-G's :math:`\alpha` for the task gradients ``grads`` (T, d), in float64, or None
    where the closed form is undefined (a zero or non-finite gradient, a singular system)."""
    grads = grads.double()
    if grads.shape[0] == 1:
        return grads.new_ones(1)
    norms = torch.linalg.vector_norm(grads, dim=1, keepdim=True)
    if not bool(torch.isfinite(norms).all() and (norms > 0).all()):
        return None
    units = grads / norms
    D = grads[:1] - grads[1:]  # rows g_1 - g_t, t = 2..T
    U = units[:1] - units[1:]  # rows u_1 - u_t
    # alpha_{2:T} = g_1 U^T (D U^T)^{-1}, i.e. (D U^T)^T alpha_{2:T}^T = U g_1
    rest, info = torch.linalg.solve_ex((D @ U.T).T, U @ grads[0])
    if int(info) != 0 or not bool(torch.isfinite(rest).all()):
        return None
    return torch.cat([1.0 - rest.sum().reshape(1), rest])


@register("imtl")
class IMTL(BranchViews, LearnedLogScales):
    r"""Hybrid IMTL (Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial Multi-task
    Learning", ICLR 2021), as LibMTL implements it (``weighting/IMTL.py`` with ``rep_grad``).

    Each task has a learnable log-scale :math:`s_t` (init 0), IMTL-L's loss scale, and a scaled
    loss :math:`\tilde L_t = e^{s_t} L_t`. Per step, with :math:`s` as it was before the step
    and :math:`z` the shared representation of the batch (the trunk's output, (B, ...)):

    1. :math:`G_t = \partial \tilde L_t / \partial z`, each task's gradient at the
       representation, and :math:`g_t = \sum_b G_{t,b}` flattened (summed over the batch, as
       LibMTL does), :math:`u_t = g_t / \lVert g_t \rVert`;
    2. IMTL-G's closed form: with the rows :math:`D_t = g_1 - g_t` and :math:`U_t = u_1 - u_t`
       (:math:`t = 2..T`),

       .. math:: \alpha_{2:T} = g_1 U^\top (D U^\top)^{-1}, \qquad
                 \alpha_1 = 1 - \textstyle\sum_{t \ge 2} \alpha_t,

       the one :math:`\alpha` summing to 1 for which :math:`g = \sum_t \alpha_t g_t` has equal
       projections on every :math:`u_t`;
    3. the shared trunk's gradient is that of :math:`\sum_t \alpha_t \tilde L_t` (one backward
       from :math:`z` of :math:`\sum_t \alpha_t G_t`), each head's that of its own
       :math:`\tilde L_t`;
    4. :math:`s` takes one step of its own optimizer (``"adam"`` or ``"sgd"``, learning rate
       ``lr``) on IMTL-L's :math:`\partial (e^{s_t} L_t - s_t) / \partial s_t = e^{s_t} L_t - 1`.

    The representation comes through ``branch``, the mechanism of GradNorm's fast path: the
    model's forward hands the trunk's output to ``imtl.branch(features)`` and the heads read the
    T views it returns (:class:`~gradnorm_core.problems.MultiHeadNet` does so when called as
    ``model(x, branch=imtl.branch)``, as the training loop does; ``uses_branch`` is True). In
    your own loop::

        features = trunk(x)
        outputs = [head(f) for head, f in zip(heads, imtl.branch(features))]
        optimizer.zero_grad()
        imtl.backward(torch.stack([loss(o, y) for o, y in zip(outputs, targets)]))
        optimizer.step()

    The views are detached copies of :math:`z`: one backward pass through the heads gives every
    :math:`G_t` (LibMTL's T backward passes to the representation give the same numbers when
    task t's loss reads only head t's output), then one through the trunk. No backward pass
    reaches the shared parameters per task.

    Choices left open: where the closed form is undefined (a task gradient of 0, or a singular
    :math:`D U^\top`, e.g. two tasks with parallel gradients), the step uses
    :math:`\alpha_t = 1/T` and ``fallback_steps`` counts it. :math:`s` has its own optimizer
    (default Adam, ``lr`` 0.025) rather than the network's. ``weights`` is
    :math:`\alpha_t e^{s_t}` with the last step's :math:`\alpha` (the multipliers of :math:`L_t`
    in the trunk's gradient; :math:`1/T` before the first step), ``alphas`` is :math:`\alpha`,
    ``log_scales`` is :math:`s`. No DDP averaging of :math:`g_t`. A non-finite loss raises
    :class:`~.base.NonFiniteLossError` before anything changes.
    """

    SIGN = 1
    STATE_KEY = "log_scales"
    uses_branch = True

    @classmethod
    def build(cls, num_tasks: int, model=None, shared_layer: str | None = None, **options: Any) -> IMTL:
        """IMTL for ``model``, which must take ``branch=`` (its forward hands the trunk's output to
        :meth:`branch`); checked here so that a wrong model fails before training."""
        if model is not None and not accepts_branch(model):
            raise ValueError(
                f"method 'imtl' needs a model whose forward takes branch= (MultiHeadNet), got "
                f"{type(model).__name__}: IMTL balances the task gradients at the trunk's output; "
                "build the model as a MultiHeadNet or give its forward a branch argument")
        return cls(num_tasks, **options)

    def __init__(self, num_tasks: int, lr: float = 0.025, optimizer: Literal["adam", "sgd"] = "adam") -> None:
        super().__init__(num_tasks, lr, optimizer)
        self._alphas = [1.0 / num_tasks] * num_tasks
        self.fallback_steps = 0

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        features, views = self.take_views()
        self._place(losses.device, torch.promote_types(losses.dtype, torch.float32))
        (self._scales(self._s) * losses).sum().backward()  # the heads, and each G_t at its view
        per_sample = torch.stack([v.grad if v.grad is not None else torch.zeros_like(v) for v in views])
        alphas = imtl_g_alphas(per_sample.reshape(self.num_tasks, per_sample.shape[1], -1).sum(dim=1))
        if alphas is None:
            alphas = per_sample.new_full((self.num_tasks,), 1.0 / self.num_tasks, dtype=torch.float64)
            self.fallback_steps += 1
        if features.requires_grad:
            combined = torch.einsum("t,t...->...", alphas.to(per_sample.dtype), per_sample)
            features.backward(combined.to(features.dtype))
        self._alphas = alphas.tolist()
        self._step_scales(losses.detach().tolist())

    @property
    def weights(self) -> torch.Tensor:
        # in float64, from the scales' and alphas' exact values, then in the dtype of the losses:
        # the same numbers whichever dtype the product would otherwise round in (a restored twin)
        s = self._s.detach()
        alphas = torch.tensor(self._alphas, dtype=torch.float64, device=s.device)
        return (self._scales(s.double()) * alphas).to(s.dtype)

    @property
    def alphas(self) -> torch.Tensor:
        """IMTL-G's :math:`\\alpha` of the last step (:math:`1/T` before the first), detached."""
        return torch.tensor(self._alphas, dtype=self._s.dtype, device=self._s.device)

    @property
    def log_scales(self) -> torch.Tensor:
        """The current log scales :math:`s`, a detached 1-D tensor."""
        return self._log_scales()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["alphas"] = torch.tensor(self._alphas, dtype=torch.float64)
        state["fallback_steps"] = self.fallback_steps
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("num_tasks") == self.num_tasks:  # else the base class says so
            alphas = state.get("alphas")
            if not isinstance(alphas, torch.Tensor) or tuple(alphas.shape) != (self.num_tasks,):
                raise ValueError(f"state_dict['alphas'] must be a tensor of shape ({self.num_tasks},), got "
                                 f"{alphas!r}; pass a state from IMTL.state_dict()")
        super().load_state_dict(state)
        self._alphas = state["alphas"].double().tolist()
        self.fallback_steps = int(state.get("fallback_steps", 0))
