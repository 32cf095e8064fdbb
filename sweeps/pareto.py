"""The Pareto view of a comparison: where each search's best trial lands against the static
grid's front of per-task normalized validation errors.

A trial's point is its best epoch (:attr:`TrialSummary.best_epoch`: the lowest validation
``"score"``, the epoch selection uses everywhere) read as ``val/<task>/normalized_error`` for each
task (scale-free, lower is better). The grid is every search of kind ``"static_grid"``, their
FINISHED trials pooled, one point per trial; its front is its non-dominated points (minimisation).
Every search, a grid included, is represented by its best trial (:func:`sweeps.report.best_trial`).
Trials without a finite error for every task are left out.

Pure functions plus one plot, drawn like :mod:`sweeps.report`'s (Figure + Agg, no pyplot).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from sweeps import report
from sweeps.results import SearchSummary, TrialSummary

GRID_KIND = "static_grid"
ON_FRONT, INSIDE, BEYOND = "on front", "inside", "beyond"
AXIS_LABEL = "normalized val error (lower is better)"
MARKERS = ("*", "D", "^", "v", "P", "X", "s", "p", "h", "<", ">", "8")
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
    """Indices (ascending) of the points no other point dominates. Equal points do not dominate
    each other, so duplicates on the front are all kept. Points must be finite (a NaN compares
    false both ways and would always count as non-dominated)."""
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


def pareto_view(summaries: Sequence[SearchSummary]
                ) -> tuple[list[str], list[Point], list[int], list[tuple[str, Point | None]]]:
    """``(tasks, grid_points, front_indices, bests)``: the task names, the pooled grid trials'
    points, the indices of the front among them, and ``[(search name, point or None)]`` for every
    search's best trial, in the order given. Tasks come from the grid's trials, or from the best
    trials when there is no grid point."""
    grid_trials = [trial for summary in summaries if summary.kind == GRID_KIND
                   for trial in summary.trials if trial.status == report.FINISHED]
    best = {summary.name: report.best_trial(summary) for summary in summaries}
    tasks = _tasks(grid_trials) or _tasks([trial for trial in best.values() if trial is not None])
    grid = [point for point in (_point(trial, tasks) for trial in grid_trials) if point is not None]
    bests = [(summary.name, _point(best[summary.name], tasks)) for summary in summaries]
    return tasks, grid, pareto_front(grid), bests


def front_statuses(summaries: Sequence[SearchSummary]) -> dict[str, str | None]:
    """``{search name: front_status of its best trial against the grid's front}``, every grid's
    own best included (pooled with several grids, each grid's best is judged against them all).
    ``None`` for a search without a finished trial with every task's error, and for every search
    when there is no grid or no grid trial with a point."""
    _, grid, front, bests = pareto_view(summaries)
    front_points = [grid[i] for i in front]
    return {name: None if point is None or not front_points else front_status(point, front_points)
            for name, point in bests}


# ----------------------------------------------------------------------------- plot


def plot_pareto(summaries: Sequence[SearchSummary], path: str | os.PathLike) -> None:
    """Save a PNG of per-task normalized validation errors: every grid trial a grey point, its front
    emphasised, and every other search's best trial a distinct marker labelled with the search's
    name. Two tasks: one scatter, the front joined as a staircase sorted by the first task. Three
    tasks: a 3x3 scatter matrix (each pair of tasks off the diagonal, front points ringed, since a
    projected 3-D front is no staircase; task names and the legend on the diagonal). One or more
    than three tasks: parallel coordinates (one faint polyline per grid trial, front polylines in
    black, best trials bold). An axis is logarithmic when its values span more than two decades
    (symlog when one of them is 0).
    Without a grid the other searches' points are still drawn and the title says "no static grid".
    """
    tasks, grid, front, bests = pareto_view(summaries)
    others = {s.name for s in summaries if s.kind != GRID_KIND}
    bests = [(name, point) for name, point in bests if name in others and point is not None]
    front_points = [grid[i] for i in front]
    has_grid = any(s.kind == GRID_KIND for s in summaries)
    title = "Per-task normalized val error: static grid front vs each search's best"
    if not has_grid:
        title += " (no static grid)"
    elif not grid:
        title += " (no finished static grid trial)"
    if len(tasks) == 2:
        figure = report.new_figure(7.5, 6.0)
        axes = figure.add_subplot(1, 1, 1)
        _panel(axes, 0, 1, grid, front_points, bests, staircase=True)
        axes.set_xlabel(f"{tasks[0]}: {AXIS_LABEL}")
        axes.set_ylabel(f"{tasks[1]}: {AXIS_LABEL}")
        axes.legend(loc="best", fontsize=8)
        axes.set_title(title, fontsize=10)
    elif len(tasks) == 3:
        figure = _matrix(tasks, grid, front_points, bests)
        figure.suptitle(title, fontsize=11)
    else:
        figure = report.new_figure(max(7.0, 1.6 * len(tasks)), 5.5)
        axes = figure.add_subplot(1, 1, 1)
        if tasks:
            _parallel(axes, tasks, grid, front_points, bests)
        else:
            axes.text(0.5, 0.5, "no normalized validation error to plot", ha="center", va="center",
                      transform=axes.transAxes)
        axes.set_title(title, fontsize=10)
    report.save_figure(figure, path)


def _style(k: int) -> dict:
    return {"marker": MARKERS[k % len(MARKERS)], "color": f"C{k % 10}"}


def _scale(axes, axis: str, values: list[float]) -> None:
    """Logarithmic past two decades; symlog, linear below the smallest positive value, when an
    error is 0 (a perfectly classified task), so that point stays on the plot."""
    if report.log_x(values):
        setter = getattr(axes, f"set_{axis}scale")
        if min(values) <= 0:
            setter("symlog", linthresh=min(v for v in values if v > 0))
        else:
            setter("log")


def _panel(axes, i: int, j: int, grid, front_points, bests, *, staircase: bool) -> None:
    """Tasks ``i`` (x) against ``j`` (y): grid points, the front, the best trials annotated."""
    if grid:
        axes.scatter([p[i] for p in grid], [p[j] for p in grid], s=14, color="0.6", alpha=0.6,
                     label="static grid trial")
        ordered = sorted(front_points, key=lambda p: (p[i], p[j]))
        if staircase:
            axes.step([p[i] for p in ordered], [p[j] for p in ordered], where="post", color="black",
                      linewidth=1.2, label="grid front")
        axes.scatter([p[i] for p in ordered], [p[j] for p in ordered], s=40, facecolors="none",
                     edgecolors="black", linewidths=1.2, label=None if staircase else "grid front")
    for k, (name, point) in enumerate(bests):
        axes.scatter([point[i]], [point[j]], s=120, edgecolors="black", linewidths=0.6, zorder=3,
                     label=name, **_style(k))
        # staggered, so that coinciding bests stay readable; kept out of tight_layout's sums
        axes.annotate(name, (point[i], point[j]), xytext=(6, 6 - 10 * (k % 4)), textcoords="offset points",
                      fontsize=8).set_in_layout(False)
    _scale(axes, "x", [p[i] for p in grid] + [p[i] for _, p in bests])
    _scale(axes, "y", [p[j] for p in grid] + [p[j] for _, p in bests])
    axes.margins(0.08)
    axes.grid(True, alpha=0.3)


def _matrix(tasks, grid, front_points, bests):
    figure = report.new_figure(10.0, 10.0)
    grid_axes = figure.subplots(3, 3)
    for row in range(3):
        for col in range(3):
            axes = grid_axes[row][col]
            if row == col:
                axes.set_axis_off()
                axes.text(0.5, 0.75 if row == 2 else 0.5, tasks[row], ha="center", va="center",
                          fontsize=14, transform=axes.transAxes)
                continue
            _panel(axes, col, row, grid, front_points, bests, staircase=False)
            axes.set_xlabel(tasks[col], fontsize=9)
            axes.set_ylabel(tasks[row], fontsize=9)
            axes.tick_params(labelsize=7)
    handles, labels = grid_axes[0][1].get_legend_handles_labels()
    if handles:
        grid_axes[2][2].legend(handles, labels, loc="lower center", fontsize=8)
    figure.supxlabel(AXIS_LABEL, fontsize=10)
    figure.supylabel(AXIS_LABEL, fontsize=10)
    return figure


def _parallel(axes, tasks, grid, front_points, bests) -> None:
    xs = list(range(len(tasks)))
    for k, point in enumerate(grid):
        axes.plot(xs, point, color="0.6", alpha=0.35, linewidth=0.8, marker="o", markersize=2,
                  label="static grid trial" if k == 0 else None)
    for k, point in enumerate(front_points):
        axes.plot(xs, point, color="black", alpha=0.7, linewidth=1.2, marker="o", markersize=4,
                  label="grid front" if k == 0 else None)
    for k, (name, point) in enumerate(bests):
        axes.plot(xs, point, linewidth=2.8, markersize=10, markeredgecolor="black", zorder=3,
                  label=name, **_style(k))
    axes.set_xticks(xs, tasks)
    axes.set_xlim(-0.3, len(tasks) - 0.7)
    axes.set_xlabel("task")
    axes.set_ylabel(AXIS_LABEL)
    _scale(axes, "y", [v for p in grid for v in p] + [v for _, p in bests for v in p])
    axes.grid(True, axis="y", alpha=0.3)
    if grid or bests:
        axes.legend(loc="best", fontsize=8)
