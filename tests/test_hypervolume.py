"""sweeps.report.hypervolume: the volume against the 2-task closed form and a 3-task Monte-Carlo
estimate, the sweep's reference point, each search's points (configuration means over seeds),
and the cost table's and the CSV's columns."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from test_fronts import TASKS2, record, search, trial

from sweeps.report import (
    details_table,
    SearchSummary,
    TrialSummary,
    cost_rows,
    format_table,
    hypervolume,
    hypervolumes,
    reference_point,
    search_front,
    search_points,
    write_csv,
)


def staircase_volume(points: np.ndarray, reference: np.ndarray) -> float:
    """The 2-task closed form: the non-dominated points sorted by the first error (the second
    then falls), each adds the rectangle from its x to the next one's x, from its y to r_2."""
    front = [p for p in points if not any(np.all(q <= p) and np.any(q < p) for q in points)]
    front = sorted({tuple(p) for p in front})
    xs = [p[0] for p in front] + [reference[0]]
    return sum((xs[k + 1] - xs[k]) * (reference[1] - front[k][1]) for k in range(len(front)))


@pytest.mark.parametrize("seed", range(5))
def test_two_tasks_match_the_closed_form(seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 1, size=(int(rng.integers(1, 30)), 2))
    reference = np.array([1.1, 1.2])
    assert hypervolume(points, reference) == pytest.approx(staircase_volume(points, reference), rel=1e-12)


def test_small_cases_by_hand():
    assert hypervolume([], [1, 1]) == 0.0
    assert hypervolume([[0.5, 0.5]], [1, 1]) == pytest.approx(0.25)
    assert hypervolume([[0.2, 0.6], [0.6, 0.2]], [1, 1]) == pytest.approx(0.8 * 0.4 + 0.4 * 0.4)
    assert hypervolume([[0.2, 0.6], [0.2, 0.6], [0.5, 0.7]], [1, 1]) == pytest.approx(0.32)  # a copy, a dominated
    assert hypervolume([[1.5, 0.1]], [1, 1]) == 0.0  # beyond the reference in one task: nothing


@pytest.mark.parametrize("seed", range(3))
def test_three_tasks_match_a_monte_carlo_estimate(seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(0.1, 1.0, size=(12, 3))
    reference = np.array([1.1, 1.05, 1.2])
    low = points.min(axis=0)
    samples = rng.uniform(low, reference, size=(200_000, 3))
    dominated = np.zeros(len(samples), dtype=bool)
    for point in points:
        dominated |= np.all(samples >= point, axis=1)
    box = float(np.prod(reference - low))
    share = dominated.mean()
    estimate, error = share * box, box * np.sqrt(share * (1 - share) / len(samples))
    assert abs(hypervolume(points, reference) - estimate) < 4 * error


# ----------------------------------------------------------------------------- over the sweep


def grid() -> SearchSummary:
    return search("grid", "static_grid", [trial("grid", "g1", (0.3, (0.2, 0.8))), trial("grid", "g2", (0.3, (0.8, 0.2))),
                                          trial("grid", "g3", (0.5, (0.9, 0.9)))])


def test_reference_point_is_the_sweeps_worst_error_per_task_plus_ten_percent():
    alpha = search("alpha", "gradnorm", [trial("alpha", "a", (0.6, (0.95, 0.1)), (0.2, (0.4, 0.4)))])
    tasks = list(TASKS2)
    # alpha's point is its best epoch (score 0.2): (0.4, 0.4), not (0.95, 0.1)
    assert search_points(alpha, tasks) == [(0.4, 0.4)]
    assert reference_point([grid(), alpha], tasks) == pytest.approx((1.1 * 0.9, 1.1 * 0.9))
    assert search_front(grid(), tasks) == [(0.2, 0.8), (0.8, 0.2)]
    assert reference_point([], tasks) is None


def test_a_configurations_point_is_its_mean_over_seeds():
    def seed(trial_id: str, errors) -> TrialSummary:
        t = trial("rep", trial_id, (0.3, errors))
        t.config = {"label": "weights=[1, 2]", "repeat": int(trial_id[-1])}
        return t

    repeated = search("rep", "static_grid", [seed("r0", (0.2, 0.6)), seed("r1", (0.4, 0.2))])
    assert search_points(repeated, list(TASKS2)) == [pytest.approx((0.3, 0.4))]


def test_each_search_against_one_reference_and_per_compute_second():
    alpha = search("alpha", "gradnorm", [trial("alpha", "a", (0.2, (0.4, 0.4)))])
    alpha.trials[0].compute_seconds = 4.0
    failed = search("failed", "equal", [trial("failed", "f", (0.1, (0.1, 0.1)), status="FAILED")])
    reference = SearchSummary(name="stl", kind="single_task", wall_seconds=1.0, reference=True,
                              trials=[trial("stl", "s", (0.1, (0.05, 0.05)))])
    found = hypervolumes([grid(), alpha, failed, reference])
    r = 1.1 * 0.9  # the worst error in each task is grid's g3, 0.9; the failed trial has no point
    grid_volume = staircase_volume(np.array([[0.2, 0.8], [0.8, 0.2], [0.9, 0.9]]), np.array([r, r]))
    assert found["grid"] == (pytest.approx(grid_volume), pytest.approx(grid_volume / 3.0))  # 3 trials of 1 s
    assert found["alpha"] == (pytest.approx((r - 0.4) ** 2), pytest.approx((r - 0.4) ** 2 / 4.0))
    assert found["failed"] == (0.0, 0.0) and found["stl"] is None


def test_cost_rows_table_and_csv_carry_it(tmp_path):
    alpha = search("alpha", "gradnorm", [trial("alpha", "a", (0.2, (0.4, 0.4)))])
    rows = cost_rows([grid(), alpha], [])
    volumes = hypervolumes([grid(), alpha])
    for row in rows:
        assert (row["hypervolume"], row["hypervolume_per_compute_second"]) == volumes[row["search"]]
    lines = details_table(rows, []).splitlines()  # the rest: the headline has room for 9 columns only
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    column = header.index("hypervolume (per s)")
    cell = [c.strip() for c in lines[3].strip("|").split("|")][column]
    assert cell == f"{volumes['alpha'][0]:.4f} ({volumes['alpha'][1]:.4f}/s)"
    write_csv(rows, tmp_path / "cost.csv")
    read = {row["search"]: row for row in csv.DictReader(open(tmp_path / "cost.csv", newline=""))}
    assert float(read["grid"]["hypervolume"]) == pytest.approx(volumes["grid"][0], rel=1e-12)
    # without any normalized error (no point anywhere) the column is left out
    bare = search("bare", "equal", [TrialSummary(search="bare", trial_id="b", config={}, status="FINISHED",
                                                 compute_seconds=1.0, device="cpu", end_time=1.0,
                                                 history=[{"epoch": 1, "score": 0.5, "test/score": 0.5}])])
    assert "hypervolume" not in cost_rows([bare], [])[0]
    assert "hypervolume" not in format_table(cost_rows([bare], []), [])


