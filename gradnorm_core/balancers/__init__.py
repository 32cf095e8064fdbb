"""Loss-balancing methods, one module each, all behind the :class:`Balancer` interface, and a
registry that builds them by name."""

from __future__ import annotations

from typing import Any

from torch import nn

from .base import Balancer, NonFiniteLossError
from .dwa import DynamicWeightAverage
from .gradnorm import GradNorm
from .static import EqualWeights, StaticWeights
from .uncertainty import UncertaintyWeighting

__all__ = [
    "METHODS",
    "Balancer",
    "DynamicWeightAverage",
    "EqualWeights",
    "GradNorm",
    "NonFiniteLossError",
    "StaticWeights",
    "UncertaintyWeighting",
    "make_balancer",
]

# method name -> the options it accepts (besides num_tasks and the model)
METHODS: dict[str, tuple[str, ...]] = {
    "gradnorm": ("alpha", "lr", "optimizer", "initial_losses", "min_weight"),
    "equal": (),
    "static": ("weights",),
    "uncertainty": ("lr", "optimizer"),
    "dwa": ("temperature",),
}


def make_balancer(method: str, num_tasks: int, model: nn.Module | None = None, **options: Any) -> Balancer:
    """Build the balancer named ``method`` for ``num_tasks`` tasks.

    ``"gradnorm"`` uses the fast path on ``model.last_shared_layer`` (a
    :class:`~gradnorm_core.problems.MultiHeadNet`), so it needs ``model``; the model's forward
    must then be called with ``branch=balancer.branch``, as the training loop does.
    ``"static"`` needs ``weights``, one per task. Bad names or options raise a one-line
    ValueError naming them.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    accepted = METHODS[method]
    for key in options:
        if key not in accepted:
            allowed = ", ".join(accepted) if accepted else "none"
            raise ValueError(f"method {method!r} takes no option {key!r}; accepted options: {allowed}")
    if method == "gradnorm":
        if model is None or not hasattr(model, "last_shared_layer"):
            raise ValueError("method 'gradnorm' needs the model (with a last_shared_layer) to balance")
        return GradNorm.for_linear(model.last_shared_layer, num_tasks, **options)
    if method == "equal":
        return EqualWeights(num_tasks)
    if method == "static":
        if "weights" not in options:
            raise ValueError(f"method 'static' needs option 'weights': a list of {num_tasks} numbers")
        weights = options["weights"]
        if not hasattr(weights, "__len__") or len(weights) != num_tasks:
            raise ValueError(
                f"weights must hold {num_tasks} numbers, one per task, got {weights!r}"
            )
        return StaticWeights(weights)
    if method == "uncertainty":
        return UncertaintyWeighting(num_tasks, **options)
    return DynamicWeightAverage(num_tasks, **options)
