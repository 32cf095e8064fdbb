"""What the search types of the gradient-aggregation methods share (``mgda``, ``pcgrad``, ``cagrad``,
``nash_mtl``, ``imtl_g``, ``aligned_mtl``, ``upgrad``, ``dualproj``; one module each): one
configuration, where the task Jacobian is taken, and the method's own options passed to its
balancer under their own names."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from ..validation import Fix
from .base import SearchType

__all__ = ["JacobianSearch"]

class JacobianSearch(SearchType):
    """One configuration of a gradient-aggregation method (see
    :class:`gradnorm_core.balancers.JacobianBalancer`), or with ``lr: {low, high}`` and
    ``num_trials`` that many with the network's learning rate drawn by Optuna. ``jacobian``:
    ``parameters`` (left out: the method's default, the trunk's parameters, T backward passes per
    step) or ``representation`` (the trunk's output, one backward pass). A subclass declares the
    method's own options as optional fields named as its balancer names them; each one given is
    passed on (and checked by the balancer's registry before Ray starts)."""

    #: where J is taken: `parameters` (left out: the trunk's parameters, T backward passes per step)
    #: or `representation` (the trunk's output, one backward pass)
    jacobian: Annotated[Literal["parameters", "representation"] | None, Fix(noun="jacobian")] = None

    def balancer_options(self) -> dict[str, Any]:
        own = [key for key in type(self).model_fields if key not in SearchType.model_fields]
        return {key: getattr(self, key) for key in own if getattr(self, key) is not None}
