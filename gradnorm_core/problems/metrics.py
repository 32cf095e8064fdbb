"""Metrics accumulated batch by batch over a whole split, never holding the split's outputs.

A :class:`Metric` reads one task (``index`` into the outputs and targets of a batch) and keeps
running sums in float64 on the batches' device; ``compute()`` turns them into numbers named
``"<task>/<metric>"``. :class:`Metrics` runs several, e.g. one per task; a problem's
``metrics()`` returns a fresh one, and ``Problem.evaluate`` feeds it every batch of a split.

Every accumulator used for a problem's score gives ``"<task>/normalized_error"``: scale-free,
0 when perfect (the error rate for classification, MSE / variance of the targets for
regression); ``Problem.score`` averages it over tasks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import torch


class Metric(ABC):
    """Running sums for one task over the batches of a split."""

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


class ErrorRate(Metric):
    """Classification: ``<task>/accuracy`` = correct / n and ``<task>/normalized_error`` =
    1 - accuracy, where a prediction is ``argmax`` of the output (logits or probabilities)
    along ``class_dim`` and n counts every target element (class indices)."""

    def __init__(self, task: str, index: int, class_dim: int = -1) -> None:
        super().__init__(task, index)
        self.class_dim = class_dim
        self.count = 0
        self.correct: torch.Tensor | None = None

    def update(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        logits, target = self._pair(outputs, targets)
        hits = (logits.argmax(dim=self.class_dim) == target).sum()
        self.correct = hits if self.correct is None else self.correct + hits
        self.count += target.numel()

    def compute(self) -> dict[str, float]:
        if self.count == 0 or self.correct is None:
            raise self._empty()
        accuracy = float(self.correct.double() / self.count)
        return {f"{self.task}/accuracy": accuracy, f"{self.task}/normalized_error": 1.0 - accuracy}


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
    of squared deviations from it, each batch merged in with Chan et al.'s pairwise update
    (:math:`\delta = \bar t_b - \bar t`, :math:`M_2 \mathrel{+}= M_{2,b} + \delta^2 n n_b /
    (n + n_b)`), which equals the sums of t and t² formula exactly in exact arithmetic and
    stays accurate when the targets' mean is large against their spread.
    """

    def __init__(self, task: str, index: int) -> None:
        super().__init__(task, index)
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
        return {f"{self.task}/rmse": math.sqrt(mse), f"{self.task}/normalized_error": normalized}


class MeanAbsoluteError(Metric):
    """``<task>/mae``: the mean over all elements of |output - target| (output reshaped to the
    target's shape), from a float64 running sum."""

    def __init__(self, task: str, index: int) -> None:
        super().__init__(task, index)
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
        return {f"{self.task}/mae": float(self.total) / self.count}


class Metrics:
    """Several metrics fed the same batches; ``compute()`` merges their results in order."""

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


def regression_metrics(task: str, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``"<task>/rmse"`` and ``"<task>/normalized_error"`` of ``output`` against ``target`` taken
    as one whole split: :class:`NormalizedMSE` over that single batch."""
    metric = NormalizedMSE(task, 0)
    metric.update([output], [target])
    return metric.compute()
