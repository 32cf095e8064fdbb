"""The Pareto view: per-task normalized validation errors of every static-grid trial, the grid's
front (the points non-dominated in ALL the tasks, :func:`.fronts.pareto_front`), and every other
search's best trial, for 1 to 8 tasks and more.

- 2 tasks: one scatter, the front joined as a staircase.
- 3 or 4 tasks: one triangle of pairwise panels (task i against task j, i < j), axes shared
  along each row and column. A projection of a front in 3 or 4 tasks is no staircase: its points
  are ringed, and a ringed point can look dominated in one panel while it is not in all tasks.
- 1 task, or 5 and more: parallel coordinates (one faint polyline per grid trial, front
  polylines in black, best trials bold).

A search that maps a front itself (``static_pareto``; :attr:`SearchSummary.maps_front`) has its
non-dominated configurations (:func:`.hypervolume.search_front`) drawn as one more layer beside
the grid's: small markers in its color, joined by a dashed staircase with two tasks.

Searches are told apart by marker and color, named in one legend beside the panels. In the
scatter and the panels the axes span the grid's points: a search's best trial beyond them is
drawn on the edge with an arrow pointing out, its value in the legend, and one that would hide
another is drawn as a ring around it. An axis is logarithmic when its values span more than two decades (symlog when
one of them is 0).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..fronts import GRID_KIND, ParetoView, Point, pareto_view
from ..hypervolume import search_front
from ..summaries import SearchSummary
from .base import LEGEND_FONT, legend_beside, new_figure, note, set_scale, set_title, style, unique_handles

AXIS_LABEL = "normalized val error (lower is better)"
MAX_PANEL_TASKS = 4  # pairwise panels up to this many tasks, parallel coordinates beyond
FRONT = "grid front"  # the legend's label, and the gid of the artists that mark the front
GRID = "static grid trial"
OFF_SCALE = "off scale"  # the gid of the arrows that point out from a best trial beyond the grid's span


def pareto_figure(summaries: Sequence[SearchSummary]):
    """The Pareto view of a comparison (see the module's docstring). Without a grid the other
    searches' points are still drawn and the title says so."""
    view = pareto_view(summaries)
    others = {s.name for s in summaries if s.kind != GRID_KIND}
    bests = [(name, point) for name, point in view.bests if name in others and point is not None]
    mapped = {s.name: search_front(s, view.tasks) for s in summaries if s.maps_front}
    count = len(view.tasks)
    if 3 <= count <= MAX_PANEL_TASKS:
        figure = _triangle(view, bests, mapped)  # its legend fills the empty upper triangle
    else:
        figure, axes = _scatter(view, bests, mapped) if count == 2 else _parallel(view, bests, mapped)
        legend_beside(figure, *unique_handles(axes))
    set_title(figure, _title(view))
    return figure


def _title(view: ParetoView) -> str:
    title = "Normalized val error per task: the static grid's front and each search's best trial"
    if not view.has_grid:
        return title + " (no static grid)"
    if not view.grid:
        return title + " (no static grid trial with a result)"
    tasks = "both tasks" if len(view.tasks) == 2 else f"all {len(view.tasks)} tasks"
    return f"{title}; {len(view.front)} of {len(view.grid)} grid trials on the front (non-dominated in {tasks})"


def _task_values(view: ParetoView, bests, task: int, mapped=None) -> list[float]:
    """What an axis spans: the grid's points and the mapped fronts' (a best trial beyond them is
    drawn on the edge), or without either the best trials'."""
    static = [p[task] for p in view.grid] + [p[task] for front in (mapped or {}).values() for p in front]
    return static or [p[task] for _, p in bests]


def _mapped_layer(axes, i: int, j: int, view: ParetoView, bests, mapped: dict[str, list[Point]]) -> None:
    """The fronts the searches that map one found (task ``i`` against ``j``), each in its search's
    style: small markers, a dashed staircase with two tasks."""
    order = [name for name, _ in bests]
    for name, front in mapped.items():
        if not front:
            continue
        look = style(order.index(name) if name in order else len(order))
        ordered = sorted(front, key=lambda p: (p[i], p[j]))
        axes.scatter([p[i] for p in ordered], [p[j] for p in ordered], s=36, marker=look.get("marker", "o"),
                     color=look.get("color"), alpha=0.8, zorder=2, label=f"{name} front", gid=f"{name} front")
        if len(view.tasks) == 2:
            axes.step([p[i] for p in ordered], [p[j] for p in ordered], where="post", color=look.get("color"),
                      linestyle="--", linewidth=1.0)


def _panel(axes, i: int, j: int, view: ParetoView, bests=(), mapped=None) -> None:
    """Task ``i`` (x) against task ``j`` (y): the grid's points, the front ringed (a staircase with
    two tasks), the fronts of the searches that map one."""
    grid, front = view.grid, view.front_points
    if grid:
        axes.scatter([p[i] for p in grid], [p[j] for p in grid], s=14, color="0.6", alpha=0.6, label=GRID)
        ordered = sorted(front, key=lambda p: (p[i], p[j]))
        axes.scatter([p[i] for p in ordered], [p[j] for p in ordered], s=40, facecolors="none",
                     edgecolors="black", linewidths=1.2, label=FRONT, gid=FRONT)
        if len(view.tasks) == 2:
            axes.step([p[i] for p in ordered], [p[j] for p in ordered], where="post", color="black",
                      linewidth=1.2)
    _mapped_layer(axes, i, j, view, bests, mapped or {})
    axes.margins(0.08)
    axes.grid(True, alpha=0.3)


def _freeze(axes) -> None:
    """Fix the axes' limits where they are now (the grid's points and their margins)."""
    axes.autoscale_view()
    axes.set_xlim(axes.get_xlim())
    axes.set_ylim(axes.get_ylim())
    axes.set_autoscale_on(False)


def _bests(axes, i: int, j: int, view: ParetoView, bests: list[tuple[str, Point]]) -> dict[str, dict[str, float]]:
    """Each search's best trial, task ``i`` against task ``j``, on axes whose limits span the grid's
    points: a point beyond them is drawn on the edge with an arrow pointing out (gid
    :data:`OFF_SCALE`), and returned as ``{search: {task: value}}`` for the legend to give its value;
    a point within 12 px of one drawn before it is drawn as a larger ring, so that both show."""
    drawn: list[tuple[float, float]] = []
    beyond: dict[str, dict[str, float]] = {}
    (x0, x1), (y0, y1) = sorted(axes.get_xlim()), sorted(axes.get_ylim())
    for k, (name, point) in enumerate(bests):
        x, y = min(max(point[i], x0), x1), min(max(point[j], y0), y1)
        at = axes.transData.transform((x, y))
        ring = any(abs(at[0] - a) < 12 and abs(at[1] - b) < 12 for a, b in drawn)
        look = style(k)
        options = ({"facecolors": "none", "edgecolors": look["color"], "linewidths": 2.0, "s": 220} if ring else
                   {"color": look["color"], "edgecolors": "black", "linewidths": 0.6, "s": 110})
        axes.scatter([x], [y], marker=look["marker"], zorder=3, clip_on=False, **options)
        drawn.append(tuple(at))
        away = (0 if x == point[i] else (-1 if x == x0 else 1), 0 if y == point[j] else (-1 if y == y0 else 1))
        if away != (0, 0):
            axes.annotate("", xy=(x, y), xytext=(-18 * away[0], -18 * away[1]), textcoords="offset points",
                          gid=OFF_SCALE, zorder=4, annotation_clip=False,
                          arrowprops={"arrowstyle": "->", "color": look["color"], "linewidth": 1.6})
            for task, moved in ((i, away[0]), (j, away[1])):
                if moved:
                    beyond.setdefault(name, {})[view.tasks[task]] = point[task]
    return beyond


def _legend_entries(axes, bests: list[tuple[str, Point]], beyond: dict[str, dict[str, float]]) -> None:
    """One legend entry per search: its marker as drawn where nothing hides it, and the values of
    its best trial that lie beyond the axes."""
    for k, (name, _) in enumerate(bests):
        look = style(k)
        values = ", ".join(f"{task} {value:.3g}" for task, value in beyond.get(name, {}).items())
        axes.scatter([], [], marker=look["marker"], color=look["color"], edgecolors="black", linewidths=0.6, s=110,
                     label=f"{name} (beyond the axes: {values})" if values else name)


def _scatter(view: ParetoView, bests, mapped):
    figure = new_figure(8.5, 6.0)
    axes = figure.add_subplot(1, 1, 1)
    _panel(axes, 0, 1, view, bests, mapped)
    set_scale(axes, "x", _task_values(view, bests, 0, mapped))
    set_scale(axes, "y", _task_values(view, bests, 1, mapped))
    if view.grid or any(mapped.values()):
        _freeze(axes)
    _legend_entries(axes, bests, _bests(axes, 0, 1, view, bests))
    axes.set_xlabel(f"{view.tasks[0]}: {AXIS_LABEL}")
    axes.set_ylabel(f"{view.tasks[1]}: {AXIS_LABEL}")
    return figure, axes


def _triangle(view: ParetoView, bests, mapped):
    """Panel (row r, column c) for c <= r holds task c (x) against task r + 1 (y)."""
    n = len(view.tasks) - 1
    figure = new_figure(3.0 * n + 2.5, 3.0 * n + 0.8)
    layout = figure.add_gridspec(n, n)
    panels, columns, rows = [], {}, {}
    for r in range(n):
        for c in range(r + 1):
            axes = figure.add_subplot(layout[r, c], sharex=columns.get(c), sharey=rows.get(r))
            _panel(axes, c, r + 1, view, bests, mapped)
            if c not in columns:
                columns[c] = axes
                set_scale(axes, "x", _task_values(view, bests, c, mapped))
            if r not in rows:
                rows[r] = axes
                set_scale(axes, "y", _task_values(view, bests, r + 1, mapped))
            axes.set_xlabel(view.tasks[c])
            axes.set_ylabel(view.tasks[r + 1])
            axes.tick_params(labelsize=8)
            axes.label_outer()  # tick and axis labels on the bottom row and the left column only
            panels.append((axes, c, r + 1))
    beyond: dict[str, dict[str, float]] = {}
    for axes, c, r in panels:
        if view.grid or any(mapped.values()):
            _freeze(axes)
        for name, values in _bests(axes, c, r, view, bests).items():
            beyond.setdefault(name, {}).update(values)
    _legend_entries(panels[0][0], bests, beyond)
    figure.supxlabel(AXIS_LABEL, fontsize=10)
    figure.supylabel(AXIS_LABEL, fontsize=10)
    handles, labels = unique_handles(*(axes for axes, _, _ in panels))
    if handles:
        key = figure.add_subplot(layout[0, 1:])
        key.axis("off")
        key.legend(handles, labels, loc="upper right", fontsize=LEGEND_FONT, borderaxespad=0)
    return figure


def _parallel(view: ParetoView, bests, mapped):
    count = len(view.tasks)
    figure = new_figure(max(7.0, 1.1 * count + 3.5), 5.5)
    axes = figure.add_subplot(1, 1, 1)
    if not view.tasks:
        note(axes, "no normalized validation error to plot")
        return figure, axes
    xs = list(range(count))
    for k, point in enumerate(view.grid):
        axes.plot(xs, point, color="0.6", alpha=0.35, linewidth=0.8, marker="o", markersize=2,
                  label=GRID if k == 0 else None)
    for k, point in enumerate(view.front_points):
        axes.plot(xs, point, color="black", alpha=0.7, linewidth=1.2, marker="o", markersize=4,
                  label=FRONT if k == 0 else None, gid=FRONT)
    order = [name for name, _ in bests]
    for name, front in mapped.items():
        look = style(order.index(name) if name in order else len(order))
        for k, point in enumerate(front):
            axes.plot(xs, point, color=look.get("color"), alpha=0.6, linewidth=1.0, linestyle="--",
                      label=f"{name} front" if k == 0 else None, gid=f"{name} front")
    for k, (name, point) in enumerate(bests):
        axes.plot(xs, point, linewidth=2.8, markersize=10, markeredgecolor="black", zorder=3,
                  label=name, **style(k))
    axes.set_xticks(xs, view.tasks, rotation=30 if count > MAX_PANEL_TASKS else 0,
                    ha="right" if count > MAX_PANEL_TASKS else "center", rotation_mode="anchor")
    axes.set_xlim(-0.3, count - 0.7)
    axes.set_xlabel("task")
    axes.set_ylabel(AXIS_LABEL)
    set_scale(axes, "y", [v for p in view.grid for v in p] + [v for _, p in bests for v in p])
    axes.grid(True, axis="y", alpha=0.3)
    return figure, axes
