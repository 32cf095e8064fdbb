"""MultiMNIST (Sener & Koltun, NeurIPS 2018): two overlapping MNIST digits, classify each."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.mnist import default_cache_dir, load_mnist
from .base import MultiHeadNet, Problem, Split
from .base import chance_cross_entropy, check_seed, check_size, seeded_init
from .metrics import ErrorRate, Metrics

CANVAS = 36
DIGIT = 28
LEFT_OFFSET = 0  # top-left digit occupies rows/cols 0..27
RIGHT_OFFSET = CANVAS - DIGIT  # = 8: bottom-right digit occupies rows/cols 8..35
OUTPUT = 28
_CHUNK = 4096  # canvases composed at a time, to bound memory


def compose(left: np.ndarray, right: np.ndarray) -> torch.Tensor:
    """Images (N, 1, 28, 28) float32 in [0, 1] from uint8 digits ``left`` and ``right`` (N, 28, 28).

    ``left`` is pasted at offset (0, 0) and ``right`` at (8, 8) of a 36x36 canvas, overlapping
    pixels keep the max, the canvas is scaled to [0, 1] (/255) and resized to 28x28 with
    ``F.interpolate(mode="area")``, i.e. adaptive average pooling: output pixel i averages input
    rows floor(36 i / 28) .. ceil(36 (i + 1) / 28) - 1 (and the same for columns).
    """
    n = left.shape[0]
    out = torch.empty((n, 1, OUTPUT, OUTPUT), dtype=torch.float32)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        canvas = np.zeros((stop - start, CANVAS, CANVAS), dtype=np.uint8)
        canvas[:, LEFT_OFFSET : LEFT_OFFSET + DIGIT, LEFT_OFFSET : LEFT_OFFSET + DIGIT] = left[
            start:stop
        ]
        np.maximum(
            canvas[:, RIGHT_OFFSET:, RIGHT_OFFSET:],
            right[start:stop],
            out=canvas[:, RIGHT_OFFSET:, RIGHT_OFFSET:],
        )
        x = torch.from_numpy(canvas).to(torch.float32).div_(255.0).unsqueeze(1)
        out[start:stop] = F.interpolate(x, size=(OUTPUT, OUTPUT), mode="area")
    return out


@lru_cache(maxsize=2)
def _load(directory: str) -> tuple[np.ndarray, ...]:
    arrays = load_mnist(directory)
    result = tuple(
        arrays[k] for k in ("train_images", "train_labels", "test_images", "test_labels")
    )
    for array in result:
        array.setflags(write=False)
    return result


def _check_arrays(name: str, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (DIGIT, DIGIT):
        raise ValueError(
            f"{name}_images must be uint8 of shape (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{name}_labels must be integers of shape ({len(images)},), "
            f"got {labels.dtype} {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{name}_labels must be in 0..9")
    return images, labels.astype(np.int64)


class MultiMNIST(Problem):
    """MultiMNIST as built by Sener & Koltun (NeurIPS 2018, "Multi-Task Learning as
    Multi-Objective Optimization").

    Each sample puts one MNIST digit at the top-left (offset (0, 0)) and a random partner
    digit at the bottom-right (offset (8, 8)) of a 36x36 canvas; overlapping pixels keep the
    max; the canvas is scaled to [0, 1] and resized to 28x28 by area averaging
    (``F.interpolate(mode="area")``, see ``compose``). Inputs are float32 (N, 1, 28, 28).

    Tasks: ``left`` and ``right``, the class of each digit (int64 in 0..9), cross-entropy loss.
    Metrics: ``<task>/accuracy`` and ``<task>/normalized_error`` = 1 - accuracy.

    Sources: MNIST's 60000 training images are permuted (from ``seed``) and split into a train
    pool and a disjoint validation pool (the last ``val_fraction`` = 1/6, i.e. 50000/10000);
    test pairs come from MNIST's 10000 test images only. In each split the left digits run
    through a random permutation of the pool (repeated if more pairs than pool images are asked
    for) and each partner is drawn uniformly from the same pool. ``train_sources`` etc. hold,
    per pair, the two indices (left, right) into the source arrays (MNIST train images for
    train/val, test images for test); ``train_pool`` etc. hold the pools.

    Data: read from ``data_dir`` (default ``default_cache_dir()``: ``$GRADNORM_TUNE_DATA`` or
    ``~/.cache/gradnorm-tune/mnist``) by ``load_data()``, on first use of the data; construction
    reads no file. Nothing is downloaded here (``gradnorm-tune data mnist`` does that once).
    ``from_arrays`` builds the problem from in-memory arrays instead.

    Deterministic from ``seed`` through numpy Generators with one stream per purpose; no global
    RNG is used.
    """

    name = "multimnist"
    task_names = ("left", "right")
    num_classes = 10
    val_fraction = 1 / 6
    data_attributes = (
        "train_pool", "val_pool", "test_pool", "train_sources", "val_sources", "test_sources"
    )

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        num_train: int = 10000,
        num_val: int = 2000,
        num_test: int = 2000,
        seed: int = 0,
    ) -> None:
        directory, self.sizes, self.seed = self.check_options(
            data_dir, num_train, num_val, num_test, seed
        )
        self.data_dir = directory
        self._arrays: tuple[np.ndarray, ...] | None = None

    def load_data(self) -> tuple[Split, Split, Split]:
        """Read MNIST from ``data_dir`` (or take ``from_arrays``'s arrays) and build the splits."""
        arrays = self._arrays
        if arrays is None:
            arrays = _load(str(self.data_dir.expanduser().absolute()))
        return self._build(*arrays)

    @classmethod
    def from_arrays(
        cls,
        train_images: np.ndarray,
        train_labels: np.ndarray,
        test_images: np.ndarray,
        test_labels: np.ndarray,
        num_train: int = 10000,
        num_val: int = 2000,
        num_test: int = 2000,
        seed: int = 0,
    ) -> MultiMNIST:
        """The same problem from in-memory uint8 (N, 28, 28) images and 0..9 labels."""
        sizes = cls._check_sizes(num_train, num_val, num_test)
        seed = check_seed(seed)
        train_images, train_labels = _check_arrays("train", train_images, train_labels)
        test_images, test_labels = _check_arrays("test", test_images, test_labels)
        cls._val_pool_size(len(train_images), len(test_images))
        self = cls.__new__(cls)
        self.data_dir, self.sizes, self.seed = None, sizes, seed
        self._arrays = (train_images, train_labels, test_images, test_labels)
        return self

    @classmethod
    def check_options(
        cls,
        data_dir: str | os.PathLike | None,
        num_train: int,
        num_val: int,
        num_test: int,
        seed: int,
    ) -> tuple[Path, tuple[int, int, int], int]:
        """The constructor's checks of its options, without reading (or looking for) any file.

        Returns ``(directory, (num_train, num_val, num_test), seed)``: ``directory`` is
        ``data_dir`` as a Path, or ``default_cache_dir()`` when it is None. A bad size or seed
        raises a one-line ValueError (the sizes first, then the seed).
        """
        sizes = cls._check_sizes(num_train, num_val, num_test)
        seed = check_seed(seed)
        directory = Path(data_dir) if data_dir is not None else default_cache_dir()
        return directory, sizes, seed

    @staticmethod
    def _check_sizes(num_train: int, num_val: int, num_test: int) -> tuple[int, int, int]:
        return (
            check_size("num_train", num_train),
            check_size("num_val", num_val),
            check_size("num_test", num_test),
        )

    @classmethod
    def _val_pool_size(cls, n_source: int, n_test: int) -> int:
        n_val_pool = round(cls.val_fraction * n_source)
        if n_val_pool < 1 or n_source - n_val_pool < 1 or n_test < 1:
            raise ValueError(
                f"need enough source images for train, val and test pools, got "
                f"{n_source} train and {n_test} test images"
            )
        return n_val_pool

    def _build(
        self,
        train_images: np.ndarray,
        train_labels: np.ndarray,
        test_images: np.ndarray,
        test_labels: np.ndarray,
    ) -> tuple[Split, Split, Split]:
        seed, sizes = self.seed, self.sizes
        n_source = len(train_images)
        n_val_pool = self._val_pool_size(n_source, len(test_images))
        order = np.random.default_rng([seed, 0]).permutation(n_source)
        pools = (
            order[: n_source - n_val_pool],
            order[n_source - n_val_pool :],
            np.arange(len(test_images)),
        )
        self.train_pool, self.val_pool, self.test_pool = (np.sort(p) for p in pools)

        sources = []
        for index, (pool, size) in enumerate(zip(pools, sizes)):
            rng = np.random.default_rng([seed, 1, index])
            left = pool[np.resize(rng.permutation(len(pool)), size)]
            right = pool[rng.integers(0, len(pool), size=size)]
            sources.append(np.stack([left, right], axis=1))
        self.train_sources, self.val_sources, self.test_sources = sources
        train_labels = np.asarray(train_labels, dtype=np.int64)
        test_labels = np.asarray(test_labels, dtype=np.int64)
        return (
            self._make_split(sources[0], train_images, train_labels),
            self._make_split(sources[1], train_images, train_labels),
            self._make_split(sources[2], test_images, test_labels),
        )

    @staticmethod
    def _make_split(sources: np.ndarray, images: np.ndarray, labels: np.ndarray) -> Split:
        inputs = compose(images[sources[:, 0]], images[sources[:, 1]])
        left = torch.from_numpy(labels[sources[:, 0]].copy())
        right = torch.from_numpy(labels[sources[:, 1]].copy())
        return Split(inputs, (left, right))

    def build_model(self, seed: int = 0) -> MultiHeadNet:
        """Sener & Koltun's LeNet-style network.

        Trunk: Conv2d(1, 10, 5) -> MaxPool2d(2) -> ReLU -> Conv2d(10, 20, 5) -> MaxPool2d(2) ->
        ReLU -> Flatten -> Linear(320, 50) -> ReLU; its Linear(320, 50) is GradNorm's shared
        layer W. Heads (one per task): Linear(50, 50) -> ReLU -> Linear(50, 10).
        PyTorch's default initialisation, seeded from ``seed`` inside ``fork_rng`` so the global
        RNG state is left as it was.
        """
        with seeded_init(seed):
            trunk = nn.Sequential(
                nn.Conv2d(1, 10, kernel_size=5),
                nn.MaxPool2d(2),
                nn.ReLU(),
                nn.Conv2d(10, 20, kernel_size=5),
                nn.MaxPool2d(2),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(320, 50),
                nn.ReLU(),
            )
            heads = [
                nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, self.num_classes))
                for _ in self.task_names
            ]
            return MultiHeadNet(trunk, heads)

    @staticmethod
    def _check_pairs(outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        if len(outputs) != 2 or len(targets) != 2:
            raise ValueError(
                "outputs and targets must each hold 2 tensors, "
                f"got {len(outputs)} and {len(targets)}"
            )

    def task_losses(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """[CE(left logits, left), CE(right logits, right)]."""
        self._check_pairs(outputs, targets)
        return torch.stack([F.cross_entropy(o, t) for o, t in zip(outputs, targets)])

    def chance_losses(self) -> list[float]:
        """[entropy of the train split's left classes, of its right classes] (natural log): the
        cross-entropies of the best constant logits, the log class frequencies."""
        return [chance_cross_entropy(labels) for labels in self.train.targets]

    def metrics(self) -> Metrics:
        """``<task>/accuracy`` and ``<task>/normalized_error`` = 1 - accuracy for both tasks."""
        return Metrics(ErrorRate(task, i) for i, task in enumerate(self.task_names))
