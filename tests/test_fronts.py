"""sweeps.report.fronts: the grid's front against a brute-force check, each search's status
against it, and the cost table's column. (The Pareto plot: test_figures.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from sweeps.report import (
    BEYOND,
    INSIDE,
    ON_FRONT,
    SearchSummary,
    TrialSummary,
    cost_rows,
    format_table,
    front_status,
    front_statuses,
    pareto_front,
    reads_metric,
    task_errors,
)

TASKS2 = ("left", "right")


def record(epoch: int, score: float, errors: dict[str, float]) -> dict[str, float]:
    out = {"epoch": epoch, "score": score, "test/score": score, "compute_seconds": float(epoch + 1)}
    for task, value in errors.items():
        out[f"val/{task}/normalized_error"] = value
        out[f"val/{task}/accuracy"] = 1 - value  # not a Pareto coordinate
    return out


def trial(search: str, trial_id: str, *epochs: tuple[float, tuple[float, ...]], tasks=TASKS2,
          status: str = "FINISHED", outcome: str = "") -> TrialSummary:
    """A trial whose epochs are ``(score, per-task errors)``."""
    history = [record(i, score, dict(zip(tasks, errors))) for i, (score, errors) in enumerate(epochs)]
    return TrialSummary(search=search, trial_id=trial_id, config={"label": trial_id}, status=status,
                        compute_seconds=1.0, device="cpu", end_time=float(len(trial_id)), history=history,
                        outcome=outcome)


def search(name: str, kind: str, trials: list[TrialSummary]) -> SearchSummary:
    return SearchSummary(name=name, kind=kind, wall_seconds=1.0, trials=trials)


# ----------------------------------------------------------------------------- points and front


def test_task_errors_come_from_the_best_validation_epoch():
    t = trial("g", "t", (0.9, (0.1, 0.1)), (0.2, (0.5, 0.3)), (0.4, (0.05, 0.05)))
    assert task_errors(t) == {"left": 0.5, "right": 0.3}  # the lowest score's epoch, not the lowest errors
    assert task_errors(trial("g", "empty")) == {}


def test_reads_metric_fetches_only_the_normalized_val_error():
    assert reads_metric("val/left/normalized_error") and reads_metric("val/sum/normalized_error")
    assert not reads_metric("val/left/accuracy") and not reads_metric("val/left/loss")
    assert not reads_metric("val/score") and not reads_metric("train/left/normalized_error")
    assert reads_metric("score") and reads_metric("test/left/normalized_error")


def brute_force_front(points: list[tuple[float, ...]]) -> list[int]:
    def dominated_by(a, b):  # b dominates a
        return all(y <= x for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b))

    return [i for i, a in enumerate(points) if not any(dominated_by(a, b) for b in points)]


@pytest.mark.parametrize("tasks", [2, 3, 5])
@pytest.mark.parametrize("seed", range(6))
def test_pareto_front_matches_brute_force(tasks, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    # few distinct levels, so ties in some tasks are common; then some exact duplicates
    points = [tuple(float(v) for v in row) for row in rng.integers(0, 6, size=(n, tasks)) / 5.0]
    points += [points[i] for i in rng.integers(0, n, size=n // 4)]
    order = rng.permutation(len(points))
    points = [points[i] for i in order]
    front = pareto_front(points)
    assert front == brute_force_front(points)
    front_set = {points[i] for i in front}
    # duplicates of a front point are all kept
    assert sorted(front) == [i for i, p in enumerate(points) if p in front_set]
    # continuous values too (no ties)
    cont = [tuple(row) for row in rng.random((n, tasks)).tolist()]
    assert pareto_front(cont) == brute_force_front(cont)


def test_pareto_front_small_cases():
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 2.0)]) == [0]
    assert pareto_front([(1.0, 1.0), (1.0, 1.0), (2.0, 0.5), (2.0, 2.0), (1.0, 3.0)]) == [0, 1, 2]
    assert pareto_front([(1.0, 2.0), (1.0, 1.0)]) == [1]  # tie in one task, better in the other


# ----------------------------------------------------------------------------- status


FRONT = [(0.1, 0.9), (0.5, 0.5), (0.9, 0.1)]


@pytest.mark.parametrize("point, expected", [
    ((0.6, 0.6), INSIDE),           # dominated by (0.5, 0.5)
    ((0.5, 0.7), INSIDE),           # tie in one task, worse in the other
    ((0.4, 0.4), BEYOND),           # dominates (0.5, 0.5)
    ((0.5, 0.4), BEYOND),           # tie in one task, better in the other
    ((0.05, 0.05), BEYOND),         # dominates them all
    ((0.5, 0.5), ON_FRONT),         # equal to a front point
    ((0.3, 0.7), ON_FRONT),         # incomparable with every front point: extends the front
    ((0.05, 1.5), ON_FRONT),        # beyond the front's end in one task, worse in the other
])
def test_front_status(point, expected):
    assert front_status(point, FRONT) == expected


def test_front_status_three_tasks_and_empty_front():
    front = [(0.2, 0.2, 0.8), (0.8, 0.2, 0.2)]
    assert front_status((0.3, 0.3, 0.9), front) == INSIDE
    assert front_status((0.2, 0.2, 0.7), front) == BEYOND
    assert front_status((0.5, 0.1, 0.5), front) == ON_FRONT
    assert front_status((0.5, 0.5), []) == ON_FRONT


def grid_search(name="grid", points=((0.1, 0.9), (0.5, 0.5), (0.9, 0.1), (0.7, 0.7)), scores=None):
    scores = scores or [0.5 + 0.01 * i for i in range(len(points))]
    return search(name, "static_grid", [trial(name, f"{name}{i}", (s, p)) for i, (s, p) in
                                        enumerate(zip(scores, points))])


def test_front_statuses_over_hand_made_searches():
    grid = grid_search(scores=[0.6, 0.6, 0.6, 0.3])  # its best trial (by score) is (0.7, 0.7): inside
    searches = [
        grid,
        search("alpha_beyond", "gradnorm", [trial("alpha_beyond", "a0", (0.2, (0.4, 0.45))),
                                            trial("alpha_beyond", "a1", (0.9, (0.01, 0.01)))]),
        search("alpha_on", "gradnorm", [trial("alpha_on", "b0", (0.2, (0.3, 0.7)))]),
        search("equal", "equal", [trial("equal", "e0", (0.2, (0.95, 0.95)))]),
        search("failed", "dwa", [trial("failed", "f0", (0.1, (0.0, 0.0)), status="FAILED")]),
        search("no_errors", "uncertainty", [trial("no_errors", "n0", (0.1, ()))]),
    ]
    assert front_statuses(searches) == {"grid": INSIDE, "alpha_beyond": BEYOND, "alpha_on": ON_FRONT,
                                        "equal": INSIDE, "failed": None, "no_errors": None}
    # the grid's best on its front; failed or error-less grid trials are no points
    best_on = grid_search(scores=[0.6, 0.3, 0.6, 0.6])
    best_on.trials.append(trial("grid", "gfail", (0.0, (0.0, 0.0)), status="FAILED"))
    best_on.trials.append(trial("grid", "gnan", (0.9, (float("nan"), 0.0))))
    assert front_statuses([best_on, searches[2]]) == {"grid": ON_FRONT, "alpha_on": ON_FRONT}
    # nor are diverged or killed ones, whatever their errors
    best_on.trials.append(trial("grid", "gdiv", (0.0, (0.0, 0.0)), outcome="diverged"))
    best_on.trials.append(trial("grid", "gkill", (0.0, (0.0, 0.0)), status="KILLED"))
    assert front_statuses([best_on, searches[2]]) == {"grid": ON_FRONT, "alpha_on": ON_FRONT}


def test_front_statuses_pools_several_grids_and_none_without_grid():
    coarse = grid_search("coarse", points=((0.2, 0.8), (0.8, 0.2)))
    fine = grid_search("fine", points=((0.4, 0.4), (0.6, 0.6)), scores=[0.9, 0.1])  # best: (0.6, 0.6)
    alpha = search("alpha", "gradnorm", [trial("alpha", "a", (0.1, (0.5, 0.5)))])
    assert front_statuses([coarse, fine, alpha]) == {"coarse": ON_FRONT, "fine": INSIDE, "alpha": INSIDE}
    assert front_statuses([alpha]) == {"alpha": None}
    unfinished = search("grid", "static_grid", [trial("grid", "g", (0.1, (0.5, 0.5)), status="FAILED")])
    assert front_statuses([unfinished, alpha]) == {"grid": None, "alpha": None}


def test_cost_table_front_column():
    grid, alpha = grid_search(), search("alpha", "gradnorm", [trial("alpha", "a", (0.1, (0.4, 0.4)))])
    failed = search("failed", "equal", [trial("failed", "f", (0.1, (0.4, 0.4)), status="FAILED")])
    searches = [grid, alpha, failed]
    rows = cost_rows(searches, [], fronts=front_statuses(searches))
    assert [row["front"] for row in rows] == [ON_FRONT, BEYOND, None]
    assert list(rows[1])[-1] == "front"
    lines = format_table(rows, []).split("\n\n")[1].splitlines()  # the second table
    assert [c.strip() for c in lines[0].strip("|").split("|")][-1] == "grid front"
    assert [line.strip("|").split("|")[-1].strip() for line in lines[2:]] == ["on front", "beyond", "-"]
    assert "front" not in cost_rows(searches, [])[0]
    assert "grid front" not in format_table(cost_rows(searches, []), [])
