"""GradNorm and the loss-balancing methods it is compared with, in pure PyTorch.

    from gradnorm_core import GradNorm
    gn = GradNorm(shared_layer.parameters(), num_tasks=T, alpha=1.5)
    ...
    optimizer.zero_grad()
    gn.backward(losses)      # instead of loss.backward()
    optimizer.step()
"""

from .balancers import (
    METHODS,
    Balancer,
    DynamicWeightAverage,
    EqualWeights,
    GradNorm,
    NonFiniteLossError,
    StaticWeights,
    UncertaintyWeighting,
    make_balancer,
)
from .problems import PROBLEMS, MultiHeadNet, Problem, make_problem, problem_tasks
from .training import EpochRecord, TrainConfig, Training, fit

__all__ = [
    "METHODS",
    "PROBLEMS",
    "Balancer",
    "DynamicWeightAverage",
    "EpochRecord",
    "EqualWeights",
    "GradNorm",
    "MultiHeadNet",
    "NonFiniteLossError",
    "Problem",
    "StaticWeights",
    "TrainConfig",
    "Training",
    "UncertaintyWeighting",
    "fit",
    "make_balancer",
    "make_problem",
    "problem_tasks",
]
