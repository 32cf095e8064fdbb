"""The toy multitask regression of the GradNorm paper (Chen et al., ICML 2018, Section 4)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .base import MultiHeadNet, Problem, Split, chance_mse, check_seed, check_size, relu_mlp, seeded_init
from .metrics import Metrics, NormalizedMSE


def _generator(*stream: int) -> torch.Generator:
    """A torch generator seeded from ``stream`` (e.g. ``(seed, purpose, index)``).

    Each random quantity gets its own stream so that changing one setting (a split size, the
    number of tasks, a sigma) leaves every other quantity unchanged.
    """
    state = np.random.SeedSequence([int(s) for s in stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class ToyRegression(Problem):
    """T regression tasks sharing a random map: f_i(x) = sigma_i * tanh((B + eps_i) x).

    As in Section 4 of the GradNorm paper: x in R^250, f_i(x) in R^100, B a 100x250 matrix
    shared by all tasks and eps_i a 100x250 matrix per task. B's elements are IID N(0, 10) and
    eps_i's IID N(0, 3.5), where the second parameter is read as the **variance** (std
    sqrt(10) and sqrt(3.5)). Inputs are IID standard normal, x ~ N(0, I_250). The tasks differ
    only in eps_i and in their scale sigma_i, so an unweighted sum of losses is dominated by the
    tasks with large sigma_i: that imbalance is what GradNorm is meant to fix.

    Each pre-activation element (B + eps_i) x has variance 250 * (10 + 3.5), i.e. std ~58, so
    the tanh is saturated and targets sit near +-sigma_i: each output is mostly the sign of a
    random linear function of x. This follows from the paper's constants and is kept as is.

    Splits: ``train``, ``val`` and ``test`` draw independent inputs through the same B and eps_i.
    Targets are float32 of shape (N, 100), one tensor per task; tasks are named "task0", ...
    Construction only checks the options; B, eps_i and the splits are drawn by ``load_data()``
    (on first use of ``train``, ``val``, ``test``, ``B`` or ``eps``).

    Model (``build_model``): a trunk of 4 fully connected ReLU layers of 100 units
    (250 -> 100 -> 100 -> 100 -> 100) and one affine head Linear(100, 100) per task, as in
    the paper. Loss of task i: MSE over batch and the 100 outputs.

    Everything is deterministic from ``seed``: B, each eps_i, and each split's inputs are drawn
    from their own generator streams, so the same seed with different sigmas (or a different
    number of tasks) gives the same B, the same eps_i for the shared task indices and the same
    inputs; only the scales differ. No global RNG is used.
    """

    name = "toy"
    input_dim = 250
    output_dim = 100
    hidden_dim = 100
    num_layers = 4
    b_variance = 10.0
    eps_variance = 3.5
    paper_t2_sigmas: tuple[float, ...] = (1.0, 100.0)
    data_attributes = ("B", "eps")

    def __init__(
        self,
        sigmas: Sequence[float],
        num_train: int = 2000,
        num_val: int = 500,
        num_test: int = 500,
        seed: int = 0,
    ) -> None:
        values, self.sizes, self.seed = self.check_options(
            sigmas, num_train, num_val, num_test, seed
        )
        self.sigmas: tuple[float, ...] = values
        self.task_names = tuple(f"task{i}" for i in range(len(values)))

    def load_data(self) -> tuple[Split, Split, Split]:
        """Draw B, each eps_i, then the three splits' inputs and targets."""
        shape = (self.output_dim, self.input_dim)
        self.B = torch.randn(shape, generator=_generator(self.seed, 0)) * math.sqrt(self.b_variance)
        self.eps = torch.stack(
            [
                torch.randn(shape, generator=_generator(self.seed, 1, i))
                * math.sqrt(self.eps_variance)
                for i in range(self.num_tasks)
            ]
        )
        train, val, test = (self._make_split(size, index) for index, size in enumerate(self.sizes))
        return train, val, test

    @staticmethod
    def check_options(
        sigmas: Sequence[float], num_train: int, num_val: int, num_test: int, seed: int
    ) -> tuple[tuple[float, ...], tuple[int, int, int], int]:
        """The constructor's checks of its options, without drawing anything.

        Returns ``(sigmas, (num_train, num_val, num_test), seed)`` as floats and ints; a bad
        value raises a one-line ValueError (sigmas first, then the sizes, then the seed).
        """
        try:
            values = [float(s) for s in sigmas]
        except (TypeError, ValueError):
            raise ValueError(
                f"sigmas must be a sequence of positive numbers, got {sigmas!r}"
            ) from None
        if not values:
            raise ValueError("sigmas must hold at least one task scale, got an empty sequence")
        for i, s in enumerate(values):
            if not (math.isfinite(s) and s > 0):
                raise ValueError(f"sigmas[{i}] must be a finite number > 0, got {s!r}")
        sizes = (
            check_size("num_train", num_train),
            check_size("num_val", num_val),
            check_size("num_test", num_test),
        )
        return tuple(values), sizes, check_seed(seed)

    def _make_split(self, size: int, index: int) -> Split:
        x = torch.randn((size, self.input_dim), generator=_generator(self.seed, 2, index))
        return Split(x, tuple(self.targets_for(x)))

    def targets_for(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[sigma_i * tanh(x @ (B + eps_i)^T) for each task i]: the targets of inputs x (N, 250)."""
        return [
            sigma * torch.tanh(x @ (self.B + eps).T) for sigma, eps in zip(self.sigmas, self.eps)
        ]

    @classmethod
    def paper_t2(
        cls, num_train: int = 2000, num_val: int = 500, num_test: int = 500, seed: int = 0
    ) -> "ToyRegression":
        """The paper's T=2 setting: sigmas (1, 100) (``paper_t2_sigmas``)."""
        return cls(
            cls.paper_t2_sigmas, num_train=num_train, num_val=num_val, num_test=num_test, seed=seed
        )

    @classmethod
    def paper_t10(
        cls, num_train: int = 2000, num_val: int = 500, num_test: int = 500, seed: int = 0
    ) -> "ToyRegression":
        """A T=10 setting: sigma_i drawn IID uniform in [1, 100] from ``seed``.

        The paper shows T=10 with widely spread sigma_i; uniform on [1, 100] spans the same range
        as the T=2 setting. The draw uses its own stream of ``seed`` (see ``t10_sigmas``).
        """
        return cls(
            cls.t10_sigmas(seed), num_train=num_train, num_val=num_val, num_test=num_test, seed=seed
        )

    @staticmethod
    def t10_sigmas(seed: int = 0) -> tuple[float, ...]:
        """The ten sigmas of ``paper_t10(seed=seed)``: IID uniform in [1, 100]."""
        draw = torch.rand(10, generator=_generator(check_seed(seed), 3), dtype=torch.float64)
        return tuple(float(1.0 + 99.0 * u) for u in draw)

    def build_model(self, seed: int = 0) -> MultiHeadNet:
        """Trunk 250 -> 100 -> 100 -> 100 -> 100 (ReLU after each), heads Linear(100, 100).

        PyTorch's default initialisation, seeded from ``seed`` inside ``fork_rng`` so the global
        RNG state is left as it was.
        """
        with seeded_init(seed):
            trunk = relu_mlp([self.input_dim] + [self.hidden_dim] * self.num_layers)
            heads = [nn.Linear(self.hidden_dim, self.output_dim) for _ in self.task_names]
            return MultiHeadNet(trunk, heads)

    def task_losses(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """[MSE(output_i, target_i)], each the mean over batch and output dimensions."""
        if len(outputs) != self.num_tasks or len(targets) != self.num_tasks:
            raise ValueError(
                f"outputs and targets must each hold {self.num_tasks} tensors, "
                f"got {len(outputs)} and {len(targets)}"
            )
        return torch.stack([F.mse_loss(o, t) for o, t in zip(outputs, targets)])

    def chance_losses(self) -> list[float]:
        """Per task, the mean over the 100 outputs of each output's population variance on the
        train split: the MSE (mean over batch and outputs) of predicting each output's mean."""
        return [chance_mse(target) for target in self.train.targets]

    def metrics(self) -> Metrics:
        """``"task<i>/rmse"`` and ``"task<i>/normalized_error"`` (MSE / target variance)."""
        return Metrics(NormalizedMSE(task, i) for i, task in enumerate(self.task_names))
