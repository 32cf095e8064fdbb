"""``single_task``: the single-task reference of Delta m%, one training per task alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import PrivateAttr, model_validator

from ..validation import problem
from .base import GRID, SearchType
from .options import weights_label

if TYPE_CHECKING:
    from trainables import TrialConfig

__all__ = ["SingleTaskSearch"]


class SingleTaskSearch(SearchType):
    """T trainings, each on one task alone: static weights 1 for that task and 0 for the others,
    on the same network as every other search (the other heads are built and evaluated, and get
    no gradient). Each trial's test metrics at its task's best validation epoch are the reference
    M_stl of Delta m% (see :mod:`sweeps.report.delta`); the search is no competitor in the
    comparison. Trials train at the sweep's ``training.lr`` (the reference is not tuned: no
    ``lr``) and are labelled ``task=<name>``; ``repeats`` averages the reference over seeds.
    No early stopping: its trials train different tasks, which ASHA would compare as one.
    """

    method: ClassVar[str] = "static"
    reference: ClassVar[bool] = True

    type: Literal["single_task"] = "single_task"

    _task_names: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _neither_lr_nor_scheduler(self) -> SingleTaskSearch:
        if self.lr is not None:
            raise problem("the single-task reference trains at the sweep's training.lr",
                          "remove lr here (set training.lr for the whole sweep)", ("lr",))
        if self.scheduler is not None:
            raise problem("each trial trains another task alone, so early stopping would compare unlike trials",
                          "remove scheduler", ("scheduler",))
        return self

    def space(self) -> str:
        return GRID

    def check(self, num_tasks: int, task_names: Sequence[str], problem_name: str) -> None:
        self._task_names = list(task_names)

    def own_points(self, num_tasks: int, seed: int) -> list[dict[str, Any]]:
        return [{"weights": [1.0 if i == task else 0.0 for i in range(num_tasks)]} for task in range(num_tasks)]

    def own_label(self, config: TrialConfig) -> str:
        weights = config.balancer.options.get("weights") or []
        alone = [i for i, weight in enumerate(weights) if weight > 0]
        if len(alone) == 1 and alone[0] < len(self._task_names):
            return f"task={self._task_names[alone[0]]}"
        return weights_label(config)
