"""What each search cost against the static grid, in every unit a trial's cost is counted in, and
what the full combinatorial grid would cost.

Units (:data:`.summaries.COST_UNITS`): wall-clock ``compute`` seconds, which grow with whatever
else loads the machine (and, since all searches share the trial slots and interleave, unevenly
between searches: in ``bench/load_check.py``, two runs of one small sweep on 2 shared cores, the
second beside two CPU burners, the alpha search's share of the grid's went from 64% to 81%); the
trials' own ``cpu`` seconds (``gpu`` seconds for trials on a GPU), which move far less (they grew
by about 1.4-fold, the share went from 67% to 69%: shared cores and caches); and ``samples``, the
training items processed, which do not move at all (50% in both), but leave out what a method
spends per sample beyond the others (the CPU time says it). :func:`stable_unit` is the one the answer states its costs in, with the time
units beside it.

The grid a sweep runs may be sampled (``max_trials`` below its size) or capped; the full grid is
then *projected* (:func:`full_grid_cost`): its point count times the mean cost of a point that
ran (all its seeds, every outcome counted). With T tasks and k levels per task that is k^T
points: :func:`grid_points_by_tasks` gives the count for other task counts at the sweep's levels.

Pure functions over :mod:`.summaries` data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .selection import grid_reach, grid_search, label_of, source_compute, with_source
from .summaries import COST_UNITS, WEIGHT, SearchSummary

#: every unit, the stablest first: the order in which the answer prefers them
PREFERRED = ("samples", "gpu", "cpu", "compute")
#: what each unit is called in sentences ("31% of the grid's CPU time")
UNIT_WORDS = {"compute": "wall-clock seconds", "cpu": "CPU time", "gpu": "GPU time", "samples": "samples processed"}


def stable_unit(searches: Sequence[SearchSummary]) -> str:
    """The first unit of :data:`PREFERRED` that every trial of the sweep has a cost in:
    ``samples``, else ``gpu`` when every trial ran on a GPU, else ``cpu``; ``compute``
    (wall-clock) for a record written before the others were counted, or a sweep without trials."""
    trials = [trial for search in searches for trial in search.trials]
    for unit in PREFERRED[:-1]:
        if trials and all(trial.cost(unit) is not None for trial in trials):
            return unit
    return "compute"


def points_ran(grid: SearchSummary) -> int:
    """How many of the grid's configurations (points, each with all its seeds) have a trial, whatever
    its outcome."""
    return len({label_of(trial) for trial in grid.trials})


def projected(grid: SearchSummary) -> bool:
    """Whether the full grid's cost is a projection: fewer of its points ran than it has."""
    return grid.grid_size is not None and points_ran(grid) < grid.grid_size


def full_grid_cost(grid: SearchSummary, unit: str) -> float | None:
    """The full grid's cost in ``unit``: ``grid_size x cost / points_ran``, the mean cost of a point
    that ran (its seeds together) times the grid's points; the grid's own cost when it ran whole.
    ``None`` without a grid size, a trial, or a known cost in ``unit``."""
    cost, ran = grid.cost(unit), points_ran(grid)
    if cost is None or not ran or grid.grid_size is None:
        return None
    return cost if ran >= grid.grid_size else grid.grid_size * cost / ran


def grid_fractions(searches: Sequence[SearchSummary]) -> dict[str, dict[str, float | None]]:
    """``{search name: fractions}`` against the grid (:func:`.selection.grid_search`), in every unit
    the grid's cost is known in: ``grid_<unit>_fraction`` (the search's cost, a derived search's with
    its source's, over the grid's as it ran), ``full_grid_<unit>_fraction`` (over the full grid's,
    :func:`full_grid_cost`, where its size is known) and ``to_grid_best`` (wall-clock) or ``to_grid_best_<unit>``: the fraction
    of the grid's cost at which it first came within noise of the grid's best (``None``: never;
    not for the single-task reference). A fraction whose cost is unknown is left out. Empty
    without a grid with a result."""
    grid = grid_search(searches)
    if grid is None:
        return {}
    searches = list(searches)
    out: dict[str, dict[str, float | None]] = {search.name: {} for search in searches}
    for unit in COST_UNITS:
        total, full = grid.cost(unit), full_grid_cost(grid, unit)
        if not total or total <= 0:
            continue
        reach = grid_reach(searches, unit)
        for search in searches:
            cost = with_source(search, searches, unit)
            if cost is None:
                continue
            out[search.name][f"grid_{unit}_fraction"] = cost / total
            if full:
                out[search.name][f"full_grid_{unit}_fraction"] = cost / full
            if search.name in reach and _reach_known(search, searches, unit):
                out[search.name][reach_key(unit)] = reach[search.name]
    return out


def _reach_known(search: SearchSummary, searches: Sequence[SearchSummary], unit: str) -> bool:
    return search.cost(unit) is not None and source_compute(search, list(searches), unit) is not None


def reach_key(unit: str) -> str:
    """The row key of the fraction of the grid at which a search reached its best, in ``unit``."""
    return "to_grid_best" if unit == "compute" else f"to_grid_best_{unit}"


def task_count(grid: SearchSummary) -> int | None:
    """The grid's number of tasks: its recorded levels', else its trials' ``weight/<task>`` keys."""
    if grid.levels:
        return len(grid.levels)
    for trial in grid.trials:
        keys = [key for key in (trial.history[0] if trial.history else {}) if key.startswith(WEIGHT)]
        if keys:
            return len(keys)
    return None


def grid_points_by_tasks(grid: SearchSummary, up_to: int) -> list[tuple[int, int]]:
    """``[(tasks, points)]`` for 2 .. ``max(up_to, its tasks)`` tasks: the grid's point count at its
    own levels per task. With its levels recorded, tasks with one level stay fixed (one task's
    weight can be, the scores being scale-free) and every other task gets the geometric mean of
    the varied tasks' level counts, k: k^(tasks - fixed) points; without them, k = size^(1/tasks).
    At the grid's own task count, its own size. Empty without a size or a task count."""
    tasks = task_count(grid)
    if grid.grid_size is None or not tasks:
        return []
    if grid.levels:
        varied = [count for count in grid.levels if count > 1]
        fixed = len(grid.levels) - len(varied)
        levels = math.prod(varied) ** (1 / len(varied)) if varied else 1.0
    else:
        fixed, levels = 0, grid.grid_size ** (1 / tasks)
    return [(count, grid.grid_size if count == tasks else max(1, round(levels ** max(count - fixed, 0))))
            for count in range(2, max(up_to, tasks) + 1)]
