"""Pareto fronts: where each search's best trial lands against the static grid's front of
per-task normalized validation errors.

A trial's point is its best epoch (:attr:`TrialSummary.best_epoch`: the lowest validation
``"score"``, the epoch selection uses everywhere) read as ``val/<task>/normalized_error`` for each
task (scale-free, lower is better). The grid is every search of kind ``"static_grid"``, their
trials with a result pooled, one point per trial; its front is its points that no other point
dominates in ALL T tasks (minimisation), whatever T. Every search, a grid included, is represented
by its best trial (:func:`.selection.best_trial`). Trials without a finite error for every task
are left out.

Pure functions over :mod:`.summaries` data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .selection import best_trial
from .summaries import GRID_KIND, SearchSummary, TrialSummary

ON_FRONT, INSIDE, BEYOND = "on front", "inside", "beyond"
Point = tuple[float, ...]


def task_errors(trial: TrialSummary) -> dict[str, float]:
    """``{task: val/<task>/normalized_error}`` at the trial's best epoch, tasks in the record's
    key order; empty when the trial has no history (or its records carry no such metric)."""
    record = trial.best_epoch or {}
    return {key.removeprefix("val/").removesuffix("/normalized_error"): float(value)
            for key, value in record.items()
            if key.startswith("val/") and key.endswith("/normalized_error") and key.count("/") >= 2}


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` dominates ``b`` (minimisation): ``<=`` in every task and ``<`` in one."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices (ascending) of the points no other point dominates in all their coordinates.
    Equal points do not dominate each other, so duplicates on the front are all kept. Points must
    be finite (a NaN compares false both ways and would always count as non-dominated)."""
    if len(points) == 0:
        return []
    import numpy as np

    array = np.asarray(points, dtype=float).reshape(len(points), -1)
    return [i for i, point in enumerate(array)
            if not np.any(np.all(array <= point, axis=1) & np.any(array < point, axis=1))]


def front_status(point: Sequence[float], front_points: Sequence[Sequence[float]]) -> str:
    """Where ``point`` lands against a front:

    - ``"inside"``: some front point dominates it (the grid found something at least as good in
      every task);
    - ``"beyond"``: it dominates at least one front point (better than the grid's trade-off there);
    - ``"on front"``: otherwise, i.e. it equals a front point or is incomparable with every one of
      them. Such a point would be non-dominated if added to the grid, so it extends the front
      rather than beating or losing to it. An empty front also gives ``"on front"``.

    A point of the grid itself (its best trial, say) is therefore ``"on front"`` or ``"inside"``.
    Against a true front (mutually non-dominated points) the first two cannot both hold.
    """
    if any(dominates(front, point) for front in front_points):
        return INSIDE
    if any(dominates(point, front) for front in front_points):
        return BEYOND
    return ON_FRONT


@dataclass
class ParetoView:
    """What the Pareto plot and the ``grid front`` column show: the task names, the pooled grid
    trials' points, the indices of the front among them, ``bests`` (``[(search name, point or
    None)]`` for every search's best trial, in the order given) and whether any search is a grid."""

    tasks: list[str]
    grid: list[Point]
    front: list[int]
    bests: list[tuple[str, Point | None]]
    has_grid: bool

    @property
    def front_points(self) -> list[Point]:
        return [self.grid[i] for i in self.front]


def _tasks(trials: Sequence[TrialSummary]) -> list[str]:
    tasks: list[str] = []
    for trial in trials:
        tasks.extend(task for task in task_errors(trial) if task not in tasks)
    return tasks


def _point(trial: TrialSummary | None, tasks: Sequence[str]) -> Point | None:
    """The trial's errors in ``tasks`` order; ``None`` without a trial, or a finite value for each."""
    errors = task_errors(trial) if trial is not None else {}
    values = tuple(errors.get(task, math.nan) for task in tasks)
    return values if tasks and all(math.isfinite(v) for v in values) else None


def pareto_view(summaries: Sequence[SearchSummary]) -> ParetoView:
    """The grid's points and front and every search's best point (none for the single-task
    reference). Tasks come from the grid's trials, or from the best trials when there is no grid
    point."""
    grid_trials = [trial for summary in summaries if summary.kind == GRID_KIND
                   for trial in summary.trials if trial.has_result]
    # a reference search's trials each train one task alone: it has no best trial to place
    best = {summary.name: None if summary.reference else best_trial(summary) for summary in summaries}
    tasks = _tasks(grid_trials) or _tasks([trial for trial in best.values() if trial is not None])
    grid = [point for point in (_point(trial, tasks) for trial in grid_trials) if point is not None]
    bests = [(summary.name, _point(best[summary.name], tasks)) for summary in summaries]
    return ParetoView(tasks, grid, pareto_front(grid), bests,
                      has_grid=any(summary.kind == GRID_KIND for summary in summaries))


def front_statuses(summaries: Sequence[SearchSummary]) -> dict[str, str | None]:
    """``{search name: front_status of its best trial against the grid's front}``, every grid's
    own best included (pooled with several grids, each grid's best is judged against them all).
    ``None`` for a search without a trial with a result and every task's error, and for every
    search when there is no grid or no grid trial with a point."""
    view = pareto_view(summaries)
    front_points = view.front_points
    return {name: None if point is None or not front_points else front_status(point, front_points)
            for name, point in view.bests}
