"""Loss-balancing methods, one module each, all behind the :class:`Balancer` interface, and the
registry that builds them by name (:mod:`.registry`): each module registers its class with
``@register("name")``, and :func:`make_balancer` builds it with its options checked."""

from __future__ import annotations

# the order of the imports is the order of the methods in METHODS and in messages
from .base import Balancer, NonFiniteLossError
from .registry import BALANCERS, METHODS, BalancerOptionError, check_balancer_options, make_balancer, register
from .gradnorm import GradNorm
from .static import EqualWeights, StaticWeights
from .uncertainty import UncertaintyWeighting
from .dwa import DynamicWeightAverage
from .scale_invariant import ScaleInvariant
from .imtl_l import IMTLL
from .imtl import IMTL
from .famo import FAMO
from .mgda import MGDA
from .pcgrad import PCGrad
from .cagrad import CAGrad
from .nash_mtl import NashMTL
from .imtl_g import IMTLG
from .aligned_mtl import AlignedMTL
from .upgrad import UPGrad
from .dualproj import DualProj
from .rlw import RandomLossWeighting
from .jacobian import JACOBIANS, JacobianBalancer
from .initial_losses import INITIAL_LOSS_RULES, resolve_initial_losses
from .shared_layer import resolve_shared_layer

__all__ = [
    "AlignedMTL",
    "BALANCERS",
    "CAGrad",
    "DualProj",
    "INITIAL_LOSS_RULES",
    "IMTLG",
    "JACOBIANS",
    "JacobianBalancer",
    "MGDA",
    "NashMTL",
    "PCGrad",
    "RandomLossWeighting",
    "UPGrad",
    "METHODS",
    "Balancer",
    "BalancerOptionError",
    "DynamicWeightAverage",
    "EqualWeights",
    "FAMO",
    "GradNorm",
    "IMTL",
    "IMTLL",
    "NonFiniteLossError",
    "ScaleInvariant",
    "StaticWeights",
    "UncertaintyWeighting",
    "check_balancer_options",
    "make_balancer",
    "register",
    "resolve_initial_losses",
    "resolve_shared_layer",
]
