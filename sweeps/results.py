"""What a finished sweep is made of, as plain data: trials and searches. Built from MLflow (or
from Tune's results) by the runner; consumed by the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrialSummary:
    """One trial of one search, with its per-epoch history.

    ``history`` holds one dict per epoch, in order, with at least ``"epoch"``, ``"score"`` (the
    validation score, lower is better; only on epochs that validated), ``"test/score"`` and
    ``"test/<task>/<metric>"`` (at least at the best and the last epoch),
    ``"weight/<task>"`` (weights at the end of the epoch) and ``"mean_weight/<task>"`` (weights
    averaged over the epoch's steps), and ``"compute_seconds"`` (cumulative).
    """

    search: str
    trial_id: str
    config: dict[str, Any]
    status: str  # "FINISHED", "FAILED", ...
    compute_seconds: float
    device: str
    end_time: float  # unix seconds when the trial finished (orders trials on the cost axis)
    history: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    start_time: float = 0.0  # unix seconds when the trial started
    stopped_early: bool = False  # ended by its search's early stopping before its last epoch (still FINISHED)

    @property
    def best_epoch(self) -> dict[str, float] | None:
        """The epoch with the lowest validation score (the one a search would keep; the first of
        equals), among the epochs that validated (``val_every``); it always has the test metrics."""
        validated = [record for record in self.history if "score" in record]
        if not validated:
            return None
        return min(validated, key=lambda record: record["score"])


@dataclass
class SearchSummary:
    """One search (an alpha search, a static grid, a baseline) and its trials."""

    name: str
    kind: str  # "gradnorm", "static_grid", "equal", "uncertainty", "dwa", "static"
    wall_seconds: float
    trials: list[TrialSummary]
    grid_size: int | None = None  # full combinatorial size of a static grid
    sampled: bool = False  # whether the grid was sampled at random under a trial cap
