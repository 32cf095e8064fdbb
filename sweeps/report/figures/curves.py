"""Curves over time: each search's best validation score against the compute it spent, and one
trial's task weights over its epochs."""

from __future__ import annotations

from collections.abc import Sequence

from ..selection import best_config, best_so_far, config_label, grid_search, source_compute
from ..summaries import WEIGHT, SearchSummary, TrialSummary, history_keys
from .base import UNIT_AXES, legend_beside, new_figure, note, set_scale, set_title, style, unique_handles

GRID_BEST = "grid's best"  # the legend's label of the grid's best line (and the gid of its artists)


def grid_best_line(axes, searches: Sequence[SearchSummary]) -> float | None:
    """The grid's best configuration's mean validation score as a horizontal dashed line, with its
    seeds' noise (mean ± std) as a band where it ran several; its mean, or ``None`` without a grid
    with a result (nothing drawn)."""
    grid = grid_search(list(searches))
    best = best_config(grid) if grid is not None else None
    if best is None:
        return None
    label = f"{GRID_BEST} ({grid.name}, {best.mean:.4g}" + (f" ± {best.std:.2g})" if best.std else ")")
    axes.axhline(best.mean, color="black", linestyle="--", linewidth=1.2, label=label, gid=GRID_BEST, zorder=1)
    if best.std:
        axes.axhspan(best.mean - best.std, best.mean + best.std, color="0.5", alpha=0.15, gid=GRID_BEST, zorder=0)
    return best.mean


def best_so_far_figure(searches: Sequence[SearchSummary], unit: str = "compute"):
    """One step line per search of :func:`.selection.best_so_far` (the best configuration's
    mean validation score so far against its cumulative cost in ``unit``), and the grid's best
    (:func:`grid_best_line`). A derived search (the recommended static) starts after its source's
    cost, which it cannot be had without, and says so in the legend. The x axis is logarithmic when
    the positive x values span more than two decades. Searches without a trial with a result, and
    the single-task reference (its trials train one task each), are left out of the plot. The y
    axis stops at 1.5 times the worst search's final value (early values above it, e.g. of trials
    that early stopping cut at their first rung, leave the plot) when some values lie above it."""
    figure = new_figure(10.0, 5.0)
    axes = figure.add_subplot(1, 1, 1)
    xs: list[float] = []
    ys: list[float] = []
    finals: list[float] = []
    searches = list(searches)
    for k, search in enumerate(searches):
        points = best_so_far(search, unit) if not search.reference else []
        if not points:
            continue
        offset = source_compute(search, searches, unit) or 0.0
        x, y = zip(*((compute + offset, score) for compute, score in points))
        xs.extend(x)
        ys.extend(y)
        finals.append(y[-1])
        label = search.name if not search.source else f"{search.name} (after {search.source}'s cost)"
        axes.step(x, y, where="post", markersize=4, label=label, **style(k))
    if xs:
        line = grid_best_line(axes, searches)
        if line is not None:
            finals.append(line)
    set_scale(axes, "x", xs)
    top = 1.5 * max(finals) if finals and max(finals) > 0 else None
    if top is not None and max(ys) > top:
        axes.set_ylim(top=top)
    if not xs:
        note(axes, "no trial with a result")
    axes.set_xlabel(f"cumulative {UNIT_AXES[unit]}")
    axes.set_ylabel("best val score so far (lower is better)")
    axes.grid(True, alpha=0.3)
    legend_beside(figure, *unique_handles(axes))
    set_title(figure, "Best validation score vs compute spent")
    return figure


def weights_figure(trial: TrialSummary):
    """The end-of-epoch ``"weight/<task>"`` values of one trial: one line per task (tasks in the
    order of the first history record), x = ``"epoch"``, on a logarithmic axis (weights of a few
    tasks can be hundreds of times those of others; symlog where a weight reached 0), with the
    trial's search, id and configuration in the title. Raises ValueError (one line) when the
    trial has no weight history."""
    keys = history_keys(trial, WEIGHT)
    figure = new_figure(8.0, 4.8)
    axes = figure.add_subplot(1, 1, 1)
    values: list[float] = []
    for key in keys:
        records = [r for r in trial.history if key in r]
        values.extend(r[key] for r in records)
        axes.plot([r["epoch"] for r in records], [r[key] for r in records],
                  marker="o", markersize=3, label=key.removeprefix(WEIGHT))
    set_scale(axes, "y", values, log=True)
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel("task weight (end of epoch)")
    axes.grid(True, which="both", alpha=0.3)
    legend_beside(figure, *unique_handles(axes))
    set_title(figure, f"Task weights of {trial.search} trial {trial.trial_id} "
                      f"({config_label(trial.config) or 'no label'})")
    return figure
