"""sweeps.report.answer and .costs: the answer in words and the costs it states, on hand-made
searches: a winner with others within and beyond the seeds' noise, ties, failed searches, a
missing or failed grid, one seed; every share recomputed here from the trials' own costs, the
full grid projected from the points that ran."""

from __future__ import annotations

import math
import statistics

import pytest

from sweeps.report import (
    SearchSummary,
    TrialSummary,
    answer,
    answer_line,
    cost_rows,
    full_grid_cost,
    grid_fractions,
    grid_points_by_tasks,
    percent,
    stable_unit,
    table_heading,
)

QM9_LEVELS = [1] + [3] * 10  # the first target fixed, 3 levels for the ten others: 59,049 points


def trial(search: str, label: str, score: float | None, *, seed: int = 0, end: float = 0.0, wall: float = 10.0,
          cpu: float | None = 4.0, samples: float | None = 100.0, outcome: str = "") -> TrialSummary:
    history = [] if score is None else [{"epoch": 1, "score": score, "test/score": score, "weight/a": 1.0}]
    return TrialSummary(search=search, trial_id=f"{search}-{label}-{seed}", config={"label": label},
                        status="FAILED" if outcome == "failed" else "FINISHED", compute_seconds=wall, device="cpu",
                        end_time=end, history=history, outcome=outcome, cpu_seconds=cpu, samples=samples)


def seeded(search: str, label: str, scores: list[float], start: float = 0.0, **costs) -> list[TrialSummary]:
    return [trial(search, label, score, seed=k, end=start + k, **costs) for k, score in enumerate(scores)]


def sweep() -> list[SearchSummary]:
    """A sampled grid (3 of 59,049 points, 2 seeds), an alpha search, a search within the alpha
    search's noise, two worse ones (one of them the recommended static), one that failed."""
    grid = SearchSummary("grid", "static_grid", 60.0,
                         seeded("grid", "w=[1, 2]", [0.50, 0.52], 10) + seeded("grid", "w=[1, 3]", [0.60, 0.62], 12)
                         + seeded("grid", "w=[1, 4]", [0.55, 0.57], 14),
                         grid_size=59049, levels=QM9_LEVELS, sampled=True)
    gradnorm = SearchSummary("gn", "gradnorm", 80.0,
                             seeded("gn", "alpha=1", [0.40, 0.42], 1, wall=20.0, cpu=5.0)
                             + seeded("gn", "alpha=2", [0.70, 0.72], 3, wall=20.0, cpu=5.0), recommends_static=True)
    near = SearchSummary("near", "equal", 20.0, seeded("near", "-", [0.41, 0.43], 20))
    equal = SearchSummary("eq", "equal", 20.0, seeded("eq", "-", [0.505, 0.515], 22))
    recommended = SearchSummary("rec", "static", 20.0, seeded("rec", "w=[1.131, 0.9333]", [0.45, 0.47], 24),
                                source="gn")
    failed = SearchSummary("bad", "dwa", 5.0, [trial("bad", "-", None, seed=k, outcome="failed") for k in range(2)])
    return [grid, gradnorm, near, equal, recommended, failed]


def test_the_answer_states_the_winner_its_noise_and_the_alpha_searchs_share_of_the_grid():
    searches = sweep()
    rows = cost_rows(searches, [])
    rows[0]["delta_m"], rows[1]["delta_m"], rows[4]["delta_m"] = 2.0, -1.5, 0.5
    text = answer(rows, stable_unit(searches))
    assert stable_unit(searches) == "samples"
    leader = [0.40, 0.42]
    assert text.startswith(f"gn found the best validation score (lower is better): {statistics.fmean(leader):.4f} ± "
                           f"{statistics.stdev(leader):.4f} over 2 seeds, with alpha=1. near is within the seeds' "
                           "noise of it; 3 others are worse. bad has no result (2 failed of 2 trials)."), text
    grid, gn = 6 * 100.0, 4 * 100.0  # every trial's samples
    full = 59049 * grid / 3  # the full grid: its points at the mean cost of the 3 that ran
    assert (f"The alpha search gn cost {percent(gn / grid)} of the sampled grid's samples processed "
            f"({percent(20.0 / 24.0)} of its CPU time; {percent(80 / 60)} of its wall-clock seconds), "
            f"{percent(gn / full)} of the full grid's (projected: its 59,049 points at the mean cost of the 3 "
            "that ran).") in text
    assert percent(gn / grid) == "67%" and percent(gn / full) == "0.0034%"
    # alpha=1's two seeds ended at 1 and 2: 200 samples when it came within noise of the grid's best
    assert f"It came within noise of the grid's best at {percent(200 / grid)} of the grid's samples processed." in text
    recommended = [0.45, 0.47]
    assert (f"The recommended static weights [1.13, 0.933] reached {statistics.fmean(recommended):.4f} ± "
            f"{statistics.stdev(recommended):.4f} over 2 seeds (worse against the best), at "
            f"{percent((200 + gn) / grid)} of the sampled grid's samples processed counted with gn's.") in text
    assert text.endswith("Δm% against training each task alone (lower is better; below 0 beats it): grid +2.00, "
                         "gn -1.50, rec +0.50.")
    # in CPU time: the trials' own, 4 s a grid trial, 5 s a GradNorm one
    text = answer(rows, "cpu")
    assert (f"The alpha search gn cost {percent(20 / 24)} of the sampled grid's CPU time ({percent(gn / grid)} of its "
            f"samples processed; {percent(80 / 60)} of its wall-clock seconds), "
            f"{percent(20 / (59049 * 24 / 3))} of the full grid's") in text
    # the gist: the experiment's description, and the cost table's first line
    line = answer_line(rows, "samples")
    assert line == (f"Best validation score: gn (0.4100); the alpha search gn cost {percent(gn / grid)} of "
                    f"the sampled grid's samples processed ({percent(gn / full)} of the full grid's, projected).")
    heading = table_heading(rows, "samples")
    assert heading.startswith("Scores: lower is better. Shares (%) are of the grid's samples processed as it ran "
                              "(3 of its 59,049 points; the full grid's, projected: second table)")
    assert heading.endswith(line)


def test_a_search_that_never_reached_the_grid_says_why():
    searches = sweep()
    searches[1] = SearchSummary("gn", "gradnorm", 40.0, seeded("gn", "alpha=2", [0.70, 0.72], 1))
    text = answer(cost_rows(searches, []), "cpu")
    assert "It never came within noise of the grid's best (not within the seeds' noise)." in text
    single = [searches[0], SearchSummary("gn", "gradnorm", 20.0, [trial("gn", "alpha=2", 0.9, end=1)])]
    text = answer(cost_rows(single, []), "cpu")
    assert "It never came within noise of the grid's best (one seed, and worse)." in text


def test_ties_share_the_best_score():
    a = SearchSummary("a", "gradnorm", 1.0, [trial("a", "alpha=1", 0.3)])
    b = SearchSummary("b", "equal", 1.0, [trial("b", "-", 0.3)])
    c = SearchSummary("c", "dwa", 1.0, [trial("c", "-", 0.6)])
    text = answer(cost_rows([a, b, c], []), "cpu")
    assert text.startswith("a and b tie for the best validation score (lower is better): 0.3000. With one seed "
                           "there is no noise to judge by: the next best, c, scored 0.6000 (100% higher).")
    assert answer_line(cost_rows([a, b, c], []), "cpu") == "Best validation score: a and b (0.3000)."


def test_without_a_grid_no_cost_is_stated_against_one():
    gradnorm = SearchSummary("gn", "gradnorm", 1.0, [trial("gn", "alpha=1", 0.3)])
    equal = SearchSummary("eq", "equal", 1.0, [trial("eq", "-", 0.4)])
    text = answer(cost_rows([gradnorm, equal], []), "cpu")
    assert "No static grid ran, so no search's cost is measured against one." in text and "%" in text
    assert "of the grid" not in text and "grid's" not in text
    failed = SearchSummary("grid", "static_grid", 1.0, [trial("grid", "w=[1]", None, outcome="failed")], grid_size=4)
    text = answer(cost_rows([failed, gradnorm], []), "cpu")
    assert "The static grid has no result, so no search's cost is measured against it." in text
    assert "grid has no result (1 failed of 1 trials)." in text
    assert "cost" not in text.split("measured against it.")[1]


def test_when_nothing_has_a_result_the_answer_says_so():
    failed = [SearchSummary(name, "gradnorm", 1.0, [trial(name, "-", None, outcome="failed")]) for name in ("a", "b")]
    rows = cost_rows(failed, [])
    assert answer(rows, "cpu").startswith("No search has a result: every trial failed, diverged or was killed.")
    assert answer_line(rows, "cpu") == "No search has a result."


def test_trials_without_a_result_beside_results_are_counted():
    diverged = seeded("gn", "alpha=1", [0.3, 0.31]) + [trial("gn", "alpha=1", 0.2, seed=2, outcome="diverged")]
    text = answer(cost_rows([SearchSummary("gn", "gradnorm", 1.0, diverged)], []), "cpu")
    assert "Elsewhere 1 trial diverged: counted in their searches' cost, in no score." in text


# ----------------------------------------------------------------------------- costs


def test_the_full_grid_is_projected_from_the_mean_cost_of_the_points_that_ran():
    grid = sweep()[0]
    for unit, total in (("compute", 60.0), ("cpu", 24.0), ("samples", 600.0)):
        assert full_grid_cost(grid, unit) == pytest.approx(59049 * total / 3)
    whole = SearchSummary("g", "static_grid", 1.0, seeded("g", "w=1", [0.1, 0.2]), grid_size=1)
    assert full_grid_cost(whole, "cpu") == 8.0  # it ran whole: its own cost, not a projection
    assert full_grid_cost(SearchSummary("g", "static_grid", 1.0, seeded("g", "w=1", [0.1])), "cpu") is None
    rows = {row["search"]: row for row in cost_rows(sweep(), [])}
    assert rows["grid"]["full_grid_projected"] is True and rows["grid"]["points_ran"] == 3
    assert rows["grid"]["full_grid_compute_seconds"] == pytest.approx(59049 * 60.0 / 3)


def test_the_stable_unit_is_the_one_every_trial_has():
    searches = sweep()
    assert stable_unit(searches) == "samples"
    searches[2].trials[0].samples = None
    assert stable_unit(searches) == "cpu"
    for search in searches:
        for one in search.trials:
            one.gpu_seconds = 1.0
    assert stable_unit(searches) == "gpu"
    searches[2].trials[0].gpu_seconds = searches[2].trials[0].cpu_seconds = None
    # a record written before CPU time and samples were counted
    assert stable_unit(searches) == "compute" and stable_unit([]) == "compute"


def test_a_share_whose_cost_is_unknown_is_left_out_not_called_never():
    searches = sweep()
    searches[2].trials[0].cpu_seconds = None
    fractions = grid_fractions(searches)
    assert "grid_cpu_fraction" not in fractions["near"] and "to_grid_best_cpu" not in fractions["near"]
    assert fractions["near"]["grid_samples_fraction"] == pytest.approx(200 / 600)
    assert fractions["near"]["to_grid_best_samples"] == pytest.approx(200 / 600)  # its one configuration, 2 seeds
    assert fractions["eq"]["to_grid_best_cpu"] == pytest.approx(8 / 24)
    assert fractions["grid"]["grid_cpu_fraction"] == 1.0
    assert fractions["rec"]["full_grid_cpu_fraction"] == pytest.approx(28 / (59049 * 24 / 3))


def test_the_grids_points_by_tasks_at_its_levels():
    grid = sweep()[0]
    counts = dict(grid_points_by_tasks(grid, 10))
    assert counts[11] == 59049 and counts[2] == 3 and counts[5] == 81  # one task fixed: 3^(T-1)
    assert list(counts) == list(range(2, 12))
    uneven = SearchSummary("g", "static_grid", 1.0, [trial("g", "w", 0.1)], grid_size=8, levels=[2, 4])
    assert dict(grid_points_by_tasks(uneven, 4)) == {2: 8, 3: round(math.sqrt(8) ** 3), 4: 64}
    unknown = SearchSummary("g", "static_grid", 1.0, [trial("g", "w", 0.1)], grid_size=27)  # levels not recorded
    unknown.trials[0].history[0] |= {"weight/b": 1.0, "weight/c": 1.0}
    assert dict(grid_points_by_tasks(unknown, 4)) == {2: 9, 3: 27, 4: 81}


# ----------------------------------------------------------------------------- the numbers on the runs


def test_the_numbers_on_the_runs_come_in_the_order_that_matters_without_zero_counts():
    """A search run's numbers: what it found, then its cost against the grid in the stable unit,
    then the rest; no zero count of trials that ended early or without a result (``failed``
    excepted: every search run has it). The comparison run's: name by name, every search's best
    validation score first."""
    from sweeps.comparison import comparison_metrics, search_metrics

    rows = cost_rows(sweep(), [])
    gn = search_metrics(rows[1], "samples")
    assert list(gn)[:7] == ["best_val_score", "best_val_std", "best_test_score", "to_grid_best_samples",
                            "grid_samples_fraction", "full_grid_samples_fraction", "samples"]
    assert gn["grid_samples_fraction"] == pytest.approx(400 / 600) and gn["failed"] == 0
    assert "stopped_early" not in gn and "outcome/failed" not in gn and "outcome/killed" not in gn
    assert list(search_metrics(rows[1], "cpu"))[3:7] == ["to_grid_best_cpu", "grid_cpu_fraction",
                                                         "full_grid_cpu_fraction", "cpu_seconds"]
    bad = search_metrics(rows[5], "samples")
    assert bad["failed"] == bad["outcome/failed"] == 2 and "best_val_score" not in bad
    grid = search_metrics(rows[0], "samples")
    assert grid["full_grid_projected"] == 1 and grid["grid_size"] == 59049 and grid["points_ran"] == 3
    assert grid["full_grid_samples"] == pytest.approx(59049 * 600 / 3)
    names = list(comparison_metrics(rows, "samples"))
    assert names[:6] == ["grid/best_val_score", "gn/best_val_score", "near/best_val_score", "eq/best_val_score",
                         "rec/best_val_score", "grid/best_val_std"]
    assert names.index("bad/grid_samples_fraction") < names.index("gn/compute_seconds")
    assert len(names) == sum(len(search_metrics(row, "samples")) for row in rows)
