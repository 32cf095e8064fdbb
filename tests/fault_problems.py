"""Users' problems with a fault in them, for the fault tests: a small two-task regression whose
model counts its training steps in a buffer (saved in its checkpoint, so a restored trial knows
how far it got), and a fault that strikes at a given step.

``Faulty(fault=..., at=k)``:

- ``"raise"``: ``task_losses`` raises ``ValueError`` at training step ``k`` (every time: with
  ``k`` = 1 before the trial's first report, with ``k`` later after it, at the same point again
  on a retry);
- ``"raise_once"``: the same, but only the first time (a marker file in ``marker_dir``): a retry
  from the last checkpoint then finishes;
- ``"nan_loss"``: the losses are NaN from step ``k`` on, for the seeds in ``seeds`` (all: None);
- ``"nan_score"``: the validation score is NaN once the model has taken ``k`` steps;
- ``"exit"``: ``task_losses`` calls ``sys.exit(3)`` at step ``k``;
- ``"broadcast"``: task ``high``'s targets of shape ``(N,)`` (not ``(N, 1)`` as its outputs) and its
  loss written by hand: ``(output - target) ** 2`` broadcasts ``(B, 1)`` against ``(B,)`` to ``(B, B)``
  (no torch warning);
- ``"loader"``: the train split is a Dataset batched by a DataLoader (``training.num_workers``
  worker processes) whose every item raises ``IndexError``, in the worker.

``faults=[...]`` gives each seed its own fault instead (``faults[s]`` for the model built with
seed ``s``): one sweep of repeats then holds several faults, one per trial.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from gradnorm_core.problems import Metrics, MultiHeadNet, NormalizedMSE, Problem, Split


class CountingNet(MultiHeadNet):
    """A trunk and two heads that count their training forwards in the ``steps`` buffer."""

    def __init__(self, trunk: nn.Module, heads: list[nn.Module]) -> None:
        super().__init__(trunk, heads)
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def forward(self, x, branch=None):
        if self.training:
            self.steps += 1
        return super().forward(x, branch)


class Unreadable(Dataset):
    """A split whose items cannot be read (a corrupt file, say): each raises ``IndexError``."""

    def __init__(self, split: Split) -> None:
        self.size = len(split)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        raise IndexError(f"faulty: train item {index} cannot be read")


class Faulty(Problem):
    def __init__(self, fault: str = "none", at: int = 1, seeds: list[int] | None = None,
                 marker_dir: str | None = None, num_train: int = 128, seed: int = 0,
                 faults: list[str] | None = None) -> None:
        self.name = "faulty"
        self.task_names = ("low", "high")
        self.default_fault, self.faults = fault, faults
        self.at, self.seeds, self.marker_dir = at, seeds, marker_dir
        self.num_train, self.data_seed = num_train, seed
        self.model_seed = 0
        self.model: CountingNet | None = None

    def load_data(self):
        generator = torch.Generator().manual_seed(self.data_seed)
        splits = []
        for size in (self.num_train, 32, 32):
            x = torch.randn(size, 4, generator=generator)
            high = 10 * x[:, :1] * x[:, 1:2]
            splits.append(Split(x, (torch.sin(x.sum(1, keepdim=True)), high.reshape(-1) if self.fault == "broadcast"
                                    else high)))
        if self.fault == "loader":
            splits[0] = Unreadable(splits[0])
        return tuple(splits)

    def build_model(self, seed: int = 0) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = CountingNet(nn.Sequential(nn.Linear(4, 16), nn.ReLU()), [nn.Linear(16, 1), nn.Linear(16, 1)])
        self.model_seed = seed
        return self.model

    @property
    def fault(self) -> str:
        """The fault of the model built last: its seed's in ``faults``, else ``fault``."""
        return self.faults[self.model_seed] if self.faults else self.default_fault

    def _struck(self) -> bool:
        return self.model is not None and self.model.training and int(self.model.steps) >= self.at

    def task_losses(self, outputs, targets):
        if self.fault == "broadcast":
            high = ((outputs[1] - targets[1]) ** 2).mean()  # (B, 1) - (B,): (B, B)
            return torch.stack([nn.functional.mse_loss(outputs[0], targets[0]), high])
        losses = torch.stack([nn.functional.mse_loss(o, t) for o, t in zip(outputs, targets)])
        if self.fault == "raise" and self._struck() and int(self.model.steps) == self.at:
            raise ValueError(f"faulty: bad targets at step {self.at}")
        if self.fault == "raise_once" and self._struck() and int(self.model.steps) == self.at:
            marker = Path(self.marker_dir) / f"struck-{self.model_seed}"
            if not marker.exists():
                marker.write_text("")
                raise ConnectionError(f"faulty: the data server dropped the connection at step {self.at}")
        if self.fault == "exit" and self._struck():
            sys.exit(3)
        if self.fault == "nan_loss" and self._struck() and (self.seeds is None or self.model_seed in self.seeds):
            return losses * float("nan")
        return losses

    def metrics(self) -> Metrics:
        return Metrics([NormalizedMSE(task, index) for index, task in enumerate(self.task_names)])

    def score(self, metrics):
        if self.fault == "nan_score" and self.model is not None and int(self.model.steps) >= self.at:
            return float("nan")
        return super().score(metrics)
