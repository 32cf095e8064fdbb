"""GradNorm and the loss-balancing methods it is compared with, in pure PyTorch."""

from .balancers import (
    Balancer,
    DynamicWeightAverage,
    EqualWeights,
    GradNorm,
    NonFiniteLossError,
    StaticWeights,
    UncertaintyWeighting,
)

__all__ = [
    "Balancer",
    "DynamicWeightAverage",
    "EqualWeights",
    "GradNorm",
    "NonFiniteLossError",
    "StaticWeights",
    "UncertaintyWeighting",
]
