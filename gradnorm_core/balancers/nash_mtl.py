"""Nash-MTL, multitask learning as a bargaining game (Navon et al., ICML 2022), on TorchJD's
``NashMTL`` aggregator (cvxpy, ECOS)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch

from .base import check_positive
from .jacobian import Jacobian, JacobianBalancer, check_count
from .registry import register


@register("nash_mtl")
class NashMTL(JacobianBalancer):
    r"""Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya, "Multi-Task Learning
    as a Bargaining Game", ICML 2022; TorchJD's ``NashMTL``): the update :math:`g = \sum_t w_t J_t`
    is the Nash bargaining solution among the tasks, whose weights solve

    .. math::  (J J^\top)\, w = 1 / w \quad (\text{elementwise}), \qquad w > 0,

    i.e. each task's share :math:`w_t \langle J_t, g \rangle = 1`. As in the paper's code, the
    Gramian is divided by its Frobenius norm and the equation is approached by a sequence of
    convex programs (the concave term linearised at the previous :math:`w`; at most
    ``optim_niter`` of them, solved by cvxpy's ECOS), warm-started from the previous step's
    :math:`w`. The weights are recomputed every ``update_weights_every`` steps and reused in
    between (the paper's speed-up; 1 is every step). When ``max_norm`` > 0 and
    :math:`\lVert g \rVert` exceeds it, :math:`w` is scaled so that it equals ``max_norm`` (the
    code's default 1.0; 0 turns it off).

    The method is stateful: the step counter, the previous :math:`w` and the Gramian's norm are in
    ``state_dict`` and a restored balancer resumes exactly. ``jacobian="parameters"`` (default)
    takes :math:`J` on the trunk's parameters (T backward passes per step, batched);
    ``"representation"`` on the trunk's output (one backward pass). Per update it also solves up
    to ``optim_niter`` small convex programs (cvxpy), which the step-overhead bench measures.
    Everything else is :class:`~.jacobian.JacobianBalancer`'s.
    """

    def __init__(self, num_tasks: int, params: Iterable[torch.Tensor], jacobian: Jacobian = "parameters",
                 max_norm: float = 1.0, update_weights_every: int = 1, optim_niter: int = 20) -> None:
        super().__init__(num_tasks, params, jacobian)
        self.max_norm = check_positive("max_norm", max_norm, allow_zero=True)
        self.update_weights_every = check_count("update_weights_every", update_weights_every)
        self.optim_niter = check_count("optim_niter", optim_niter)
        from torchjd.aggregation import NashMTL as Aggregator

        self._weighting = Aggregator(num_tasks, max_norm=self.max_norm, update_weights_every=self.update_weights_every,
                                     optim_niter=self.optim_niter).weighting

    def _weigh(self, jacobian: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():  # cvxpy's note that the problem is not DPP: no faster re-solves
            warnings.filterwarnings("ignore", message=".*not DPP.*")
            return self._weighting(jacobian)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "max_norm": self.max_norm, "update_weights_every": self.update_weights_every,
                "optim_niter": self.optim_niter}

    def _extra_state(self) -> dict[str, Any]:
        weighting = self._weighting
        return {"solver_step": int(weighting.step), "previous_alpha": torch.from_numpy(weighting.prvs_alpha.copy()),
                "normalization_factor": torch.from_numpy(weighting.normalization_factor.copy())}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        weighting = self._weighting
        weighting.reset()
        weighting.prvs_alpha = state["previous_alpha"].numpy().copy()
        weighting.normalization_factor = state["normalization_factor"].numpy().copy()
        if int(state["solver_step"]) > 0:
            # TorchJD builds its cvxpy problem at the first call (step 0); a restored one past it
            # builds it here, from the restored previous weights
            weighting._init_optim_problem()
        weighting.step = float(state["solver_step"])
