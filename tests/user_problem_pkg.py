"""A user's problem package, written by the tests into a directory outside the repository (on no
Python path): what a user ships to the cluster with ``--working-dir``. Only the public interface
of gradnorm_core is used."""

from __future__ import annotations

import textwrap
from pathlib import Path

PACKAGE = "waves_problems"

PROBLEMS_PY = '''
"""Two regression tasks on random inputs: sin(sum x) and 10 x0 x1."""

import torch
from torch import nn

from gradnorm_core import Metrics, MultiHeadNet, NormalizedMSE, Problem, Split, seeded_init

LOADS = []  # one entry per load_data() call in this process


class Waves(Problem):
    def __init__(self, num_train=128, num_val=32, num_test=32, seed=0, fail_seed=None):
        # cheap: options checked and names set, no data
        if num_train < 1:
            raise ValueError(f"num_train must be >= 1, got {num_train}")
        self.name = "waves"
        self.task_names = ("low", "high")
        self.sizes, self.seed, self.fail_seed = (num_train, num_val, num_test), seed, fail_seed

    def load_data(self):
        LOADS.append(self.sizes)
        generator = torch.Generator().manual_seed(self.seed)
        splits = []
        for size in self.sizes:
            x = torch.randn(size, 4, generator=generator)
            splits.append(Split(x, (torch.sin(x.sum(1, keepdim=True)), 10 * x[:, :1] * x[:, 1:2])))
        return tuple(splits)

    def build_model(self, seed=0):
        if seed == self.fail_seed:  # a user's bug, in one trial only (where it ran from: the shipped copy)
            raise RuntimeError(f"waves: no model for seed {seed} (module {__file__})")
        with seeded_init(seed):
            return MultiHeadNet(nn.Sequential(nn.Linear(4, 16), nn.ReLU()), [nn.Linear(16, 1), nn.Linear(16, 1)])

    def task_losses(self, outputs, targets):
        return torch.stack([nn.functional.mse_loss(o, t) for o, t in zip(outputs, targets)])

    def metrics(self):
        return Metrics([NormalizedMSE(task, index) for index, task in enumerate(self.task_names)])


class Scaled(Waves):
    """A problem with a required option."""

    def __init__(self, scale, **options):
        super().__init__(**options)
        self.scale = scale


def make_waves(num_train=128, seed=0):
    """A factory function: any callable returning a Problem."""
    return Waves(num_train=num_train, seed=seed)


class Factories:
    waves = staticmethod(make_waves)


def not_a_problem(**options):
    return {"tasks": ["low", "high"]}
'''


def write_package(root: Path, *, broken: bool = False) -> Path:
    """``root/waves_problems/`` (a package), and ``root`` returned: the directory to ship.
    ``broken``: its import fails on a missing dependency."""
    package = root / PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        "import waves_missing_dependency\n" if broken else "from .problems import *  # noqa: F403\n")
    (package / "problems.py").write_text(textwrap.dedent(PROBLEMS_PY))
    return root


def write_entry_point(root: Path, name: str = "waves", target: str = f"{PACKAGE}.problems:Waves") -> Path:
    """A distribution's metadata in ``root`` registering ``name`` in the group gradnorm_tune.problems:
    with ``root`` on sys.path, importlib.metadata finds it, as for an installed package."""
    info = root / "waves_problems-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: waves-problems\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[gradnorm_tune.problems]\n{name} = {target}\n")
    return root
