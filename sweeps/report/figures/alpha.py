"""The alpha sweep's own view: every GradNorm configuration's alpha against its best validation
score, and what the sweep's cost would be for more tasks against the alpha search's.

- ``alpha_vs_score.png`` (:func:`alpha_vs_score_figure`): one point per configuration of every
  alpha search (its mean over seeds, the seeds' std as an error bar), its marker the L(0) rule and
  its color the weights' learning rate where those were searched, and the grid's best as a
  dashed line with its noise band.
- ``grid_cost_by_tasks.png`` (:func:`grid_cost_figure`): the grid's cost for 2 to max(T, 10)
  tasks at the sweep's levels per task and mean cost of a point (log axis), each alpha search's
  measured cost flat beside it, the sweep's own T marked: the paper's argument, from the user's
  own trials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..costs import UNIT_WORDS, full_grid_cost, grid_points_by_tasks, points_ran, projected, task_count
from ..selection import config_results, grid_search
from ..summaries import ALPHA_KIND, SearchSummary
from .base import UNIT_AXES, legend_beside, new_figure, note, set_title, style, unique_handles
from .curves import grid_best_line

#: the marker of each L(0) rule (GradNorm's ``initial_losses``; ``first_step`` when not set)
RULE_MARKERS = {"first_step": "o", "chance": "s"}
OTHER_RULE = "^"
MAX_TASKS = 10  # the grid's cost is drawn up to this many tasks at least


def option(config: Mapping[str, Any], key: str) -> Any:
    """A balancer option of a trial's config (``balancer.<key>``; a flat config's ``<key>``)."""
    balancer = config.get("balancer")
    return balancer.get(key) if isinstance(balancer, Mapping) else config.get(key)


def alpha_points(searches: Sequence[SearchSummary]) -> list[dict[str, Any]]:
    """One dict per configuration with a result of every alpha search (kind ``gradnorm``) whose
    trials have an alpha: ``search``, ``alpha``, ``mean``, ``std`` (None with one seed), ``rule``
    (the L(0) rule) and ``weight_lr`` (the weights' learning rate, None if not set)."""
    points = []
    for search in searches:
        if search.kind != ALPHA_KIND:
            continue
        for result in config_results(search):
            config = result.best_trial.config
            alpha = option(config, "alpha")
            if alpha is None:
                continue
            points.append({"search": search.name, "alpha": float(alpha), "mean": result.mean, "std": result.std,
                           "rule": option(config, "initial_losses") or "first_step", "weight_lr": option(config, "lr")})
    return points


def alpha_vs_score_figure(searches: Sequence[SearchSummary]):
    """See the module's docstring: one panel per alpha search (the y axis shared). The color is
    the weights' learning rate (log scale, with a colorbar) when it differs between the points,
    else each search's own; the legend shows the L(0) rules' markers in gray."""
    points = alpha_points(searches)
    names = list(dict.fromkeys(p["search"] for p in points)) or [None]
    figure = new_figure(max(8.0, 3.6 * len(names) + 3.5), 5.0)
    panels = figure.subplots(1, len(names), sharey=True, squeeze=False)[0]
    rates = [p["weight_lr"] for p in points if p["weight_lr"] is not None]
    norm = None
    if len(set(rates)) > 1 and len(rates) == len(points):
        from matplotlib.colors import LogNorm

        norm = LogNorm(min(rates), max(rates))
    scatter = None
    for k, (axes, name) in enumerate(zip(panels, names)):
        chosen = [p for p in points if p["search"] == name]
        if not chosen:
            note(axes, "no GradNorm configuration with a result")
        errors = [p["std"] or 0.0 for p in chosen]
        if any(errors):
            axes.errorbar([p["alpha"] for p in chosen], [p["mean"] for p in chosen], yerr=errors, fmt="none",
                          ecolor="0.4", elinewidth=0.8, capsize=2, zorder=2)
        for rule in dict.fromkeys(p["rule"] for p in chosen):
            mine = [p for p in chosen if p["rule"] == rule]
            colors = ({"c": [p["weight_lr"] for p in mine], "cmap": "viridis", "norm": norm} if norm is not None
                      else {"color": style(k)["color"]})
            scatter = axes.scatter([p["alpha"] for p in mine], [p["mean"] for p in mine], s=45, zorder=3,
                                   marker=RULE_MARKERS.get(rule, OTHER_RULE), edgecolors="black", linewidths=0.5,
                                   **colors)
            axes.scatter([], [], s=45, marker=RULE_MARKERS.get(rule, OTHER_RULE), color="0.7", edgecolors="black",
                         linewidths=0.5, label=f"L(0) {rule}")  # the legend's entry, in gray
        if chosen:
            grid_best_line(axes, searches)
        axes.set_title(name or "", fontsize=10)
        axes.set_xlabel("alpha")
        axes.grid(True, alpha=0.3)
    panels[0].set_ylabel("best val score (lower is better)")
    if norm is not None and scatter is not None:
        figure.colorbar(scatter, ax=list(panels), label="weights' learning rate", pad=0.01)
    legend_beside(figure, *unique_handles(*panels))
    seeds = any(p["std"] for p in points)
    set_title(figure, "GradNorm's alpha against each configuration's best validation score"
                      + (" (mean ± std over seeds)" if seeds else ""))
    return figure


def grid_cost_figure(searches: Sequence[SearchSummary], unit: str = "compute"):
    """See the module's docstring: the grid's cost for 2 .. max(T, 10) tasks
    (:func:`.costs.grid_points_by_tasks` times its mean cost of a point in ``unit``), each alpha
    search's cost as a flat line, this sweep's T marked (projected where the grid was sampled)."""
    figure = new_figure(9.0, 5.0)
    axes = figure.add_subplot(1, 1, 1)
    searches = list(searches)
    grid = grid_search(searches)
    cost = grid.cost(unit) if grid is not None else None
    counts = grid_points_by_tasks(grid, MAX_TASKS) if grid is not None and cost else []
    if not counts:
        note(axes, "no static grid with a result and a size" if grid is None or not cost else "the grid's size is unknown")
    else:
        per_point = cost / points_ran(grid)
        tasks = [count for count, _ in counts]
        axes.plot(tasks, [points * per_point for _, points in counts], color="black", marker="o", markersize=4,
                  label=f"the grid ({grid.name}) at its levels per task")
        own = task_count(grid)
        full = full_grid_cost(grid, unit)
        axes.scatter([own], [full], s=140, facecolors="none", edgecolors="C3", linewidths=2, zorder=4,
                     label=f"this sweep: {own} tasks, {grid.grid_size:,} points"
                           + (" (projected)" if projected(grid) else ""))
        for k, search in enumerate(s for s in searches if s.kind == ALPHA_KIND and s.cost(unit)):
            axes.axhline(search.cost(unit), linestyle="--", linewidth=1.4, label=f"{search.name}, as measured",
                         color=style(k + 1)["color"])
        axes.set_yscale("log")
        axes.set_xticks(tasks)
    axes.set_xlabel("tasks")
    axes.set_ylabel(UNIT_AXES[unit])
    axes.grid(True, which="both", alpha=0.3)
    legend_beside(figure, *unique_handles(axes))
    set_title(figure, f"The static grid's {UNIT_WORDS[unit]} grows as (levels per task)^tasks: this sweep's mean "
                      "cost of a grid point, against the alpha search's")
    return figure
