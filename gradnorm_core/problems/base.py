"""The public interface of a multitask problem: lazily loaded data splits, a model, task losses,
metrics accumulated batch by batch, and one scale-free score."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .data import Split, batch_length, check_dataset, iterate_batches
from .metrics import TASK_KINDS, Metrics, regression_metrics
from .models import Branch, MultiHeadNet, accepts_branch, check_seed, relu_mlp, seeded_init

__all__ = [
    "Branch", "MultiHeadNet", "Problem", "Split", "accepts_branch", "chance_binary_cross_entropy",
    "chance_cross_entropy", "chance_mse", "check_seed", "check_size", "regression_metrics", "relu_mlp",
    "seeded_init",
]

SPLITS = ("train", "val", "test")


def check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def chance_cross_entropy(labels: torch.Tensor) -> float:
    """The mean cross-entropy of the best constant logits on ``labels`` (class indices).

    The best constant logits are the log class frequencies p_k of ``labels``, and their mean
    cross-entropy is the entropy of those frequencies, -sum_k p_k ln p_k (natural log; classes
    that never occur contribute 0, the infimum their logits approach at -inf).
    """
    labels = labels.detach().reshape(-1).to("cpu", torch.int64)
    if labels.numel() == 0:
        raise ValueError("chance_cross_entropy needs at least one label")
    counts = torch.bincount(labels).double()
    p = counts[counts > 0] / labels.numel()
    return float(-(p * p.log()).sum()) + 0.0  # + 0.0: a single class gives 0.0, not -0.0


def chance_binary_cross_entropy(targets: torch.Tensor) -> float:
    """The mean binary cross-entropy of the best constant logit on ``targets`` (0/1 labels, or
    probabilities in [0, 1], of any shape; ``F.binary_cross_entropy_with_logits``'s mean).

    The best constant predicts p, the mean of the targets, and its mean cross-entropy is the
    binary entropy -(p ln p + (1 - p) ln(1 - p)) (natural log; 0 when every label is the same).
    For soft targets it is that of their mean, the infimum over constants. Computed in float64.
    """
    flat = targets.detach().to("cpu", torch.float64).reshape(-1)
    if flat.numel() == 0:
        raise ValueError("chance_binary_cross_entropy needs at least one target")
    if not bool(((flat >= 0) & (flat <= 1)).all()):
        raise ValueError("chance_binary_cross_entropy needs targets in [0, 1] (0/1 labels or probabilities)")
    p = float(flat.mean())
    return sum(-q * math.log(q) for q in (p, 1.0 - p) if q > 0) + 0.0  # + 0.0: never -0.0


def chance_mse(targets: torch.Tensor) -> float:
    """The MSE of the best constant prediction on ``targets`` (N, ...), the MSE being the mean
    over all elements (``F.mse_loss``'s default).

    A constant prediction is one value per output element, the same for every sample; the best
    is each element's mean over the N samples, and its MSE is the population variance (mean
    squared deviation from the mean) of each output element, averaged over the outputs. For
    targets of shape (N,) that is simply their population variance. Computed in float64 from
    the tensor as stored (the values the loss sees).
    """
    flat = targets.detach().to("cpu", torch.float64).reshape(targets.shape[0], -1)
    if flat.shape[0] == 0:
        raise ValueError("chance_mse needs at least one target")
    return float(flat.var(dim=0, unbiased=False).mean())


class Problem(ABC):
    """A multitask problem: data, a model, losses, metrics and a score. Subclass it for your own.

    * ``name`` and ``task_names`` (T names) are known right after construction. **Construction
      must be cheap and load no data**: a sweep constructs the problem only to learn its task
      names and check its options.
    * ``load_data()`` returns the train, val and test splits as map-style
      ``torch.utils.data.Dataset`` s whose items are ``(x, targets)``, ``targets`` a tuple of T
      tensors. :class:`Split` holds in-memory tensors (the training loop then indexes batches
      on the device directly); any other Dataset is batched by a ``DataLoader``.
      ``problem.train``, ``.val`` and ``.test`` call it once and keep its result. Attributes
      that ``load_data`` sets (named in ``data_attributes``) load the data when first read.
    * ``build_model(seed)``: any ``nn.Module`` whose ``forward(x)`` returns T outputs.
      ``shared_layer``: the module path (``model.get_submodule(path)``) of GradNorm's W in it;
      None means the model's ``last_shared_layer`` (:class:`MultiHeadNet`).
    * ``task_losses(outputs, targets)``: the T losses, each a mean over the batch.
    * ``metrics()``: a fresh :class:`~gradnorm_core.problems.metrics.Metrics` accumulator
      whose ``compute()`` includes ``"<task>/normalized_error"`` (scale-free, 0 = perfect) for
      every task.
    * ``chance_losses()``: optional, for GradNorm's ``initial_losses: chance``.

    ``score`` is what searches minimise: the mean over tasks of the normalized errors. It is
    scale-free: multiplying one task's targets (and outputs) by a constant does not change it,
    so searches over loss weights compare fairly.
    """

    name: str
    task_names: tuple[str, ...]
    shared_layer: str | None = None
    data_attributes: tuple[str, ...] = ()

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @abstractmethod
    def load_data(self) -> tuple[Dataset, Dataset, Dataset]:
        """The (train, val, test) splits; called once, on first use of the data."""

    def _data(self) -> tuple[Dataset, Dataset, Dataset]:
        data = self.__dict__.get("_loaded_data")
        if data is None:
            self.__dict__["_loading"] = True
            try:
                splits = self.load_data()
            finally:
                self.__dict__["_loading"] = False
            if not isinstance(splits, (tuple, list)) or len(splits) != 3:
                raise ValueError(
                    f"problem {self.name!r}: load_data() must return (train, val, test), "
                    f"got {type(splits).__name__}"
                )
            data = tuple(check_dataset(name, s) for name, s in zip(SPLITS, splits))
            self.__dict__["_loaded_data"] = data
        return data

    @property
    def train(self) -> Dataset:
        return self._data()[0]

    @property
    def val(self) -> Dataset:
        return self._data()[1]

    @property
    def test(self) -> Dataset:
        return self._data()[2]

    def __getattr__(self, name: str) -> Any:
        # Only reached when ordinary lookup fails: a data attribute not set yet loads the data.
        if (
            name in type(self).data_attributes
            and "_loaded_data" not in self.__dict__
            and not self.__dict__.get("_loading")
        ):
            self._data()
            if name in self.__dict__:
                return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @abstractmethod
    def build_model(self, seed: int = 0) -> nn.Module:
        """A freshly initialised model, deterministic from ``seed``, returning T outputs."""

    @abstractmethod
    def task_losses(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """The T training losses (each a mean over the batch), stacked into a 1-D tensor."""

    @abstractmethod
    def metrics(self) -> Metrics:
        """A fresh accumulator: ``update(outputs, targets)`` per batch, ``compute()`` once.

        ``compute()`` must include ``"<task>/normalized_error"`` for every task: a scale-free
        error where 0 is perfect (error rate for classification, MSE / variance of the targets
        for regression; see :mod:`gradnorm_core.problems.metrics`).
        """

    def task_metrics(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> dict[str, float]:
        """``metrics()`` over one batch holding ``outputs`` and ``targets`` (e.g. a whole split)."""
        metrics = self.metrics()
        metrics.update(outputs, targets)
        return metrics.compute()

    def chance_losses(self) -> list[float]:
        """Per task, the training loss of the best **constant** prediction on the train split.

        It is a loss at chance level: what ``task_losses`` gives, over the whole train split, for
        a model that ignores its input. GradNorm can use it as L_i(0), the "theoretical initial
        loss" its paper suggests when the first step's loss depends sharply on initialisation
        (e.g. a regression target whose mean is far from 0: the first MSE then mostly measures
        the untrained head's offset, and the loss ratio collapses once the bias learns the mean).

        Returns T positive floats, in ``task_names`` order, computed from the loaded train split
        for the loss each task trains with: for a cross-entropy task the entropy of the train
        split's class frequencies (natural log; see :func:`chance_cross_entropy`), for an MSE
        task the population variance of its train targets, averaged over output elements when
        the MSE is a mean over them (see :func:`chance_mse`). Targets are taken as the loss
        sees them (after any normalisation the problem applies).

        The built-in problems implement it; a user's problem may override it with its own
        values (e.g. theoretical ones: ln C for C balanced classes). The default raises
        NotImplementedError, so ``initial_losses: chance`` fails with a clear message there.
        """
        raise NotImplementedError(
            f"problem {getattr(self, 'name', type(self).__name__)!r} does not define "
            "chance_losses(): override "
            "Problem.chance_losses() to return one chance-level loss per task"
        )

    def task_kinds(self) -> tuple[str, ...]:
        """Each task's kind, ``"regression"`` or ``"classification"``, in ``task_names`` order.

        By default the kind that the metrics reading the task declare (``Metric.kind``:
        classification for ErrorRate and BinaryErrorRate, regression for NormalizedMSE and
        MeanAbsoluteError); a task none of them tells raises a one-line ValueError. Override it
        when your metrics do not say. Uncertainty weighting takes it as its ``kinds``.
        """
        kinds = self.metrics().task_kinds()
        for task in self.task_names:
            if kinds.get(task) not in TASK_KINDS:
                raise ValueError(
                    f"problem {getattr(self, 'name', type(self).__name__)!r}: no metric of task {task!r} says "
                    f"whether it is {' or '.join(TASK_KINDS)}; override Problem.task_kinds() to return one per task"
                )
        return tuple(kinds[task] for task in self.task_names)

    def primary_metrics(self) -> dict[str, str]:
        """Task -> the name of the metric that stands for it (e.g. ``"digit/accuracy"``; for
        Delta m%): by default the ``primary`` of the first of ``metrics()`` that reads it."""
        return self.metrics().primary_metrics()

    def score(self, metrics: dict[str, float]) -> float:
        """Mean over tasks of each task's normalized error: lower is better, scale-free."""
        errors = [metrics[f"{task}/normalized_error"] for task in self.task_names]
        return float(sum(errors) / len(errors))

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, dataset: Dataset, batch_size: int = 1024, *, num_workers: int = 0
    ) -> dict[str, float]:
        """Losses, metrics and score of ``model`` on ``dataset``, batch by batch in order.

        Returns ``"<task>/loss"``, the ``metrics()`` results, and ``"score"``. A task's loss
        over the split is the batch-size-weighted mean of its batch losses,
        sum_b n_b L_b / sum_b n_b (each L_b being a batch mean, that is the split's mean); the
        metrics accumulate their running sums. No batch's outputs are kept.
        """
        was_training = model.training
        model.eval()
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        metrics = self.metrics()
        loss_sums: torch.Tensor | None = None
        count = 0
        try:
            for x, targets in iterate_batches(dataset, batch_size, device, num_workers=num_workers):
                outputs = model(x)
                n = batch_length(x, targets)
                losses = self.task_losses(outputs, targets).detach().double() * n
                loss_sums = losses if loss_sums is None else loss_sums + losses
                count += n
                metrics.update(outputs, targets)
        finally:
            model.train(was_training)
        if loss_sums is None:
            raise ValueError(f"problem {self.name!r}: cannot evaluate on an empty split")
        result = {
            f"{task}/loss": loss / count for task, loss in zip(self.task_names, loss_sums.tolist())
        }
        computed = metrics.compute()
        result.update(computed)
        result["score"] = self.score(computed)
        return result
