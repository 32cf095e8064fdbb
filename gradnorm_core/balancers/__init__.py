"""Loss-balancing methods, one module each, all behind the :class:`Balancer` interface, and a
registry that builds them by name."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..problems.models import accepts_branch
from .base import Balancer, NonFiniteLossError
from .dwa import DynamicWeightAverage
from .famo import FAMO
from .gradnorm import GradNorm
from .initial_losses import INITIAL_LOSS_RULES, resolve_initial_losses
from .imtl import IMTL
from .imtl_l import IMTLL
from .scale_invariant import ScaleInvariant
from .shared_layer import gradnorm_for, resolve_shared_layer
from .static import EqualWeights, StaticWeights
from .uncertainty import UncertaintyWeighting

__all__ = [
    "INITIAL_LOSS_RULES",
    "METHODS",
    "Balancer",
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
    "make_balancer",
    "resolve_initial_losses",
    "resolve_shared_layer",
]

# method name -> the options it accepts (besides num_tasks and the model)
METHODS: dict[str, tuple[str, ...]] = {
    "gradnorm": ("alpha", "lr", "optimizer", "initial_losses", "min_weight"),
    "equal": (),
    "static": ("weights",),
    "uncertainty": ("lr", "optimizer", "kinds"),
    "dwa": ("temperature",),
    "scale_invariant": (),
    "imtl_l": ("lr", "optimizer"),
    "imtl": ("lr", "optimizer"),
    "famo": ("lr", "weight_decay", "min_losses", "update"),
}


def make_balancer(
    method: str,
    num_tasks: int,
    model: nn.Module | None = None,
    shared_layer: str | None = None,
    **options: Any,
) -> Balancer:
    """Build the balancer named ``method`` for ``num_tasks`` tasks.

    ``"gradnorm"`` needs ``model``: its W is ``model.get_submodule(shared_layer)``, or with
    ``shared_layer`` None the model's ``last_shared_layer`` (:class:`MultiHeadNet`). An
    ``nn.Linear`` W in a model whose forward takes ``branch`` gets the single-backward fast
    path (the training loop then calls ``model(x, branch=balancer.branch)``); any other module
    or model gets the exact plain path (see :func:`.shared_layer.gradnorm_for`). Other methods
    use no W; a ``shared_layer`` given with a ``model`` is still checked to exist. ``"imtl"``
    reads the trunk's output through ``branch`` (the training loop then calls
    ``model(x, branch=balancer.branch)``), so a given model must take ``branch``.
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
        if model is None:
            raise ValueError("method 'gradnorm' needs the model to balance (model=...)")
        return gradnorm_for(model, num_tasks, shared_layer, **options)
    if model is not None and shared_layer is not None:
        resolve_shared_layer(model, shared_layer)
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
    if method == "scale_invariant":
        return ScaleInvariant(num_tasks)
    if method == "imtl_l":
        return IMTLL(num_tasks, **options)
    if method == "imtl":
        if model is not None and not accepts_branch(model):
            raise ValueError(
                f"method 'imtl' needs a model whose forward takes branch= (MultiHeadNet), got "
                f"{type(model).__name__}: IMTL balances the task gradients at the trunk's output"
            )
        return IMTL(num_tasks, **options)
    if method == "famo":
        return FAMO(num_tasks, **options)
    return DynamicWeightAverage(num_tasks, **options)
