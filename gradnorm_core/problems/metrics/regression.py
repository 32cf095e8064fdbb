"""Regression metrics: the MSE over the targets' variance (:class:`NormalizedMSE`) and the mean
absolute error (:class:`MeanAbsoluteError`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import Metric


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


def regression_metrics(task: str, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``"<task>/rmse"`` and ``"<task>/normalized_error"`` of ``output`` against ``target`` taken
    as one whole split: :class:`NormalizedMSE` over that single batch."""
    metric = NormalizedMSE(task, 0)
    metric.update([output], [target])
    return metric.compute()
