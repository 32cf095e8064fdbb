"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from ..problems.metrics import TASK_KINDS, TaskKind
from .log_scales import LearnedLogScales
from .registry import register

#: Kendall et al.'s factor on each kind of task's loss: 1 / (2 sigma^2) for a Gaussian
#: likelihood (regression), 1 / sigma^2 for a softmax with temperature sigma^2 (classification)
FACTORS: dict[str, float] = {"regression": 0.5, "classification": 1.0}


def check_kinds(kinds: Sequence[str] | None, num_tasks: int) -> list[str]:
    """``kinds`` as T task kinds (every task ``"regression"`` for None), or a one-line error."""
    if kinds is None:
        return ["regression"] * num_tasks
    if isinstance(kinds, (str, bytes)) or not hasattr(kinds, "__len__") or len(kinds) != num_tasks:
        raise ValueError(f"kinds must be a list of {num_tasks} task kinds, one per task "
                         f"({' or '.join(TASK_KINDS)}), got {kinds!r}")
    for index, kind in enumerate(kinds):
        if kind not in TASK_KINDS:
            raise ValueError(f"kinds[{index}] must be {' or '.join(map(repr, TASK_KINDS))}, got {kind!r}")
    return [str(kind) for kind in kinds]


@register("uncertainty")
class UncertaintyWeighting(LearnedLogScales):
    r"""Task weights from learnable homoscedastic uncertainties (Kendall, Gal & Cipolla, "Multi-Task
    Learning Using Uncertainty to Weigh Losses for Scene Geometry and Semantics", CVPR 2018).

    Each task has a learnable log-variance :math:`s_i = \log \sigma_i^2` (init 0) and the
    paper's loss, term by term:

    .. math::

        L_{total} = \sum_{i=1}^{T} \left( a_i e^{-s_i} L_i + \tfrac{1}{2} s_i \right), \qquad
        a_i = \begin{cases} \tfrac12 & \text{regression: } \tfrac{1}{2\sigma_i^2} L_i + \log\sigma_i
              \ \text{(eq. 7, Gaussian likelihood)} \\
              1 & \text{classification: } \tfrac{1}{\sigma_i^2} L_i + \log\sigma_i
              \ \text{(eq. 10, softmax with temperature } \sigma_i^2\text{)} \end{cases}

    ``kinds`` gives each task's kind (``"regression"`` or ``"classification"``); None treats
    every task as regression, the form LibMTL's ``UW`` applies to all tasks. A training run
    built from a problem passes ``problem.task_kinds()`` (the trainable does).

    Per step, with :math:`s` as it was before the step:

    1. the network's gradient is that of :math:`\sum_i a_i e^{-s_i} L_i`;
    2. :math:`s` takes one step of its own optimizer (``"adam"`` or ``"sgd"``, learning rate
       ``lr``) on :math:`\partial L_{total} / \partial s_i = \tfrac12 - a_i e^{-s_i} L_i`.

    For a fixed :math:`L_i > 0` the minimiser is :math:`e^{s_i} = 2 a_i L_i`, where the weight
    :math:`a_i e^{-s_i}` is :math:`1 / (2 L_i)` for either kind.

    ``weights`` is :math:`a_i e^{-s_i}` (the multipliers of :math:`L_i` in the network's
    gradient; :math:`a_i` before the first step); ``log_variances`` is :math:`s`. Both are
    detached copies.

    Choices the paper leaves open: :math:`s` starts at 0 (LibMTL starts at -0.5) and has its own
    optimizer (default Adam, ``lr`` 0.025), so it does not depend on the network's training
    settings and can be tuned alone. Any finite loss is accepted. :math:`s` is updated on the
    host in float64; ``weights`` and ``log_variances`` follow the losses' device and dtype
    (promoted to at least float32); before the first step they are on the CPU in float32.
    ``load_state_dict`` refuses a state saved with another ``optimizer``, ``lr`` or ``kinds``.
    """

    SIGN = -1
    REGULARISER = 0.5
    STATE_KEY = "log_variances"

    def __init__(
        self,
        num_tasks: int,
        lr: float = 0.025,
        optimizer: Literal["adam", "sgd"] = "adam",
        kinds: Sequence[TaskKind] | None = None,
    ) -> None:
        super().__init__(num_tasks, lr, optimizer)
        self.kinds = check_kinds(kinds, num_tasks)
        self._factors = [FACTORS[kind] for kind in self.kinds]

    def _options(self) -> dict[str, Any]:
        return {"kinds": list(self.kinds)}

    @property
    def log_variances(self) -> torch.Tensor:
        """The current log variances :math:`s`, a detached 1-D tensor."""
        return self._log_scales()
