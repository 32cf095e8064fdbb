"""What the balancer tests share: a tiny multitask problem with known losses, a plain SGD
step of its model, and a short ``fit`` that checks exact resume (imported by the contract test
and the per-method files)."""

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


def fit_and_resume(method: str, problem=None, *, batch_size: int = 64, network_lr: float = 1e-3,
                   **options) -> list[dict]:
    """The records of a 3-epoch ``fit`` with ``method`` (its ``options``; ``network_lr`` is the
    network's), after checking that a run stopped after
    its first epoch and resumed from its ``state_dict`` gives the same records (all but their wall
    clock) as the uninterrupted one. Every record's numbers are finite."""
    import math

    from gradnorm_core import fit, make_balancer
    from gradnorm_core.problems import ToyRegression

    if problem is None:
        problem = ToyRegression([1.0, 10.0, 50.0], num_train=256, num_val=64, num_test=64, seed=3)

    def start(state=None):
        model = problem.build_model(seed=1)
        balancer = make_balancer(method, problem.num_tasks, model=model, **options)
        return fit(problem, balancer, model=model, state=state, epochs=3, batch_size=batch_size, lr=network_lr, seed=1)

    uninterrupted = [record.as_dict() for record in start()]
    assert len(uninterrupted) == 3
    for record in uninterrupted:
        numbers = [record["score"], *record["train"].values(), *record["val"].values(), *record["weights"],
                   *record["mean_weights"]]
        assert all(math.isfinite(x) for x in numbers), record
    first = start()
    head = [next(iter(first)).as_dict()]
    resumed = start(state=first.state_dict())
    for got, expected in zip(head + [record.as_dict() for record in resumed], uninterrupted, strict=True):
        got, expected = dict(got), dict(expected)
        for key in ("elapsed_seconds", "cpu_seconds"):  # the clocks; samples must match
            got.pop(key), expected.pop(key)
        assert got == expected
    return uninterrupted
