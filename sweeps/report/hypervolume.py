"""The hypervolume of the front each search found, and that quality per second of compute: the
figure that makes a grid, a front search and the single alpha search comparable as ways to map
the trade-off between tasks.

A search's points (:func:`search_points`): one per configuration with a result
(:func:`.selection.config_results`), the mean over its seeds of each task's normalized
validation error at each trial's best epoch (:func:`.fronts.task_errors`: scale-free, lower is
better, the epoch selection keeps). The front it found is the non-dominated set of those points
(:func:`.fronts.pareto_front`; dominated points add no volume anyway). The single-task reference
has no points (its trials each train one task).

The reference point (:func:`reference_point`) is one for the whole sweep, so every search is
measured in the same box: for each task t, ``r_t = 1.1 * max e_t``, the maximum taken over the
points of every search of the sweep (grids included), i.e. the sweep's worst normalized error in
that task plus 10%, so that a point that is the worst in one task still adds volume.

The hypervolume of a set ``P`` against ``r`` is the Lebesgue measure of the region it dominates
inside the box, ``HV(P) = vol( union_{p in P} [p_1, r_1] x ... x [p_T, r_T] )``, in the units of
the product of the T normalized errors; computed exactly by ``moocore.hypervolume`` (the
algorithms of Fonseca et al. 2006 and Guerreiro & Fonseca 2017; exponential in T, fast for the
fronts a sweep finds). Per compute: ``HV / compute seconds``, a derived search's compute
counted with its source's (:func:`.selection.with_source`).

Pure functions over :mod:`.summaries` data.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from .fronts import Point, pareto_front, task_errors
from .selection import config_results, with_source
from .summaries import SearchSummary

__all__ = ["REFERENCE_MARGIN", "front_tasks", "hypervolume", "hypervolumes", "reference_point", "search_front",
           "search_points"]

#: The reference point is the sweep's worst normalized error per task times this.
REFERENCE_MARGIN = 1.1


def front_tasks(summaries: Sequence[SearchSummary]) -> list[str]:
    """The tasks of the points, in the record's order: every task with a normalized error at the
    best epoch of any trial with a result."""
    tasks: list[str] = []
    for summary in summaries:
        for trial in summary.trials:
            if trial.has_result:
                tasks.extend(task for task in task_errors(trial) if task not in tasks)
    return tasks


def search_points(summary: SearchSummary, tasks: Sequence[str]) -> list[Point]:
    """One point per configuration of the search with a result: the mean over its seeds of each
    task's normalized validation error at the trial's best epoch, in ``tasks`` order. A
    configuration lacking a finite error in some task is left out; the reference search has none."""
    if summary.reference or not tasks:
        return []
    points = []
    for config in config_results(summary):
        errors = [task_errors(trial) for trial in config.trials]
        point = tuple(statistics.fmean(e.get(task, math.nan) for e in errors) for task in tasks)
        if all(math.isfinite(value) for value in point):
            points.append(point)
    return points


def search_front(summary: SearchSummary, tasks: Sequence[str]) -> list[Point]:
    """The non-dominated of the search's points (:func:`search_points`)."""
    points = search_points(summary, tasks)
    return [points[i] for i in pareto_front(points)]


def reference_point(summaries: Sequence[SearchSummary], tasks: Sequence[str]) -> Point | None:
    """``r_t = REFERENCE_MARGIN * max e_t`` over the points of every search (see the module
    docstring); ``None`` without any point."""
    points = [point for summary in summaries for point in search_points(summary, tasks)]
    if not points:
        return None
    return tuple(REFERENCE_MARGIN * max(point[t] for point in points) for t in range(len(tasks)))


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume the ``points`` dominate inside the box up to ``reference`` (minimisation); a
    point not below the reference in every coordinate adds nothing; 0 without points."""
    if len(points) == 0:
        return 0.0
    import moocore
    import numpy as np

    return float(moocore.hypervolume(np.asarray(points, dtype=float).reshape(len(points), -1), ref=list(reference)))


def hypervolumes(summaries: Sequence[SearchSummary]) -> dict[str, tuple[float, float | None] | None]:
    """``{search name: (hypervolume, hypervolume per compute second)}`` of the front each search
    found, against the sweep's one reference point; the per-second figure is ``None`` without
    compute. ``None`` for the single-task reference, and for every search when no trial has a
    point."""
    tasks = front_tasks(summaries)
    reference = reference_point(summaries, tasks)
    found: dict[str, tuple[float, float | None] | None] = {}
    for summary in summaries:
        if reference is None or summary.reference:
            found[summary.name] = None
            continue
        volume = hypervolume(search_front(summary, tasks), reference)
        compute = with_source(summary, summaries)
        found[summary.name] = (volume, volume / compute if compute > 0 else None)
    return found
