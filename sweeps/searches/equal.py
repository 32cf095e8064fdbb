"""``equal``: every task weight 1 (the baseline), at the sweep's learning rate or with the
network's learning rate searched."""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import SearchType

__all__ = ["EqualSearch"]


class EqualSearch(SearchType):
    """All weights equal: one trial, or with ``lr: {low, high}`` and ``num_trials``, that many
    trials with the network's learning rate drawn log-uniform by Optuna (trials labelled
    ``lr=0.0012``).

    Equal weights with a tuned learning rate are the simple baseline that Xin et al. (NeurIPS 2022,
    "Do Current Multi-Task Optimization Methods in Deep Learning Even Help?") and Kurin et al.
    (NeurIPS 2022, "In Defense of the Unitary Scalarization for Deep Multi-Task Learning") found as
    strong as the balancing methods once each method's learning rate is tuned. (It replaces the
    former type ``equal_lr``: write ``type: equal`` with the same ``lr`` and ``num_trials``.)
    """

    method: ClassVar[str] = "equal"

    type: Literal["equal"] = "equal"
