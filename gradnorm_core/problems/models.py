"""Model helpers for problems: the shared-trunk multi-head network, and seeded initialisation."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

Branch = Callable[[torch.Tensor], Sequence[torch.Tensor]]


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


def accepts_branch(model: nn.Module) -> bool:
    """Whether ``model``'s forward takes a ``branch`` argument (as :class:`MultiHeadNet` does)."""
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return "branch" in parameters


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
