"""QM9: eleven molecular properties regressed from one shared descriptor, on standardized (or raw)
targets, with metrics in the targets' own units."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.qm9 import TARGET_NAMES, load_qm9
from .base import MultiHeadNet, Problem, Split
from .base import chance_mse, check_seed, check_size, relu_mlp, seeded_init
from .metrics import MeanAbsoluteError, Metrics, NormalizedMSE


class QM9(Problem):
    """QM9 molecules (``gradnorm_core.data.qm9.load_qm9``): eleven regression tasks.

    Tasks, named after the targets: mu, alpha, homo, lumo, r2, zpve, u0, u298, h298, g298, cv
    (see ``load_qm9`` for units and why the HOMO-LUMO gap is left out). Inputs are the 29
    sorted Coulomb-matrix eigenvalues of each molecule.

    ``targets``: ``"standardized"`` (the default, the field's convention, as in the published
    QM9 tables of Nash-MTL, FAMO and LibMTL) z-scores each target with the mean and standard
    deviation (population) of the train split only (``target_mean``, ``target_std``; a constant
    target gets std 1), and each task's loss is the MSE on those z-scores. ``"raw"`` keeps the
    values as they are: their scales differ by orders of magnitude (variance ~5e-4 for homo,
    ~1600 for u0, ~8e4 for r2), so an unweighted sum of losses is dominated by a few tasks (the
    imbalance loss balancing must fix); ``target_mean`` is then 0 and ``target_std`` 1. Either
    way the metrics are reported in the targets' own units (the file's: Debye, bohr^3,
    Hartree, ...). The inputs are standardised, per column, with the mean and standard deviation
    of the train split only (``input_mean``, ``input_std``; a constant column gets std 1).

    Splits: the molecules are permuted by ``np.random.default_rng([seed, 0])`` and the first
    ``num_train``, next ``num_val`` and next ``num_test`` form disjoint train/val/test splits
    (indices into the data in ``train_index``, ``val_index``, ``test_index``). Each split's
    targets are float32 tensors of shape (N,), one per task.

    Metrics per task: ``<task>/mae`` (its primary metric) and ``<task>/rmse``, in the targets'
    own units (a standardized target's errors times its ``target_std``), and
    ``<task>/normalized_error`` = MSE / variance of that task's targets in the split
    (scale-free: the same for both ``targets``).

    Model: trunk D -> 256 -> ReLU -> 256 -> ReLU; per task a head Linear(256, 64) -> ReLU ->
    Linear(64, 1), whose (N, 1) output is squeezed to (N,) in losses and metrics.

    ``QM9(data_dir, ...)`` reads the installed QM9 data (``pip install 'gradnorm-tune[qm9]'``)
    in ``load_data()``, on first use of the data (construction reads no file);
    ``QM9.from_arrays(descriptors, target_values, target_names, ...)`` builds the same problem from
    arrays, checked at once. Deterministic from ``seed``; no global RNG is used.
    """

    name = "qm9"
    hidden_dim = 256
    head_dim = 64
    task_names = TARGET_NAMES
    data_attributes = (
        "train_index", "val_index", "test_index", "input_mean", "input_std", "input_dim", "target_mean",
        "target_std",
    )

    def __init__(
        self,
        data_dir: str | None = None,
        num_train: int = 20000,
        num_val: int = 5000,
        num_test: int = 5000,
        seed: int = 0,
        targets: Literal["standardized", "raw"] = "standardized",
    ) -> None:
        self.folder, self.sizes, self.seed = self.check_options(
            data_dir, num_train, num_val, num_test, seed
        )
        self.targets = _check_targets(targets)
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def load_data(self) -> tuple[Split, Split, Split]:
        """Read the QM9 data (or take ``from_arrays``'s arrays), split it, standardise inputs."""
        arrays = self._arrays
        if arrays is None:
            targets, names, descriptors = load_qm9(self.folder)
            arrays = self._check_arrays(descriptors, targets, names, self.sizes)
            if tuple(names) != self.task_names:
                raise ValueError(
                    f"QM9 data has targets {list(names)}, expected {list(self.task_names)}"
                )
        return self._build(*arrays)

    @staticmethod
    def check_options(
        data_dir: str | os.PathLike | None,
        num_train: int,
        num_val: int,
        num_test: int,
        seed: int,
    ) -> tuple[Path | None, tuple[int, int, int], int]:
        """The constructor's checks of its options, without reading (or looking for) any file.

        Returns ``(folder, (num_train, num_val, num_test), seed)``: ``folder`` is ``data_dir``
        as a Path, or None (``load_qm9`` then finds the installed data). A bad size or seed
        raises a one-line ValueError (the sizes first, then the seed). Whether the split sizes
        fit the molecules available can only be checked on the data, in ``load_data``.
        """
        sizes = _check_sizes(num_train, num_val, num_test)
        seed = check_seed(seed)
        folder = Path(data_dir) if data_dir is not None else None
        return folder, sizes, seed

    @classmethod
    def from_arrays(
        cls,
        descriptors: np.ndarray,
        target_values: np.ndarray,
        target_names: Sequence[str],
        num_train: int = 20000,
        num_val: int = 5000,
        num_test: int = 5000,
        seed: int = 0,
        targets: Literal["standardized", "raw"] = "standardized",
    ) -> QM9:
        """The problem on given arrays: ``descriptors`` (N, D), ``target_values`` (N, K), K names."""
        sizes = _check_sizes(num_train, num_val, num_test)
        seed = check_seed(seed)
        problem = cls.__new__(cls)
        problem.folder, problem.sizes, problem.seed = None, sizes, seed
        problem.targets = _check_targets(targets)
        problem._arrays = cls._check_arrays(descriptors, target_values, target_names, sizes)
        problem.task_names = tuple(str(n) for n in target_names)
        problem.input_dim = problem._arrays[0].shape[1]
        return problem

    @staticmethod
    def _check_arrays(
        descriptors: np.ndarray,
        targets: np.ndarray,
        target_names: Sequence[str],
        sizes: tuple[int, int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(descriptors, targets)`` as float64 arrays once they fit together and ``sizes``."""
        x = np.asarray(descriptors, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        names = tuple(str(n) for n in target_names)
        if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
            raise ValueError(
                "descriptors and targets must be 2-D arrays with the same number of rows, "
                f"got shapes {x.shape} and {y.shape}"
            )
        if len(names) != y.shape[1] or not names or len(set(names)) != len(names):
            raise ValueError(
                f"target_names must hold {y.shape[1]} distinct names (one per target column), "
                f"got {list(names)}"
            )
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("descriptors and targets must be finite (no NaN or inf)")
        if sum(sizes) > x.shape[0]:
            raise ValueError(
                f"num_train + num_val + num_test = {sum(sizes)} exceeds the {x.shape[0]} molecules "
                "available; lower the split sizes"
            )
        return x, y

    def _build(self, x: np.ndarray, y: np.ndarray) -> tuple[Split, Split, Split]:
        self.input_dim = x.shape[1]
        order = np.random.default_rng([self.seed, 0]).permutation(x.shape[0])
        bounds = np.cumsum((0, *self.sizes))
        self.train_index, self.val_index, self.test_index = (
            order[lo:hi] for lo, hi in itertools.pairwise(bounds)
        )
        self.input_mean, self.input_std = _mean_and_std(x[self.train_index])
        if self.targets == "standardized":
            self.target_mean, self.target_std = _mean_and_std(y[self.train_index])
        else:
            self.target_mean, self.target_std = np.zeros(y.shape[1]), np.ones(y.shape[1])
        train, val, test = (
            self._make_split(x[index], y[index])
            for index in (self.train_index, self.val_index, self.test_index)
        )
        return train, val, test

    def _make_split(self, x: np.ndarray, y: np.ndarray) -> Split:
        inputs = torch.from_numpy(((x - self.input_mean) / self.input_std).astype(np.float32))
        y = (y - self.target_mean) / self.target_std
        targets = tuple(torch.from_numpy(y[:, k].astype(np.float32)) for k in range(y.shape[1]))
        return Split(inputs, targets)

    def build_model(self, seed: int = 0) -> MultiHeadNet:
        """Trunk D -> 256 -> ReLU -> 256 -> ReLU; heads Linear(256, 64) -> ReLU -> Linear(64, 1).

        PyTorch's default initialisation, seeded from ``seed`` inside ``fork_rng`` so the global
        RNG state is left as it was.
        """
        with seeded_init(seed):
            trunk = relu_mlp([self.input_dim, self.hidden_dim, self.hidden_dim])
            heads = [
                nn.Sequential(
                    nn.Linear(self.hidden_dim, self.head_dim),
                    nn.ReLU(),
                    nn.Linear(self.head_dim, 1),
                )
                for _ in self.task_names
            ]
            return MultiHeadNet(trunk, heads)

    def _check(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        if len(outputs) != self.num_tasks or len(targets) != self.num_tasks:
            raise ValueError(
                f"outputs and targets must each hold {self.num_tasks} tensors, "
                f"got {len(outputs)} and {len(targets)}"
            )

    def task_losses(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """[MSE(output_i, target_i)] on the targets as stored (z-scores, or raw); outputs (N, 1) -> (N,)."""
        self._check(outputs, targets)
        return torch.stack([F.mse_loss(o.reshape(t.shape), t) for o, t in zip(outputs, targets)])

    def chance_losses(self) -> list[float]:
        """Per task, the population variance of its train targets as the loss sees them (float32 as
        stored): the MSE of predicting their mean. About 1 for standardized targets; for raw ones it
        spans orders of magnitude across tasks."""
        return [chance_mse(target) for target in self.train.targets]

    def metrics(self) -> Metrics:
        """``<task>/mae``, ``<task>/rmse`` (in the targets' units) and ``<task>/normalized_error``
        (MSE / Var(targets))."""
        return Metrics(
            metric(task, i, scale=float(self.target_std[i]))
            for i, task in enumerate(self.task_names)
            for metric in (MeanAbsoluteError, NormalizedMSE)
        )

    def task_kinds(self) -> tuple[str, ...]:
        """Every task is a regression (known without the data ``metrics()`` reads)."""
        return ("regression",) * self.num_tasks

    def primary_metrics(self) -> dict[str, str]:
        """``<task>/mae`` for every task, as the published tables (known without the data)."""
        return {task: f"{task}/{MeanAbsoluteError.primary}" for task in self.task_names}


def _check_targets(targets: object) -> str:
    if targets not in ("standardized", "raw"):
        raise ValueError(f"targets must be 'standardized' (z-scored on the train split) or 'raw', got {targets!r}")
    return str(targets)


def _mean_and_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the mean and the population standard deviation (1 where it is 0)."""
    std = values.std(axis=0)
    return values.mean(axis=0), np.where(std > 0, std, 1.0)


def _check_sizes(num_train: object, num_val: object, num_test: object) -> tuple[int, int, int]:
    return (
        check_size("num_train", num_train),
        check_size("num_val", num_val),
        check_size("num_test", num_test),
    )
