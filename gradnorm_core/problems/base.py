"""What a multitask problem provides: data splits, a shared-trunk model, task losses, metrics and
one scale-free score."""

from __future__ import annotations

from abc import ABC, abstractmethod
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Split:
    """One data split held in memory: inputs and one target tensor per task."""

    inputs: torch.Tensor
    targets: tuple[torch.Tensor, ...]

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.inputs.to(device), tuple(t.to(device) for t in self.targets))

    def batch(self, index: torch.Tensor | slice) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        return self.inputs[index], tuple(t[index] for t in self.targets)


def check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def relu_mlp(widths: Sequence[int]) -> nn.Sequential:
    """Linear(widths[0], widths[1]), ReLU, Linear(widths[1], widths[2]), ReLU, ...: a shared trunk."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths, widths[1:]):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return nn.Sequential(*layers)


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Inside: torch's global RNG seeded with ``seed``; afterwards, as it was before."""
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def regression_metrics(
    task: str, output: torch.Tensor, target: torch.Tensor
) -> dict[str, float]:
    """``"<task>/rmse"`` and ``"<task>/normalized_error"`` of one regression task over a split.

    normalized_error = MSE / Var(targets), where MSE is the mean over all elements and Var is
    the per-output-column variance of the split's targets (population variance), averaged over
    columns. Predicting each column's mean therefore scores 1, a perfect fit 0, and multiplying
    both outputs and targets by a constant c leaves it unchanged (both terms scale by c**2).
    """
    output = output.detach().reshape(target.shape).double()
    target = target.detach().double()
    mse = torch.mean((output - target) ** 2)
    flat = target.reshape(target.shape[0], -1)
    variance = flat.var(dim=0, unbiased=False).mean()
    # A split whose targets are all equal has no scale to normalise by; report it as infinite
    # error rather than dividing by zero into NaN.
    normalized = mse / variance if variance > 0 else torch.tensor(math.inf)
    return {f"{task}/rmse": float(mse.sqrt()), f"{task}/normalized_error": float(normalized)}


Branch = Callable[[torch.Tensor], Sequence[torch.Tensor]]


class MultiHeadNet(nn.Module):
    """A shared trunk followed by one head per task.

    ``forward(x, branch)`` hands the trunk's output to ``branch``, which returns one tensor per
    head (by default the same tensor T times). GradNorm's fast path passes its own ``branch`` to
    see each head's gradient at the shared features separately.
    """

    def __init__(self, trunk: nn.Module, heads: Sequence[nn.Module]) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleList(heads)

    @property
    def last_shared_layer(self) -> nn.Linear:
        """The last ``nn.Linear`` of the trunk: GradNorm's W."""
        linears = [m for m in self.trunk.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("the trunk has no nn.Linear layer to use as GradNorm's shared layer W")
        return linears[-1]

    def forward(self, x: torch.Tensor, branch: Branch | None = None) -> list[torch.Tensor]:
        features = self.trunk(x)
        inputs = branch(features) if branch is not None else [features] * len(self.heads)
        return [head(f) for head, f in zip(self.heads, inputs)]


class Problem(ABC):
    """A multitask problem: deterministic data from a seed, a model, losses, metrics, a score.

    Subclasses set ``name``, ``task_names`` and the three splits ``train``, ``val``, ``test``,
    and implement ``build_model``, ``task_losses`` and ``task_metrics``.

    ``score`` is what searches minimise. It must be scale-free: multiplying one task's loss (or
    its targets) by a constant must not change it, so that searches over loss weights are
    compared fairly.
    """

    name: str
    task_names: tuple[str, ...]
    train: Split
    val: Split
    test: Split

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @abstractmethod
    def build_model(self, seed: int = 0) -> MultiHeadNet:
        """A freshly initialised model, deterministic from ``seed``."""

    @abstractmethod
    def task_losses(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """The T training losses (each a mean over the batch), stacked into a 1-D tensor."""

    @abstractmethod
    def task_metrics(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> dict[str, float]:
        """Per-task metrics over a whole split, named ``"<task>/<metric>"``.

        Must include ``"<task>/normalized_error"`` for every task: a scale-free error where 0 is
        perfect (error rate for classification, MSE / variance of the targets for regression).
        """

    def score(self, metrics: dict[str, float]) -> float:
        """Mean over tasks of each task's normalized error: lower is better, scale-free."""
        errors = [metrics[f"{task}/normalized_error"] for task in self.task_names]
        return float(sum(errors) / len(errors))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: Split, batch_size: int = 1024) -> dict[str, float]:
        """Losses, metrics and score of ``model`` on ``split``, computed over the whole split.

        Returns ``"<task>/loss"``, the task metrics, and ``"score"``.
        """
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        chunks: list[list[torch.Tensor]] = [[] for _ in self.task_names]
        for start in range(0, len(split), batch_size):
            x, _ = split.batch(slice(start, start + batch_size))
            for chunk, out in zip(chunks, model(x.to(device))):
                chunk.append(out)
        model.train(was_training)
        outputs = [torch.cat(chunk) for chunk in chunks]
        targets = [t.to(device) for t in split.targets]
        losses = self.task_losses(outputs, targets)
        result = {f"{task}/loss": float(loss) for task, loss in zip(self.task_names, losses)}
        metrics = self.task_metrics(outputs, targets)
        result.update(metrics)
        result["score"] = self.score(metrics)
        return result
