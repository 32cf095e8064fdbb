"""The interface of a metric (:class:`Metric`), the container that runs several
(:class:`Metrics`), and the names every metric declares with their directions
(:data:`DIRECTIONS`, :func:`higher_is_better`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

import torch

#: the kinds of task (Uncertainty weighting's factor depends on it; see Problem.task_kinds)
TASK_KINDS: tuple[str, ...] = ("regression", "classification")
TaskKind = Literal["regression", "classification"]

#: metric name (after "<task>/") -> whether higher is better: the names every Metric subclass
#: declares in ``directions``, and those ``Problem.evaluate`` adds ("<task>/loss", "score")
DIRECTIONS: dict[str, bool] = {"loss": False, "score": False}


def higher_is_better(name: str) -> bool:
    """Whether a larger value of the metric ``name`` is better. ``name`` as reported
    (``"digit/accuracy"``), with a split (``"val/digit/accuracy"``) or bare (``"accuracy"``): its
    last part decides. A name no Metric declares raises a one-line ValueError."""
    key = str(name).rsplit("/", 1)[-1]
    if key not in DIRECTIONS:
        raise ValueError(f"unknown metric name {name!r}: no Metric declares {key!r} (known: "
                         f"{', '.join(sorted(DIRECTIONS))}); declare it in your Metric's directions")
    return DIRECTIONS[key]


class Metric(ABC):
    """Running sums for one task over the batches of a split."""

    #: the names it reports after "<task>/", each True when higher is better
    directions: ClassVar[dict[str, bool]] = {}
    #: the one of ``directions`` that stands for its task (e.g. in Delta m%), or None
    primary: ClassVar[str | None] = None
    #: the kind of task it measures, or None when it does not say
    kind: ClassVar[TaskKind | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for key, higher in cls.directions.items():
            if DIRECTIONS.get(key, higher) != higher:
                raise TypeError(f"{cls.__name__}: metric name {key!r} is already declared "
                                f"{'lower' if higher else 'higher'}-is-better; give it another name")
        if cls.primary is not None and cls.primary not in cls.directions:
            raise TypeError(f"{cls.__name__}: primary {cls.primary!r} is not one of its directions")
        if cls.kind is not None and cls.kind not in TASK_KINDS:
            raise TypeError(f"{cls.__name__}: kind must be one of {', '.join(TASK_KINDS)}, got {cls.kind!r}")
        DIRECTIONS.update(cls.directions)

    def __init__(self, task: str, index: int) -> None:
        if not isinstance(task, str) or not task:
            raise ValueError(f"task must be a non-empty string, got {task!r}")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"index must be an integer >= 0, got {index!r}")
        self.task = task
        self.index = index

    @abstractmethod
    def update(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        """Add one batch: ``outputs[index]`` against ``targets[index]``."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """The metric over every batch added so far."""

    def _pair(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.index >= len(outputs) or self.index >= len(targets):
            raise ValueError(
                f"metric for task {self.task!r} reads index {self.index}, but the batch has "
                f"{len(outputs)} outputs and {len(targets)} targets"
            )
        return outputs[self.index].detach(), targets[self.index].detach()

    def _empty(self) -> ValueError:
        return ValueError(f"metric for task {self.task!r} has seen no sample: update it first")


class Metrics:
    """Several metrics fed the same batches; ``compute()`` merges their results in order.

    ``primary_metrics()`` and ``task_kinds()`` read what each metric's class declares."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)
        for metric in self.metrics:
            if not (callable(getattr(metric, "update", None)) and callable(getattr(metric, "compute", None))):
                raise TypeError(f"each metric needs update() and compute(), got {type(metric).__name__}")

    def update(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        for metric in self.metrics:
            metric.update(outputs, targets)

    def compute(self) -> dict[str, float]:
        result: dict[str, float] = {}
        for metric in self.metrics:
            result.update(metric.compute())
        return result

    def primary_metrics(self) -> dict[str, str]:
        """Task -> the name (``"<task>/<primary>"``) of its first metric's ``primary``."""
        primary: dict[str, str] = {}
        for metric in self.metrics:
            name, task = getattr(metric, "primary", None), getattr(metric, "task", None)
            if name is not None and task is not None:
                primary.setdefault(task, f"{task}/{name}")
        return primary

    def task_kinds(self) -> dict[str, str]:
        """Task -> the kind its metrics declare; a task whose metrics disagree raises."""
        kinds: dict[str, str] = {}
        for metric in self.metrics:
            kind, task = getattr(metric, "kind", None), getattr(metric, "task", None)
            if kind is None or task is None:
                continue
            if kinds.setdefault(task, kind) != kind:
                raise ValueError(f"task {task!r} has metrics of two kinds, {kinds[task]} and {kind}; "
                                 f"override Problem.task_kinds() to say which it is")
        return kinds
