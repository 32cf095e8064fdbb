"""Metrics accumulated batch by batch over a whole split, never holding the split's outputs.

A :class:`Metric` reads one task (``index`` into the outputs and targets of a batch) and keeps
running sums in float64 on the batches' device; ``compute()`` turns them into numbers named
``"<task>/<metric>"``. :class:`Metrics` runs several, e.g. one per task; a problem's
``metrics()`` returns a fresh one, and ``Problem.evaluate`` feeds it every batch of a split.

Every accumulator used for a problem's score gives ``"<task>/normalized_error"``: scale-free,
0 when perfect (the error rate for classification, MSE / variance of the targets for
regression); ``Problem.score`` averages it over tasks.

Each Metric class declares its names' directions (``directions``: True when higher is better),
its task's ``primary`` metric (e.g. for Delta m%) and the ``kind`` of task; :data:`DIRECTIONS`
gathers every declared name, so :func:`higher_is_better` answers from a name alone.
"""

from __future__ import annotations

import math
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


class _Accuracy(Metric):
    """Counts of right predictions; ``<task>/accuracy`` and ``<task>/normalized_error``."""

    directions = {"accuracy": True, "normalized_error": False}
    primary = "accuracy"
    kind = "classification"

    def __init__(self, task: str, index: int) -> None:
        super().__init__(task, index)
        self.count = 0
        self.correct: torch.Tensor | None = None

    def _add(self, hits: torch.Tensor, count: int) -> None:
        self.correct = hits if self.correct is None else self.correct + hits
        self.count += count

    def compute(self) -> dict[str, float]:
        if self.count == 0 or self.correct is None:
            raise self._empty()
        accuracy = float(self.correct.double() / self.count)
        return {f"{self.task}/accuracy": accuracy, f"{self.task}/normalized_error": 1.0 - accuracy}


class ErrorRate(_Accuracy):
    """Classification into C >= 2 classes: ``<task>/accuracy`` = correct / n and
    ``<task>/normalized_error`` = 1 - accuracy, where a prediction is ``argmax`` of the output
    (logits or probabilities) along ``class_dim`` and n counts every target element (class
    indices, an integer tensor shaped as the output without ``class_dim``). Other shapes, one
    logit per sample among them (use :class:`BinaryErrorRate`), raise a one-line ValueError."""

    def __init__(self, task: str, index: int, class_dim: int = -1) -> None:
        super().__init__(task, index)
        self.class_dim = class_dim

    def update(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        logits, target = self._pair(outputs, targets)
        where, dims = f"ErrorRate for task {self.task!r}", logits.dim()
        if dims == 0 or not -dims <= self.class_dim < dims:
            raise ValueError(f"{where}: output of shape {tuple(logits.shape)} has no class_dim {self.class_dim}; "
                             f"give one score per class along class_dim")
        classes, dim = logits.shape[self.class_dim], self.class_dim % dims
        expected = logits.shape[:dim] + logits.shape[dim + 1:]
        if classes < 2:
            raise ValueError(f"{where}: output of shape {tuple(logits.shape)} has {classes} class along class_dim "
                             f"{self.class_dim}; for a binary task with one logit use BinaryErrorRate")
        if target.shape != expected or target.is_floating_point() or target.is_complex():
            raise ValueError(f"{where}: targets must be class indices, an integer tensor of shape {tuple(expected)}, "
                             f"got {target.dtype} {tuple(target.shape)}; for 0/1 targets of one logit use "
                             f"BinaryErrorRate")
        self._add((logits.argmax(dim=self.class_dim) == target).sum(), target.numel())


class BinaryErrorRate(_Accuracy):
    """Binary classification from one logit per sample: a logit > 0 predicts 1.
    ``<task>/accuracy`` and ``<task>/normalized_error`` = 1 - accuracy, as :class:`ErrorRate`.

    Outputs and targets of shape (B,) or (B, 1), the targets 0 or 1 of any dtype (a binary
    cross-entropy's floats, integers, booleans); more generally the same shape but for a trailing
    dimension of size 1. Other shapes or labels raise a one-line ValueError."""

    def update(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        logits, target = self._pair(outputs, targets)
        squeeze = lambda t: t.squeeze(-1) if t.dim() > 1 and t.shape[-1] == 1 else t  # noqa: E731
        if squeeze(logits).shape != squeeze(target).shape or logits.dim() == 0:
            raise ValueError(f"BinaryErrorRate for task {self.task!r}: output {tuple(logits.shape)} and targets "
                             f"{tuple(target.shape)} must have the same shape, (B,) or (B, 1): one logit per sample")
        target = squeeze(target)
        if not bool(((target == 0) | (target == 1)).all()):
            raise ValueError(f"BinaryErrorRate for task {self.task!r}: targets must be 0 or 1; for class indices "
                             f"with one score per class use ErrorRate")
        self._add(((squeeze(logits) > 0) == (target != 0)).sum(), target.numel())


class NormalizedMSE(Metric):
    r"""Regression: ``<task>/rmse`` and ``<task>/normalized_error`` = MSE / Var.

    Each sample's target is flattened to D outputs (the output is reshaped to the target's
    shape). Over the split's n samples:

    * :math:`\mathrm{MSE} = \frac{1}{nD} \sum_{s,j} (o_{sj} - t_{sj})^2` (the mean over all
      elements), ``rmse`` its square root;
    * :math:`\mathrm{Var} = \frac{1}{D} \sum_j \frac{1}{n} \sum_s (t_{sj} - \bar t_j)^2`: the
      population variance of each output over the split, averaged over the D outputs.

    Predicting each output's mean therefore scores 1, a perfect fit 0, and scaling outputs and
    targets by c leaves it unchanged. A split whose targets are all equal (Var = 0) scores inf.

    Running sums in float64: n, the sum of squared errors, and per output the mean and the sum
    of squared deviations from it, merged batch by batch with Chan et al.'s pairwise update
    (:math:`\delta = \bar t_b - \bar t`, :math:`M_2 \mathrel{+}= M_{2,b} + \delta^2 n n_b /
    (n + n_b)`), accurate when the targets' mean is large against their spread. ``scale``: one
    unit of the outputs and targets in the units to report (e.g. the std of standardized
    targets); ``rmse`` is multiplied by it.
    """

    directions = {"rmse": False, "normalized_error": False}
    primary = "rmse"
    kind = "regression"

    def __init__(self, task: str, index: int, scale: float = 1.0) -> None:
        super().__init__(task, index)
        self.scale = _check_scale(scale)
        self.count = 0
        self.squared_error: torch.Tensor | None = None
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def update(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        output, target = self._pair(outputs, targets)
        target = target.double()
        n = target.shape[0] if target.dim() else 1
        if n == 0:
            return
        output = output.reshape(target.shape).double()
        error = (output - target).square().sum()
        flat = target.reshape(n, -1)
        mean = flat.mean(dim=0)
        m2 = (flat - mean).square().sum(dim=0)
        if self.count == 0 or self.mean is None or self.m2 is None or self.squared_error is None:
            self.squared_error, self.mean, self.m2 = error, mean, m2
        else:
            total = self.count + n
            delta = mean - self.mean
            self.mean = self.mean + delta * (n / total)
            self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
            self.squared_error = self.squared_error + error
        self.count += n

    def compute(self) -> dict[str, float]:
        if self.count == 0 or self.m2 is None or self.squared_error is None:
            raise self._empty()
        mse = float(self.squared_error) / (self.count * self.m2.numel())
        variance = float((self.m2 / self.count).mean())
        normalized = mse / variance if variance > 0 else math.inf
        return {f"{self.task}/rmse": self.scale * math.sqrt(mse), f"{self.task}/normalized_error": normalized}


class MeanAbsoluteError(Metric):
    """``<task>/mae``: the mean over all elements of |output - target| (output reshaped to the
    target's shape), from a float64 running sum, times ``scale`` (the size of one unit of the
    outputs and targets in the units to report, e.g. the standard deviation of standardized
    targets)."""

    directions = {"mae": False}
    primary = "mae"
    kind = "regression"

    def __init__(self, task: str, index: int, scale: float = 1.0) -> None:
        super().__init__(task, index)
        self.scale = _check_scale(scale)
        self.count = 0
        self.total: torch.Tensor | None = None

    def update(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        output, target = self._pair(outputs, targets)
        error = (output.reshape(target.shape).double() - target.double()).abs().sum()
        self.total = error if self.total is None else self.total + error
        self.count += target.numel()

    def compute(self) -> dict[str, float]:
        if self.count == 0 or self.total is None:
            raise self._empty()
        return {f"{self.task}/mae": self.scale * float(self.total) / self.count}


def _check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    return float(scale)


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


def regression_metrics(task: str, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``"<task>/rmse"`` and ``"<task>/normalized_error"`` of ``output`` against ``target`` taken
    as one whole split: :class:`NormalizedMSE` over that single batch."""
    metric = NormalizedMSE(task, 0)
    metric.update([output], [target])
    return metric.compute()
