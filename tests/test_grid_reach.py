"""Against the grid's best: the compute at which each search first came within noise of it (as a
fraction of the grid's compute), and a derived search's cost with its source's (the recommended
static's weights come from its GradNorm search), in the selection layer, the table, the CSV and
the best-so-far plot. Every number worked out by hand below."""

from __future__ import annotations

import math

import pytest

from report_fixtures import trial
from sweeps.report import (SearchSummary, best_config, best_so_far_figure, compute_to_reach, config_results, cost_rows,
                           format_table,
                           grid_reach, grid_search, reaches, with_source)


def record(score):
    return {"epoch": 1, "score": score, "test/score": score, "compute_seconds": 1.0}


def search(name, kind, scores, *, compute, start_end=1, **options) -> SearchSummary:
    """``scores``: [(label, [score per seed])], trials ending one after another, label by label,
    each seed's trial taking ``compute`` seconds; configurations' seeds interleave as listed."""
    trials, end = [], start_end
    for label, values in scores:
        for seed, value in enumerate(values):
            trials.append(trial(name, f"{name}-{label}-{seed}", {"label": label}, compute=compute, end=float(end),
                                history=[record(value)]))
            end += 1
    return SearchSummary(name, kind, 1.0, trials, **options)


@pytest.fixture
def sweep():
    # the grid: A (0.50, 0.52) then B (0.40, 0.42), 10 s per trial: 40 s in all, its best B = 0.41
    grid = search("grid", "static_grid", [("A", [0.50, 0.52]), ("B", [0.40, 0.42])], compute=10.0, grid_size=2)
    # GradNorm: X (0.43, 0.44) is not within noise of B, Y (0.45, 0.40) is; 5 s per trial
    gradnorm = search("gn", "gradnorm", [("X", [0.43, 0.44]), ("Y", [0.45, 0.40])], compute=5.0,
                      recommends_static=True)
    recommended = search("rec", "static", [("R", [0.41, 0.42])], compute=3.0, source="gn")
    never = search("eq", "equal", [("-", [0.70, 0.72])], compute=1.0)
    return grid, gradnorm, recommended, never


def test_within_noise_of_the_grids_best(sweep):
    grid, gradnorm, recommended, never = sweep
    target = best_config(grid)
    assert target.label == "B" and target.mean == pytest.approx(0.41)
    x, y = (next(c for c in config_results(gradnorm)
                 if c.label == label) for label in "XY")
    # X: |0.435 - 0.41| = 0.025 > sqrt(0.00707^2 + 0.01414^2) = 0.0158
    assert not reaches(x, target) and math.hypot(x.std, target.std) == pytest.approx(0.0158114, rel=1e-4)
    # Y: |0.425 - 0.41| = 0.015 <= sqrt(0.03536^2 + 0.01414^2) = 0.0381
    assert reaches(y, target)


def test_compute_to_reach_counts_every_trial_until_a_configuration_has_all_its_seeds(sweep):
    grid, gradnorm, recommended, never = sweep
    target = best_config(grid)
    assert compute_to_reach(grid, target) == 40.0  # A (0.51) is no match; B, with its second seed
    assert compute_to_reach(gradnorm, target) == 20.0  # X0, X1, Y0, Y1: Y reaches once both ended
    assert compute_to_reach(recommended, target) == 6.0
    assert compute_to_reach(never, target) is None


def test_with_one_seed_only_at_or_below_counts():
    grid = search("grid", "static_grid", [("A", [0.5]), ("B", [0.4])], compute=10.0)
    other = search("o", "equal", [("P", [0.41]), ("Q", [0.39])], compute=2.0)
    assert compute_to_reach(other, best_config(grid)) == 4.0  # P (0.41 > 0.40) is no match, Q is


def test_grid_reach_and_cost_with_source(sweep):
    grid, gradnorm, recommended, never = sweep
    searches = [gradnorm, grid, recommended, never]
    assert grid_search(searches) is grid
    assert with_source(recommended, searches) == 6.0 + 20.0 and with_source(gradnorm, searches) == 20.0
    assert grid_reach(searches) == {"gn": 0.5, "grid": 1.0, "rec": pytest.approx((20.0 + 6.0) / 40.0), "eq": None}
    assert grid_reach([gradnorm, never]) == {}  # no grid, no column


def test_rows_table_and_csv_say_a_derived_searchs_cost_with_its_source(sweep):
    grid, gradnorm, recommended, never = sweep
    rows = {row["search"]: row for row in cost_rows([gradnorm, grid, recommended, never], [])}
    rec = rows["rec"]
    assert (rec["compute_seconds"], rec["source"], rec["compute_with_source_seconds"]) == (6.0, "gn", 26.0)
    assert rec["grid_compute_fraction"] == pytest.approx(26.0 / 40.0) and rec["to_grid_best"] == pytest.approx(0.65)
    assert "source" not in rows["gn"] and rows["gn"]["grid_compute_fraction"] == 0.5
    assert rows["eq"]["to_grid_best"] is None
    text = format_table(list(rows.values()), [])
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
             for line in text.split("\n\n")[0].splitlines()[2:]}
    assert cells["rec"][2] == "6.0 (26.0 with gn), 65%" and cells["rec"][5] == "65%"
    assert (cells["gn"][5], cells["grid"][5], cells["eq"][5]) == ("50%", "100%", "never: not within noise")


def test_the_best_so_far_plot_starts_a_derived_search_after_its_sources_compute(sweep):
    grid, gradnorm, recommended, never = sweep
    figure = best_so_far_figure([gradnorm, grid, recommended, never])
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert set(lines) == {"gn", "grid", "eq", "rec (after gn's cost)", "grid's best (grid, 0.41 ± 0.014)"}
    assert list(lines["rec (after gn's cost)"].get_xdata()) == [23.0, 26.0]  # 20 s of gn, then 3 + 3
    assert list(lines["gn"].get_xdata()) == [5.0, 10.0, 15.0, 20.0]


def test_the_best_so_far_plot_stops_at_one_and_a_half_times_the_worst_final_value():
    spiky = search("asha", "static_grid", [("A", [0.9]), ("B", [0.2])], compute=1.0)  # 0.9 first, then 0.2
    steady = search("gn", "gradnorm", [("X", [0.3])], compute=1.0)
    axes = best_so_far_figure([spiky, steady]).axes[0]
    assert axes.get_ylim()[1] == pytest.approx(1.5 * 0.3)  # the worst final value is gn's 0.3
    calm = best_so_far_figure([steady]).axes[0]  # nothing above: matplotlib's own limits
    assert calm.get_ylim()[1] < 0.45
