"""What the balancer tests share: a tiny multitask problem with known losses, and a plain SGD
step of its model (imported by test_static, test_uncertainty, test_imtl_l, test_scale_invariant,
test_famo)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def make_problem(dtype: torch.dtype = torch.float32, num_tasks: int = 3, seed: int = 0,
                 scales: Sequence[float] = (1.0, 10.0, 0.1)):
    """A linear model with one output per task; task i's loss is ``scales[i]`` times the MSE of
    output i (scales of different sizes, so that balancing has something to do)."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Linear(4, num_tasks).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=dtype))
    x = torch.randn(8, 4, generator=generator, dtype=dtype)
    y = torch.randn(8, num_tasks, generator=generator, dtype=dtype)
    scale = torch.tensor(list(scales)[:num_tasks], dtype=dtype)

    def losses() -> torch.Tensor:
        return scale * ((model(x) - y) ** 2).mean(dim=0)

    return model, losses


def sgd_step_model(model: nn.Module, lr: float = 0.01) -> None:
    """``p -= lr * p.grad`` for every parameter."""
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
