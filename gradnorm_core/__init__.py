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
    IMTL,
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
from .data import MemmapDataset, default_cache_dir, map_array
from .problems import PROBLEMS, MultiHeadNet, Problem, make_problem, problem_tasks
from .problems import BinaryErrorRate, ErrorRate, MeanAbsoluteError, Metric, Metrics, NormalizedMSE, Split
from .problems import TASK_KINDS, TargetShapeError, check_target_shapes, higher_is_better
from .problems.base import chance_binary_cross_entropy, chance_cross_entropy, chance_mse, seeded_init
from .problems.data import iterate_batches
from .train_config import TrainConfig, resolve_device
from .records import EpochRecord
from .training import Training, fit

__all__ = [
    "BALANCERS",
    "INITIAL_LOSS_RULES",
    "METHODS",
    "PROBLEMS",
    "TASK_KINDS",
    "Balancer",
    "BinaryErrorRate",
    "BalancerOptionError",
    "DynamicWeightAverage",
    "EpochRecord",
    "EqualWeights",
    "ErrorRate",
    "FAMO",
    "GradNorm",
    "IMTL",
    "IMTLL",
    "MeanAbsoluteError",
    "MemmapDataset",
    "Metric",
    "Metrics",
    "MultiHeadNet",
    "NonFiniteLossError",
    "NormalizedMSE",
    "Problem",
    "ScaleInvariant",
    "Split",
    "StaticWeights",
    "TargetShapeError",
    "TrainConfig",
    "Training",
    "UncertaintyWeighting",
    "chance_binary_cross_entropy",
    "chance_cross_entropy",
    "chance_mse",
    "default_cache_dir",
    "check_balancer_options",
    "check_target_shapes",
    "fit",
    "higher_is_better",
    "iterate_batches",
    "make_balancer",
    "make_problem",
    "map_array",
    "problem_tasks",
    "register",
    "resolve_device",
    "resolve_shared_layer",
    "resolve_initial_losses",
    "seeded_init",
]
