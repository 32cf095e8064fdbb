"""What the gradient-aggregation methods share (MGDA, PCGrad, CAGrad, Nash-MTL, IMTL-G, Aligned-MTL,
UPGrad, DualProj; one module each, their weightings TorchJD's): the task Jacobian on the shared trunk
(its parameters, or its output), the weights a TorchJD weighting extracts from it, the aggregated
gradient written into the trunk's ``.grad``; and the seeded random stream of the methods that draw
random numbers (PCGrad, RLW)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch

from ..problems.models import accepts_branch
from .base import Balancer
from .branch_views import BranchViews

__all__ = ["JACOBIANS", "Jacobian", "JacobianBalancer", "RandomStream", "check_count", "check_seed"]

#: where the task Jacobian is taken: the trunk's parameters (exact) or the trunk's output (cheaper)
JACOBIANS = ("parameters", "representation")
Jacobian = Literal["parameters", "representation"]


def check_count(name: str, value: int, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``, or a one-line error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def check_seed(seed: int) -> int:
    """A seed of a balancer's own random stream: a whole number in [0, 2**63 - 1]."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a whole number in [0, 2**63 - 1], got {seed!r}")
    return seed


class RandomStream:
    """A balancer's own random numbers, for library code that draws from torch's global CPU
    generator (TorchJD's PCGrad permutations, RLW's normals): inside :meth:`drawing` the global
    generator holds this stream's state (seeded by ``seed``), afterwards its own state again
    (``torch.random.fork_rng``). So the draws are reproducible from ``seed``, resume exactly from
    :attr:`state` (kept in the balancer's ``state_dict``) and leave the training's own random numbers
    (dropout, ...) untouched. A draw that raises leaves the stream where it was."""

    def __init__(self, seed: int) -> None:
        self.state = torch.Generator().manual_seed(check_seed(seed)).get_state()

    @contextmanager
    def drawing(self) -> Iterator[None]:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.state)
            yield
            self.state = torch.get_rng_state()


def _combine(weights: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_t w_t g_t` of the T stacked ``grads`` (T, ...), in their device and dtype."""
    return torch.einsum("t,t...->...", weights.to(device=grads.device, dtype=grads.dtype), grads)


def _accumulate(param: torch.Tensor, grad: torch.Tensor) -> None:
    """Add ``grad`` to ``param.grad``, as ``backward`` does."""
    if param.grad is None:
        param.grad = grad.detach().clone() if grad.requires_grad else grad
    else:
        param.grad += grad


class JacobianBalancer(BranchViews, Balancer):
    r"""A gradient-aggregation method: the shared trunk's gradient is a combination
    :math:`\sum_t w_t J_t` of the task gradients, with weights :math:`w` that the method (a TorchJD
    ``Weighting``) extracts from the Gramian :math:`J J^\top` of the task Jacobian :math:`J` (Nash-MTL
    from :math:`J` itself). Each head gets its own loss's gradient.

    Per step, with :math:`z` the trunk's output on the batch and :math:`L_t` the task losses:

    1. one backward pass through the heads gives each head the gradient of its own :math:`L_t`, and
       :math:`G_t = \partial L_t / \partial z` (the heads read detached views of :math:`z` through
       :meth:`branch`, the mechanism of GradNorm's fast path and of IMTL; the training loop calls
       ``model(x, branch=balancer.branch)``, so the model must be a
       :class:`~gradnorm_core.problems.MultiHeadNet` or take ``branch=``);
    2. the task Jacobian :math:`J` (T rows), by ``jacobian``:

       - ``"parameters"`` (the default; exact, as the papers run the methods):
         :math:`J_t = \partial L_t / \partial \theta` over the trunk's parameters :math:`\theta`:
         the T vector-Jacobian products of the :math:`G_t` through the trunk, in one
         ``torch.autograd.grad(..., is_grads_batched=True)`` call (``torch.vmap``). **Cost per
         step: T backward passes through the trunk** (batched) and a T x (trunk's parameters)
         Jacobian in memory;
       - ``"representation"`` (MGDA-UB of Sener & Koltun, NeurIPS 2018; LibMTL's ``rep_grad``):
         :math:`J_t = G_t`, flattened over the batch and features. **Cost per step: one backward
         pass through the trunk**, as equal weights, plus the heads' T gradients at :math:`z`;
    3. :math:`w` = the weighting of :math:`J J^\top` (in float64; :math:`J J^\top` in :math:`J`'s
       dtype, at least float32), T x T work: negligible beside the backward passes except for the
       methods that solve an optimisation problem per step (CAGrad's and Nash-MTL's cvxpy,
       UPGrad's T quadratic programs), which the step-overhead bench measures;
    4. the trunk's gradient is :math:`\sum_t w_t J_t`: added to each trunk parameter's ``.grad``
       (parameters), or one backward pass of :math:`\sum_t w_t G_t` from :math:`z` (representation).

    The trunk's parameters are those of the model (``params``, filled by :meth:`build`) that
    :math:`z` depends on; the heads' are the others. A task loss must read the trunk only through
    its head. ``weights`` is the :math:`w` of the last step (the multipliers of the task gradients
    in the trunk's gradient; :math:`1/T` each before the first step), in the last losses' device
    and dtype (promoted to at least float32); the training loop reads them before each step, so
    its ``mean_weights`` lag by one step for these methods (a step's weights depend on its batch).
    Nothing is renormalised: MGDA's :math:`w` sums to 1, PCGrad's to about T; IMTL-G's and
    Aligned-MTL's may be negative. No DDP averaging of :math:`J`. A non-finite loss raises
    :class:`~.base.NonFiniteLossError` before anything changes, and a weighting that gives a
    non-finite weight raises before any ``.grad`` is written. Subclasses give the weighting
    (:meth:`_gramian_weighting`, or :meth:`_weigh` for one that reads :math:`J`) and its options.
    """

    MODEL_ARGUMENTS = ("params",)
    uses_branch = True

    @classmethod
    def build(cls, num_tasks: int, model: Any = None, shared_layer: str | None = None, **options: Any) -> Balancer:
        """The method for ``model``, whose forward must take ``branch=`` (checked here, so that a
        wrong model fails before training); its trainable parameters are ``params``."""
        name = cls.__name__
        if model is not None and not accepts_branch(model):
            raise ValueError(
                f"{name} needs a model whose forward takes branch= (MultiHeadNet), got {type(model).__name__}: "
                "it reads the trunk's output through branch; build the model as a MultiHeadNet or give its "
                "forward a branch argument")
        params = [] if model is None else [p for p in model.parameters() if p.requires_grad]
        return cls(num_tasks, params, **options)

    def __init__(self, num_tasks: int, params: Iterable[torch.Tensor], jacobian: Jacobian = "parameters") -> None:
        super().__init__(num_tasks)
        if jacobian not in JACOBIANS:
            raise ValueError(f"jacobian must be one of {', '.join(JACOBIANS)}, got {jacobian!r}")
        self.jacobian = jacobian
        self._params = [params] if isinstance(params, torch.Tensor) else list(params)
        if not self._params:
            raise ValueError(f"params is empty: {type(self).__name__} needs the model's parameters "
                             "(params=model.parameters(), or make_balancer(..., model=model))")
        self._weights64 = [1.0 / num_tasks] * num_tasks
        self._dtype, self._device = torch.float32, torch.device("cpu")

    def shared_parameters(self) -> list[torch.Tensor]:
        """The model's parameters this method was built on (the trunk's are found among them)."""
        return list(self._params)

    def backward(self, losses: torch.Tensor) -> None:
        self.check_losses(losses)
        features, views = self.take_views()
        # one backward through the heads: each G_t at its view, each head its own loss's gradient
        found = torch.autograd.grad(losses.sum(), [*views, *self._params], allow_unused=True)
        at_z = torch.stack([g if g is not None else torch.zeros_like(v) for g, v in zip(found, views)])
        heads = [(p, g) for p, g in zip(self._params, found[self.num_tasks:]) if g is not None]
        dtype = torch.promote_types(at_z.dtype, torch.float32)
        trunk: list[tuple[torch.Tensor, torch.Tensor]] = []
        if not features.requires_grad:  # a frozen trunk: nothing to aggregate
            weights = torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=torch.float64)
        elif self.jacobian == "representation":
            weights = self._weights_of(at_z.reshape(self.num_tasks, -1).to(dtype))
        else:
            trunk = self._trunk_jacobian(features, at_z)
            weights = self._weights_of(torch.cat([g.reshape(self.num_tasks, -1).to(dtype) for _, g in trunk], dim=1))
        # nothing is written before the weights are known: a failure leaves every .grad as it was
        for param, grad in heads:
            _accumulate(param, grad)
        if features.requires_grad and self.jacobian == "representation":
            features.backward(_combine(weights, at_z).to(features.dtype))
        for param, grad in trunk:
            _accumulate(param, _combine(weights, grad))
        self._weights64 = weights.tolist()
        self._dtype, self._device = torch.promote_types(losses.dtype, torch.float32), losses.device
        self.step_count += 1

    def _trunk_jacobian(self, features: torch.Tensor, at_z: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(parameter, its T task gradients) for each trunk parameter: the :math:`G_t` back through
        the trunk in one batched backward."""
        with warnings.catch_warnings():  # vmap's note on ops it batches by a loop: slower, same numbers
            warnings.filterwarnings("ignore", message=".*performance drop.*")
            grads = torch.autograd.grad(features, self._params, grad_outputs=at_z.to(features.dtype),
                                        is_grads_batched=True, allow_unused=True)
        trunk = [(p, g) for p, g in zip(self._params, grads) if g is not None]
        if not trunk:
            raise ValueError(f"{type(self).__name__}: the trunk's output depends on none of the parameters it was "
                             "built on; build it from the model that computes the losses")
        return trunk

    def _weights_of(self, jacobian: torch.Tensor) -> torch.Tensor:
        """The method's weights for ``jacobian`` (T, n), float64 on the host; a non-finite weight
        raises with the balancer unchanged."""
        weights = self._weigh(jacobian).detach().to(device="cpu", dtype=torch.float64)
        if weights.shape != (self.num_tasks,) or not all(math.isfinite(w) for w in weights.tolist()):
            raise ValueError(f"{type(self).__name__}'s weighting gave {weights.tolist()} at step {self.step_count}: "
                             "not T finite weights (check the losses' scale, or use jacobian='parameters')")
        return weights

    def _weigh(self, jacobian: torch.Tensor) -> torch.Tensor:
        """The weights of the task gradients ``jacobian`` (T, n): by default the method's Gramian
        weighting (:meth:`_gramian_weighting`) of :math:`J J^\\top` in float64."""
        return self._gramian_weighting()((jacobian @ jacobian.T).double())

    def _gramian_weighting(self) -> Any:
        """The TorchJD ``Weighting`` of the Gramian that gives this method's weights."""
        raise NotImplementedError

    @property
    def weights(self) -> torch.Tensor:
        return torch.tensor(self._weights64, dtype=torch.float64).to(device=self._device, dtype=self._dtype)

    def _options(self) -> dict[str, Any]:
        """The options a saved state must have been saved with (``jacobian`` and the method's)."""
        return {"jacobian": self.jacobian}

    def _extra_state(self) -> dict[str, Any]:
        """The method's own state besides the weights (a random stream, Nash-MTL's solver state)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`_extra_state`; called only after every check passed."""

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(self._options(), weights=torch.tensor(self._weights64, dtype=torch.float64),
                     **self._extra_state())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        name, ours = type(self).__name__, self._options()
        if state.get("num_tasks") == self.num_tasks:  # else the base class says so
            for key in (*ours, "weights", *self._extra_state()):
                if key not in state:
                    raise ValueError(f"state_dict has no {key!r}: pass a state from {name}.state_dict()")
            saved = {key: state[key] for key in ours}
            if saved != ours:
                raise ValueError(f"state_dict is for {saved}, but this {name} has {ours}; build it with the same options")
            weights = state["weights"]
            if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (self.num_tasks,):
                raise ValueError(f"state_dict['weights'] must be a tensor of shape ({self.num_tasks},), got {weights!r}; "
                                 f"pass a state from {name}.state_dict()")
        super().load_state_dict(state)
        self._weights64 = state["weights"].double().tolist()
        self._load_extra_state(state)
