"""Loss-balancing methods, one module each, all behind the :class:`Balancer` interface."""

from .base import Balancer, NonFiniteLossError
from .dwa import DynamicWeightAverage
from .gradnorm import GradNorm
from .static import EqualWeights, StaticWeights
from .uncertainty import UncertaintyWeighting

__all__ = [
    "Balancer",
    "DynamicWeightAverage",
    "EqualWeights",
    "GradNorm",
    "NonFiniteLossError",
    "StaticWeights",
    "UncertaintyWeighting",
]
