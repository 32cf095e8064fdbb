"""sweeps.report.figures: the plots a comparison writes, rendered for 2 to 8 tasks and checked
on the renderer's own text boxes (no text overlaps another, none leaves the figure), the Pareto
view's front marking against a brute-force non-dominance check in all the tasks, and the log
axes."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection

from report_fixtures import all_failed_search, epoch, grid_search, gradnorm_search
from report_fixtures import trial as make_trial
from sweeps.report import (
    SearchSummary,
    TrialSummary,
    alpha_vs_score_figure,
    best_so_far_figure,
    best_trial,
    comparison_figures,
    grid_cost_figure,
    pareto_figure,
    save_figure,
    weights_figure,
)
from sweeps.report.figures.base import spans_decades

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASK_NAMES = ("digit_class", "rotation_angle", "parity", "left_digit", "right_digit", "sum_of_digits",
              "background_colour", "stroke_width")
SEARCHES = ("static_grid_asha", "gradnorm", "gradnorm_searched", "equal", "equal_lr", "uncertainty", "dwa",
            "scale_invariant", "imtl_l", "famo", "recommended_static")
FRONT = "grid front"


# ----------------------------------------------------------------------------- data


def trial(search: str, trial_id: str, score: float, errors, tasks, *, weights=None, status="FINISHED") -> TrialSummary:
    """A trial with one validated epoch per row of ``weights`` (one epoch without), whose best
    epoch has ``errors`` as per-task normalized validation errors."""
    weights = [[1.0] * len(tasks)] if weights is None else weights
    history = []
    for i, row in enumerate(weights):
        record = {"epoch": i + 1, "score": score + (len(weights) - 1 - i), "test/score": score,
                  "compute_seconds": 5.0 * (i + 1)}
        record |= {f"val/{task}/normalized_error": float(e) for task, e in zip(tasks, errors)}
        record |= {f"weight/{task}": float(w) for task, w in zip(tasks, row)}
        record |= {f"mean_weight/{task}": float(w) for task, w in zip(tasks, row)}
        history.append(record)
    return TrialSummary(search=search, trial_id=trial_id, config={"label": f"alpha={score:.3g}"}, status=status,
                        compute_seconds=5.0 * len(weights), device="cpu", end_time=float(len(trial_id)),
                        history=history)


def sweep(tasks: int, seed: int = 0, grid: bool = True) -> list[SearchSummary]:
    """A comparison the size of the benchmark's: a 27-point grid, eleven other searches of three
    trials, long task and trial names, errors over three decades (one of them 0), GradNorm
    weights from 0.002 to 3."""
    rng = np.random.default_rng(seed)
    names = TASK_NAMES[:tasks]
    out = []
    if grid:
        points = 10.0 ** rng.uniform(-3, 0, size=(27, tasks))
        points[0, 0] = 0.0  # a perfectly classified task
        out.append(SearchSummary("static_grid", "static_grid", 1.0, [
            trial("static_grid", f"static_grid_5e1c9_{i:05d}", float(rng.random()), points[i], names)
            for i in range(27)], grid_size=27))
    for name in SEARCHES:
        trials = [trial(name, f"{name}_7f3a9_{i:05d}", float(rng.random()), 10.0 ** rng.uniform(-3, 0, size=tasks),
                        names, weights=10.0 ** rng.uniform(-2.7, 0.5, size=(6, tasks)))
                  for i in range(3)]
        out.append(SearchSummary(name, "gradnorm" if name.startswith("gradnorm") else "equal", 1.0, trials,
                                 recommends_static=name.startswith("gradnorm")))
    return out


# ----------------------------------------------------------------------------- rendered text


def title(figure) -> str:
    return " ".join(figure.get_suptitle().split())


def drawn_texts(figure) -> list:
    """``[(text, window extent)]`` of every non-empty text the renderer actually draws (tick
    labels outside the view and hidden labels are never drawn), recorded at ``draw_text``."""
    renderer = figure.canvas.get_renderer()
    drawn: list = []
    draw_text = renderer.draw_text

    def record(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if mtext is not None and all(mtext is not seen for seen in drawn):
            drawn.append(mtext)
        return draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    renderer.draw_text = record
    try:
        figure.draw(renderer)
    finally:
        del renderer.draw_text
    return [(text.get_text(), text.get_window_extent(renderer)) for text in drawn if text.get_text().strip()]


def assert_readable(figure) -> None:
    """No drawn text overlaps another (by more than half a pixel each way) and every one lies
    within the figure."""
    texts = drawn_texts(figure)
    assert texts, "nothing was drawn"
    width, height = figure.bbox.width, figure.bbox.height
    outside = [(s, box.bounds) for s, box in texts
               if box.x0 < -0.5 or box.y0 < -0.5 or box.x1 > width + 0.5 or box.y1 > height + 0.5]
    assert not outside, f"text leaves the {width:.0f}x{height:.0f} figure: {outside}"
    overlaps = [(s, t) for i, (s, a) in enumerate(texts) for t, b in texts[i + 1:]
                if min(a.x1, b.x1) - max(a.x0, b.x0) > 0.5 and min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5]
    assert not overlaps, f"texts overlap: {overlaps}"


def test_the_readability_check_fails_on_overlapping_and_cut_off_text():
    from sweeps.report.figures.base import new_figure

    figure = new_figure()
    figure.text(0.5, 0.5, "one label")
    figure.text(0.52, 0.5, "another label")
    with pytest.raises(AssertionError, match="overlap"):
        assert_readable(figure)
    figure = new_figure()
    figure.text(0.9, 0.5, "a label that runs past the right edge")
    with pytest.raises(AssertionError, match="leaves"):
        assert_readable(figure)


@pytest.mark.parametrize("tasks", [2, 3, 5])
def test_every_plot_reads_with_2_3_and_5_tasks(tasks):
    figures = comparison_figures(sweep(tasks))
    assert list(figures) == ["best_so_far.png", "pareto.png", "alpha_vs_score.png", "grid_cost_by_tasks.png",
                             "weights_gradnorm.png", "weights_gradnorm_searched.png"]
    for name, figure in figures.items():
        assert_readable(figure)


@pytest.mark.parametrize("tasks", [1, 4, 8])
def test_the_pareto_view_reads_with_1_4_and_8_tasks(tasks):
    assert_readable(pareto_figure(sweep(tasks)))


@pytest.mark.parametrize("tasks, panels", [(2, 1), (3, 3), (4, 6), (5, 1), (8, 1)])
def test_one_triangle_of_pairwise_panels_up_to_4_tasks_and_parallel_coordinates_beyond(tasks, panels):
    figure = pareto_figure(sweep(tasks))
    drawn = [axes for axes in figure.axes if axes.axison]
    assert len(drawn) == panels
    for axes in drawn if 3 <= tasks <= 4 else []:
        spec = axes.get_subplotspec()
        assert spec.colspan.start <= spec.rowspan.start  # lower triangle only: no mirrored panel
    if tasks > 4:
        assert [t.get_text() for t in drawn[0].get_xticklabels()] == list(TASK_NAMES[:tasks])


# ----------------------------------------------------------------------------- the front


def brute_force_front(points: list[tuple[float, ...]]) -> set[tuple[float, ...]]:
    """Points no other point dominates in ALL coordinates, by comparing every pair."""
    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return {p for p in points if not any(dominates(q, p) for q in points)}


def grid_points(summaries: list[SearchSummary], tasks: int) -> list[tuple[float, ...]]:
    names = TASK_NAMES[:tasks]
    return [tuple(t.best_epoch[f"val/{n}/normalized_error"] for n in names)
            for s in summaries if s.kind == "static_grid" for t in s.trials]


def marked_front(figure, tasks: int) -> dict[tuple[int, int] | None, set[tuple[float, ...]]]:
    """The points the figure marks as the grid's front: per panel ``(x task, y task)`` its
    ringed points; for parallel coordinates (key ``None``) each front polyline's values."""
    marked: dict = {}
    for axes in figure.axes:
        for line in axes.lines:
            if line.get_gid() == FRONT:
                marked.setdefault(None, set()).add(tuple(float(v) for v in line.get_ydata()))
        for collection in axes.collections:
            if collection.get_gid() == FRONT:
                spec = axes.get_subplotspec()
                key = (0, 1) if tasks == 2 else (spec.colspan.start, spec.rowspan.start + 1)
                marked[key] = {tuple(float(v) for v in xy) for xy in collection.get_offsets()}
    return marked


@pytest.mark.parametrize("tasks", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", range(2))
def test_the_front_is_the_points_non_dominated_in_all_tasks(tasks, seed):
    summaries = sweep(tasks, seed)
    points = grid_points(summaries, tasks)
    front = brute_force_front(points)
    assert 0 < len(front) < len(points)
    marked = marked_front(pareto_figure(summaries), tasks)
    if tasks == 2 or tasks > 4:
        assert marked == {(0, 1) if tasks == 2 else None: front}
    else:
        assert set(marked) == {(i, j) for j in range(tasks) for i in range(j)}
        for (i, j), shown in marked.items():
            assert shown == {(p[i], p[j]) for p in front}


def test_a_point_dominated_in_a_projection_but_not_in_all_tasks_is_on_the_front():
    names = TASK_NAMES[:3]
    points = {"a": (0.1, 0.5, 0.9), "b": (0.5, 0.1, 0.9), "c": (0.3, 0.3, 0.1),
              "d": (0.6, 0.6, 0.95),  # dominated by a in all three tasks
              "e": (0.2, 0.6, 0.5)}  # dominated by a in tasks 0 and 1, not in task 2
    grid = SearchSummary("static_grid", "static_grid", 1.0,
                         [trial("static_grid", k, 0.5, p, names) for k, p in points.items()])
    assert brute_force_front(list(points.values())) == {points[k] for k in "abce"}
    marked = marked_front(pareto_figure([grid]), 3)
    assert (0.2, 0.6) in marked[(0, 1)] and (0.6, 0.6) not in marked[(0, 1)]
    assert "4 of 5 grid trials on the front" in title(pareto_figure([grid]))


# ----------------------------------------------------------------------------- the other plots


def test_the_weights_plot_has_a_log_axis_and_a_title_that_fits():
    gradnorm = sweep(3)[2]
    figure = weights_figure(best_trial(gradnorm))
    (axes,) = figure.axes
    assert axes.get_yscale() == "log"
    low = min(line.get_ydata().min() for line in axes.lines)
    assert 0 < low < 0.05 and axes.get_ylim()[0] <= low  # the small weights are on the plot
    assert_readable(figure)
    # a weight that reached 0 stays on the plot (symlog)
    zero = trial("gradnorm", "gradnorm_0", 0.1, (0.1, 0.1), TASK_NAMES[:2], weights=[[0.0, 2.0], [0.01, 1.99]])
    assert weights_figure(zero).axes[0].get_yscale() == "symlog"


def test_the_weights_plot_without_weights_is_one_line_error():
    with pytest.raises(ValueError) as info:
        weights_figure(make_trial("s", "t_none", {}, history=[{"epoch": 0, "score": 1.0}]))
    assert "\n" not in str(info.value)


def test_best_so_far_log_axis_and_nothing_to_plot():
    # compute spans 1 s .. 10,000 s: more than two decades
    trials = [make_trial("w", f"t{i}", {"alpha": 1.0}, compute=c, end=float(i), history=[epoch(0, 1.0 / (i + 1), 1.0)])
              for i, c in enumerate([1.0, 99.0, 9900.0])]
    assert best_so_far_figure([SearchSummary("wide", "gradnorm", 1.0, trials)]).axes[0].get_xscale() == "log"
    assert spans_decades([1.0, 100.0, 10_000.0]) and spans_decades([0.0, 1.0, 101.0])
    assert not spans_decades([1.0, 100.0]) and not spans_decades([0.0]) and not spans_decades([])
    empty = best_so_far_figure([all_failed_search()])
    assert "no trial with a result" in [t.get_text() for t in empty.axes[0].texts]
    assert_readable(empty)


def test_comparison_figures_name_the_weights_of_the_searches_that_recommend_them():
    figures = comparison_figures([gradnorm_search(), grid_search(), all_failed_search()])
    assert list(figures) == ["best_so_far.png", "pareto.png", "alpha_vs_score.png", "grid_cost_by_tasks.png",
                             "weights_gradnorm.png"]
    # no alpha search: no alpha plot; no grid with a size: no grid cost plot
    assert list(comparison_figures([all_failed_search()])) == ["best_so_far.png", "pareto.png"]


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert float(np.std(image[..., :3])) > 0.01  # something was drawn, not a blank canvas


@pytest.mark.parametrize("tasks, grid", [(2, True), (3, False), (5, True)])
def test_pareto_png_is_drawn_with_and_without_a_grid(tmp_path, tasks, grid):
    path = tmp_path / "sub" / "pareto.png"
    figure = pareto_figure(sweep(tasks, grid=grid))
    save_figure(figure, path)
    assert_png(path)
    assert ("no static grid" in title(figure)) is not grid


def test_pareto_log_scale_one_task_and_nothing(tmp_path):
    names = ("left", "right")
    wide = [SearchSummary("grid", "static_grid", 1.0, [trial("grid", f"g{i}", 0.5, (10.0 ** -i, 10.0 ** (i - 4)), names)
                                                      for i in range(5)] + [trial("grid", "zero", 0.6, (0.0, 1.0), names)])]
    figure = pareto_figure(wide)
    assert (figure.axes[0].get_xscale(), figure.axes[0].get_yscale()) == ("symlog", "log")
    assert_readable(figure)
    one = [SearchSummary("grid", "static_grid", 1.0, [trial("grid", "g", 0.5, (0.3,), ("only",))]),
           SearchSummary("a", "gradnorm", 1.0, [trial("a", "a", 0.5, (0.2,), ("only",))])]
    for summaries, name in [(one, "one.png"), ([SearchSummary("a", "gradnorm", 1.0, [])], "none.png")]:
        figure = pareto_figure(summaries)
        assert_readable(figure)
        save_figure(figure, tmp_path / name)
        assert_png(tmp_path / name)


def test_diverged_trials_are_not_drawn():
    names = TASK_NAMES[:2]
    bad = trial("static_grid", "g1", 0.4, (0.1, 0.1), names)
    bad = dataclasses.replace(bad, history=[bad.history[0] | {"test/score": math.nan}])  # a non-finite score
    grid = SearchSummary("static_grid", "static_grid", 1.0, [trial("static_grid", "g0", 0.5, (0.5, 0.5), names), bad])
    assert bad.outcome == "diverged"
    assert marked_front(pareto_figure([grid]), 2) == {(0, 1): {(0.5, 0.5)}}


# ----------------------------------------------------------------------------- the alpha sweep's own view


def alpha_trial(search, trial_id, alpha, score, *, rule="first_step", rate=0.025, seed=0, cost=2.0):
    """A GradNorm trial (its configuration named by its ``trial_id``) with one epoch."""
    config = {"balancer": {"method": "gradnorm", "alpha": alpha, "lr": rate, "initial_losses": rule},
              "label": trial_id}
    record = {"epoch": 1, "score": score, "test/score": score, "compute_seconds": cost, "weight/a": 1.0,
              "weight/b": 1.0, "weight/c": 1.0, "mean_weight/a": 1.0, "mean_weight/b": 1.0, "mean_weight/c": 1.0}
    return TrialSummary(search=search, trial_id=f"{trial_id}-{seed}", config=config, status="FINISHED",
                        compute_seconds=cost, device="cpu", end_time=float(seed), history=[record],
                        cpu_seconds=cost / 2, samples=100.0)


def test_alpha_vs_score_draws_each_configurations_mean_and_spread_by_rule_beside_the_grids_best():
    gradnorm = SearchSummary("gn", "gradnorm", 1.0, [
        alpha_trial("gn", "x", 0.5, 0.30, seed=0), alpha_trial("gn", "x", 0.5, 0.34, seed=1),
        alpha_trial("gn", "y", 1.5, 0.20, rule="chance", seed=0), alpha_trial("gn", "y", 1.5, 0.22, rule="chance", seed=1)],
        recommends_static=True)
    grid = SearchSummary("grid", "static_grid", 1.0, [alpha_trial("grid", "g", 0.0, 0.25, seed=k) for k in range(2)],
                         grid_size=4)
    figure = alpha_vs_score_figure([gradnorm, grid])
    axes = figure.axes[0]
    points = sorted(tuple(map(float, xy)) for c in axes.collections if len(c.get_offsets()) for xy in c.get_offsets()
                    if not isinstance(c, LineCollection))
    assert points == [(0.5, pytest.approx(0.32)), (1.5, pytest.approx(0.21))]
    markers = {c.get_paths()[0].vertices.shape for c in axes.collections
               if len(c.get_offsets()) and not isinstance(c, LineCollection)}
    assert len(markers) == 2  # one marker per L(0) rule
    (errors,) = [c for c in axes.collections if isinstance(c, LineCollection)]
    spans = sorted(abs(segment[1][1] - segment[0][1]) / 2 for segment in errors.get_segments())
    assert spans == [pytest.approx(np.std([0.20, 0.22], ddof=1)), pytest.approx(np.std([0.30, 0.34], ddof=1))]
    (line,) = [line for line in axes.get_lines() if line.get_gid() == "grid's best"]
    assert line.get_ydata()[0] == pytest.approx(0.25)
    assert_readable(figure)
    empty = alpha_vs_score_figure([grid])
    assert "no GradNorm configuration with a result" in [t.get_text() for t in empty.axes[0].texts]


def test_the_grids_cost_by_tasks_is_its_points_times_its_mean_cost_of_a_point():
    # 2 of 9 points ran (levels [1], [3 levels], [3 levels]: the first task fixed), 2 seeds each
    trials = [alpha_trial("grid", f"w{point}", 0.0, 0.3, seed=k, cost=3.0 + point) for point in range(2)
              for k in range(2)]
    grid = SearchSummary("grid", "static_grid", 1.0, trials, grid_size=9, levels=[1, 3, 3], sampled=True)
    gradnorm = SearchSummary("gn", "gradnorm", 1.0, [alpha_trial("gn", "x", 1.0, 0.2, cost=5.0)])
    figure = grid_cost_figure([grid, gradnorm], "cpu")
    axes = figure.axes[0]
    per_point = sum(t.cpu_seconds for t in trials) / 2  # a point's seeds together
    (curve,) = [line for line in axes.get_lines() if line.get_label().startswith("the grid")]
    assert list(curve.get_xdata()) == list(range(2, 11))
    assert list(curve.get_ydata()) == pytest.approx([3 ** (tasks - 1) * per_point for tasks in range(2, 11)])
    (mark,) = [c for c in axes.collections if "this sweep" in c.get_label()]
    assert tuple(mark.get_offsets()[0]) == (3, pytest.approx(9 * per_point)) and "(projected)" in mark.get_label()
    (flat,) = [line for line in axes.get_lines() if line.get_label() == "gn, as measured"]
    assert flat.get_ydata()[0] == pytest.approx(2.5)
    assert axes.get_yscale() == "log" and axes.get_ylabel() == "CPU time (s)"
    assert_readable(figure)


def test_the_pareto_axes_span_the_grid_and_an_off_scale_best_sits_on_the_edge_with_its_value():
    names = TASK_NAMES[:2]
    grid = SearchSummary("static_grid", "static_grid", 1.0, [trial("static_grid", f"g{i}", 0.5, p, names)
                                                            for i, p in enumerate([(0.1, 0.2), (0.2, 0.1), (0.15, 0.15)])])
    far = SearchSummary("far", "gradnorm", 1.0, [trial("far", "f", 0.1, (0.12, 40.0), names)])
    here = SearchSummary("here", "equal", 1.0, [trial("here", "h", 0.2, (0.15, 0.15), names)])  # on a grid point
    same = SearchSummary("same", "dwa", 1.0, [trial("same", "s", 0.3, (0.15, 0.15), names)])  # on "here"
    figure = pareto_figure([grid, far, here, same])
    axes = figure.axes[0]
    low, high = axes.get_ylim()
    assert low < 0.1 and 0.2 < high < 1.0  # the grid's span, not the far point's 40
    (arrow,) = [text for text in axes.texts if text.get_gid() == "off scale"]
    assert arrow.xy == (pytest.approx(0.12), pytest.approx(high))  # on the top edge, pointing out
    drawn = [c for c in axes.collections if len(c.get_offsets()) == 1]
    filled = [len(c.get_facecolors()) > 0 and c.get_facecolors()[0][3] > 0 for c in drawn]
    assert filled == [True, True, False]  # far, here; then "same", on "here", drawn as a ring
    handles, labels = axes.get_legend_handles_labels()
    assert labels[-3:] == [f"far (beyond the axes: {names[1]} 40)", "here", "same"]
    assert all(handle.get_facecolors()[0][3] > 0 for handle in handles[-3:])  # as drawn where nothing hides them
    assert_readable(figure)
