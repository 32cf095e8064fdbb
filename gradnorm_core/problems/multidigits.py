"""Two overlapping handwritten digits: classify each, and regress their sum."""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .base import MultiHeadNet, Problem, Split
from .base import chance_cross_entropy, chance_mse, check_seed, check_size, relu_mlp, seeded_init
from .metrics import ErrorRate, Metrics, NormalizedMSE

CANVAS = 12
DIGIT = 8
LEFT_OFFSET = 0  # top-left digit occupies rows/cols 0..7
RIGHT_OFFSET = CANVAS - DIGIT  # bottom-right digit occupies rows/cols 4..11
MAX_PIXEL = 16.0  # load_digits pixels are integers 0..16


#: Where scikit-learn keeps the digits (``load_digits`` reads this file), from its package root.
DIGITS_FILE = ("datasets", "data", "digits.csv.gz")


@lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as ``load_digits`` gives them: images (N, 8, 8) and labels. Read from
    scikit-learn's own file without importing scikit-learn (over a second, paid by the first trial
    on every Ray worker); through ``load_digits`` where the file is not where it is expected."""
    spec = importlib.util.find_spec("sklearn")  # (finds the package without running it)
    path = Path(spec.submodule_search_locations[0]).joinpath(*DIGITS_FILE) if spec else None
    if path is not None and path.is_file():
        with gzip.open(path, "rt") as file:
            data = np.loadtxt(file, delimiter=",")
        images, labels = data[:, :-1].reshape(-1, 8, 8), data[:, -1]
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images, labels = digits.images, digits.target
    images, labels = images.astype(np.float32), labels.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def compose(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Canvases (N, 12, 12) in [0, 1]: ``left`` (N, 8, 8) at the top-left corner, ``right`` at the
    bottom-right, combined by pixel-wise max where they overlap (rows/cols 4..7)."""
    n = left.shape[0]
    canvas_left = np.zeros((n, CANVAS, CANVAS), dtype=np.float32)
    canvas_right = np.zeros((n, CANVAS, CANVAS), dtype=np.float32)
    canvas_left[:, LEFT_OFFSET : LEFT_OFFSET + DIGIT, LEFT_OFFSET : LEFT_OFFSET + DIGIT] = left
    canvas_right[:, RIGHT_OFFSET:, RIGHT_OFFSET:] = right
    return np.maximum(canvas_left, canvas_right) / MAX_PIXEL


class MultiDigits(Problem):
    """Pairs of scikit-learn digits (``load_digits``: 1797 8x8 images) on one 12x12 canvas.

    One digit is pasted at the top-left (rows/cols 0..7), the other at the bottom-right
    (rows/cols 4..11); they overlap in a 4x4 block where the pixel-wise max is kept. Pixels are
    scaled from 0..16 to [0, 1]. Inputs are the flattened canvases, float32 (N, 144).

    Tasks (all three read the same canvas):

    - ``left``: class of the top-left digit, int64 in 0..9, cross-entropy loss;
    - ``right``: class of the bottom-right digit, int64 in 0..9, cross-entropy loss;
    - ``sum``: left + right as float32 in 0..18, MSE loss. Its loss starts around 100 while the
      cross-entropies start near ln 10 ~ 2.3: the loss-scale imbalance loss balancing must handle.

    Splits use disjoint source images: the 1797 images are permuted (from ``seed``) and cut into
    train/val/test pools of 60/20/20 %, then each split's pairs are drawn uniformly with
    replacement from its own pool only. ``train_sources`` etc. hold, per pair, the two indices
    into ``load_digits()`` (left, right); ``train_pool`` etc. hold the pools. Construction only
    checks the options; ``load_data()`` loads the digits and builds the splits (on first use of
    the splits or of those attributes).

    Metrics: ``left/accuracy``, ``left/normalized_error`` = 1 - accuracy (same for ``right``),
    ``sum/rmse`` and ``sum/normalized_error`` = MSE / Var(sum targets of the split).

    Deterministic from ``seed`` through numpy Generators with one stream per purpose; no global
    RNG is used.
    """

    name = "multidigits"
    task_names = ("left", "right", "sum")
    input_dim = CANVAS * CANVAS
    hidden_dim = 128
    num_classes = 10
    pool_fractions = (0.6, 0.2, 0.2)
    data_attributes = (
        "train_pool", "val_pool", "test_pool", "train_sources", "val_sources", "test_sources"
    )

    def __init__(
        self,
        num_train: int = 4000,
        num_val: int = 1000,
        num_test: int = 1000,
        seed: int = 0,
    ) -> None:
        self.sizes, self.seed = self.check_options(num_train, num_val, num_test, seed)

    def load_data(self) -> tuple[Split, Split, Split]:
        """Load the digits, cut the pools, draw each split's pairs and compose the canvases."""
        images, labels = _load_digits()
        order = np.random.default_rng([self.seed, 0]).permutation(len(images))
        n_train = round(self.pool_fractions[0] * len(images))
        n_val = round(self.pool_fractions[1] * len(images))
        pools = (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])
        self.train_pool, self.val_pool, self.test_pool = (np.sort(p) for p in pools)

        sources = []
        for index, (pool, size) in enumerate(zip(pools, self.sizes)):
            rng = np.random.default_rng([self.seed, 1, index])
            sources.append(pool[rng.integers(0, len(pool), size=(size, 2))])
        self.train_sources, self.val_sources, self.test_sources = sources
        train, val, test = (self._make_split(s, images, labels) for s in sources)
        return train, val, test

    @staticmethod
    def check_options(
        num_train: int, num_val: int, num_test: int, seed: int
    ) -> tuple[tuple[int, int, int], int]:
        """The constructor's checks of its options, without loading the digits.

        Returns ``((num_train, num_val, num_test), seed)`` as ints; a bad value raises a
        one-line ValueError (the sizes first, then the seed).
        """
        sizes = (
            check_size("num_train", num_train),
            check_size("num_val", num_val),
            check_size("num_test", num_test),
        )
        return sizes, check_seed(seed)

    @staticmethod
    def _make_split(sources: np.ndarray, images: np.ndarray, labels: np.ndarray) -> Split:
        canvas = compose(images[sources[:, 0]], images[sources[:, 1]])
        left = torch.from_numpy(labels[sources[:, 0]].copy())
        right = torch.from_numpy(labels[sources[:, 1]].copy())
        inputs = torch.from_numpy(canvas.reshape(len(sources), -1))
        return Split(inputs, (left, right, (left + right).to(torch.float32)))

    def build_model(self, seed: int = 0) -> MultiHeadNet:
        """Trunk 144 -> 128 -> ReLU -> 128 -> ReLU; heads Linear(128, 10) x2 and Linear(128, 1).

        PyTorch's default initialisation, seeded from ``seed`` inside ``fork_rng`` so the global
        RNG state is left as it was. The ``sum`` head outputs shape (N, 1).
        """
        with seeded_init(seed):
            trunk = relu_mlp([self.input_dim, self.hidden_dim, self.hidden_dim])
            heads = [
                nn.Linear(self.hidden_dim, self.num_classes),
                nn.Linear(self.hidden_dim, self.num_classes),
                nn.Linear(self.hidden_dim, 1),
            ]
            return MultiHeadNet(trunk, heads)

    def task_losses(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """[CE(left logits, left), CE(right logits, right), MSE(sum output, left + right)]."""
        if len(outputs) != 3 or len(targets) != 3:
            raise ValueError(
                "outputs and targets must each hold 3 tensors, "
                f"got {len(outputs)} and {len(targets)}"
            )
        left, right, total = outputs
        return torch.stack(
            [
                F.cross_entropy(left, targets[0]),
                F.cross_entropy(right, targets[1]),
                F.mse_loss(total.reshape(targets[2].shape), targets[2]),
            ]
        )

    def chance_losses(self) -> list[float]:
        """[entropy of the train split's left classes, of its right classes (natural log), and the
        population variance of its sum targets]: the losses of the best constant predictions."""
        left, right, total = self.train.targets
        return [chance_cross_entropy(left), chance_cross_entropy(right), chance_mse(total)]

    def metrics(self) -> Metrics:
        """Accuracy and 1 - accuracy for left/right; RMSE and MSE / Var(targets) for sum."""
        return Metrics([ErrorRate("left", 0), ErrorRate("right", 1), NormalizedMSE("sum", 2)])
