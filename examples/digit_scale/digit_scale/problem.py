"""DigitScale: one MNIST digit, two tasks whose losses differ by orders of magnitude.

- digit: its class, 10-way cross-entropy (about 2.3 at the start);
- ink: its total ink, the sum of its pixels in [0, 1], MSE. The ink averages about 100 with a
  spread of about 34, so its loss starts near 10^4 and its chance level is about 1150.

Items are read one at a time from the MNIST IDX files, memory-mapped: `gradnorm-tune data mnist`
fetches them once. Building the problem reads nothing; `load_data()` only maps the files.
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gradnorm_core import ErrorRate, MemmapDataset, Metrics, MultiHeadNet, NormalizedMSE, Problem
from gradnorm_core import chance_cross_entropy, chance_mse, default_cache_dir, seeded_init


def digit_and_ink(image, targets):
    """An item of the IDX arrays -> (image (1, 28, 28) in [0, 1], (digit class, ink (1,)))."""
    image = image.float()[None] / 255
    return image, (targets[0].long(), image.sum().reshape(1))


def mnist_items(folder, part, indices):
    """The images at `indices` of MNIST's `part` ("train" or "t10k"), mapped, read item by item."""
    images, labels = (folder / f"{part}-{kind}-ubyte" for kind in ("images-idx3", "labels-idx1"))
    if not images.is_file():
        raise FileNotFoundError(f"{images} not found; run `gradnorm-tune data mnist` once")
    return MemmapDataset(images, [labels], indices, transform=digit_and_ink)


class DigitScale(Problem):
    name = "digit_scale"
    task_names = ("digit", "ink")
    # GradNorm's W: the Linear after the convolutions, the last shared layer (the paper's choice,
    # where the task gradients meet). A Linear in a MultiHeadNet takes GradNorm's fast path: one
    # backward pass per step. The last Conv2d ("trunk.3", in the spec) takes the exact plain
    # path, one more partial backward pass per task.
    shared_layer = "trunk.7"

    def __init__(self, num_train=50000, num_val=10000, num_test=10000, data_dir=None, seed=0):
        if min(num_train, num_val, num_test) < 1 or num_train + num_val > 60000 or num_test > 10000:
            raise ValueError("need num_train, num_val, num_test >= 1, num_train + num_val <= 60000, "
                             "num_test <= 10000")
        self.sizes, self.seed = (num_train, num_val, num_test), seed
        self.data_dir = Path(data_dir) if data_dir else default_cache_dir()

    def load_data(self):
        num_train, num_val, num_test = self.sizes
        rng = np.random.default_rng(self.seed)
        order, test_order = rng.permutation(60000), rng.permutation(10000)
        return (mnist_items(self.data_dir, "train", order[:num_train]),
                mnist_items(self.data_dir, "train", order[60000 - num_val:]),
                mnist_items(self.data_dir, "t10k", test_order[:num_test]))

    def build_model(self, seed=0):
        with seeded_init(seed):
            trunk = nn.Sequential(
                nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),   # trunk.0-2: 16 x 12 x 12
                nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),  # trunk.3-5: 32 x 4 x 4
                nn.Flatten(), nn.Linear(512, 64), nn.ReLU(),       # trunk.6-8
            )
            return MultiHeadNet(trunk, [nn.Linear(64, 10), nn.Linear(64, 1)])

    def task_losses(self, outputs, targets):
        return torch.stack([F.cross_entropy(outputs[0], targets[0]), F.mse_loss(outputs[1], targets[1])])

    def metrics(self):
        return Metrics([ErrorRate("digit", 0), NormalizedMSE("ink", 1)])

    def chance_losses(self):
        """The losses of the best constant predictions on the train split: for GradNorm's
        `initial_losses: chance` (the ink's first loss mostly measures its head's offset)."""
        (images, labels), rows = self.train.arrays, self.train.indices
        ink = torch.from_numpy(images[rows].sum(axis=(1, 2)) / 255.0)
        return [chance_cross_entropy(torch.from_numpy(labels[rows].astype(np.int64))), chance_mse(ink)]
