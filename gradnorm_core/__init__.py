"""GradNorm and the loss-balancing methods it is compared with, in pure PyTorch.

    from gradnorm_core import GradNorm
    gn = GradNorm(shared_layer.parameters(), num_tasks=T, alpha=1.5)
    ...
    optimizer.zero_grad()
    gn.backward(losses)      # instead of loss.backward()
    optimizer.step()
"""

from .balancers import (
    BALANCERS,
    INITIAL_LOSS_RULES,
    METHODS,
    Balancer,
    BalancerOptionError,
    DynamicWeightAverage,
    EqualWeights,
    FAMO,
    GradNorm,
    IMTLL,
    NonFiniteLossError,
    ScaleInvariant,
    StaticWeights,
    UncertaintyWeighting,
    check_balancer_options,
    make_balancer,
    register,
    resolve_initial_losses,
    resolve_shared_layer,
)
from .problems import PROBLEMS, MultiHeadNet, Problem, make_problem, problem_tasks
from .problems import ErrorRate, MeanAbsoluteError, Metric, Metrics, NormalizedMSE, Split
from .training import EpochRecord, TrainConfig, Training, fit

__all__ = [
    "BALANCERS",
    "INITIAL_LOSS_RULES",
    "METHODS",
    "PROBLEMS",
    "Balancer",
    "BalancerOptionError",
    "DynamicWeightAverage",
    "EpochRecord",
    "EqualWeights",
    "ErrorRate",
    "FAMO",
    "GradNorm",
    "IMTLL",
    "MeanAbsoluteError",
    "Metric",
    "Metrics",
    "MultiHeadNet",
    "NonFiniteLossError",
    "NormalizedMSE",
    "Problem",
    "ScaleInvariant",
    "Split",
    "StaticWeights",
    "TrainConfig",
    "Training",
    "UncertaintyWeighting",
    "check_balancer_options",
    "fit",
    "make_balancer",
    "make_problem",
    "problem_tasks",
    "register",
    "resolve_shared_layer",
    "resolve_initial_losses",
]
