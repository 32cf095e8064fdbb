"""Classification metrics: the error rate over classes (:class:`ErrorRate`) and from one logit
(:class:`BinaryErrorRate`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import Metric


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
