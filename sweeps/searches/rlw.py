"""``rlw``: random loss weighting (Lin et al., TMLR 2022), the field's litmus test."""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import SearchType

__all__ = ["RlwSearch"]


class RlwSearch(SearchType):
    """Task weights drawn each step from a softmax of standard normals: one configuration, or with
    ``lr: {low, high}`` and ``num_trials`` that many with the network's learning rate drawn by
    Optuna. Each trial's draws are seeded by its training seed (repeats draw differently)."""

    method: ClassVar[str] = "rlw"

    type: Literal["rlw"] = "rlw"
