"""Repeats: a search's trials grouped by configuration, mean and spread over seeds, checked
against plain-Python recomputation on hand-built trials."""

from __future__ import annotations

import math
import statistics

import pytest

from sweeps.configs import best_config, config_results, within_noise
from sweeps.report import best_so_far, best_trial, cost_rows, format_table
from sweeps.results import SearchSummary, TrialSummary


def trial(trial_id: str, label: str, score: float, test: float, *, end: float, status="FINISHED", acc=0.5):
    history = [{"epoch": 1, "score": score + 1.0, "test/score": 9.0, "test/a/accuracy": 0.0},
               {"epoch": 2, "score": score, "test/score": test, "test/a/accuracy": acc}]
    return TrialSummary(search="s", trial_id=trial_id, config={"label": label}, status=status,
                        compute_seconds=10.0, device="cpu", end_time=end, history=history)


@pytest.fixture
def repeated() -> SearchSummary:
    """alpha=1 has the single best trial (0.10) but the worse mean; alpha=2 the better mean."""
    trials = [
        trial("a0", "alpha=1", 0.10, 0.2, end=1, acc=0.9), trial("b0", "alpha=2", 0.20, 0.3, end=2, acc=0.8),
        trial("a1", "alpha=1", 0.40, 0.5, end=3, acc=0.7), trial("b1", "alpha=2", 0.22, 0.4, end=4, acc=0.6),
        trial("x", "alpha=3", 0.01, 0.1, end=5, status="FAILED"),
    ]
    return SearchSummary(name="gn", kind="gradnorm", wall_seconds=1.0, trials=trials)


def test_configurations_group_the_finished_trials_by_label(repeated):
    results = config_results(repeated)
    assert [r.label for r in results] == ["alpha=1", "alpha=2"]  # the failed alpha=3 is left out
    assert [t.trial_id for t in results[1].trials] == ["b0", "b1"]
    assert results[0].mean == pytest.approx(0.25) and results[1].mean == pytest.approx(0.21)
    assert results[1].std == pytest.approx(statistics.stdev([0.20, 0.22]))


def test_the_best_configuration_is_the_best_mean_not_the_best_trial(repeated):
    assert best_config(repeated).label == "alpha=2"
    assert best_trial(repeated).trial_id == "b0"  # the better seed of the better configuration


def test_cost_row_gives_mean_and_std_over_the_seeds_of_the_best_configuration(repeated):
    row = cost_rows([repeated], ["a/accuracy"])[0]
    assert row["best_val_score"] == pytest.approx(0.21)
    assert row["best_val_std"] == pytest.approx(statistics.stdev([0.20, 0.22]))
    assert row["best_test_score"] == pytest.approx(0.35)
    assert row["best_test_std"] == pytest.approx(statistics.stdev([0.3, 0.4]))
    assert row["test/a/accuracy"] == pytest.approx(0.7)
    assert row["seeds"] == 2 and row["best_config"] == "alpha=2" and row["vs_best"] == "best"
    assert row["trials"] == 5 and row["compute_seconds"] == 50.0  # every trial's compute counts


def test_differences_within_the_seeds_spread_are_marked_as_noise(repeated):
    near = SearchSummary("near", "static_grid", 1.0, [trial("n0", "w", 0.22, 0.3, end=1),
                                                      trial("n1", "w", 0.23, 0.3, end=2)])
    far = SearchSummary("far", "equal", 1.0, [trial("f0", "-", 0.50, 0.3, end=1), trial("f1", "-", 0.51, 0.3, end=2)])
    single = SearchSummary("one", "dwa", 1.0, [trial("o0", "-", 0.9, 0.9, end=1)])
    rows = cost_rows([repeated, near, far, single], [])
    # near: |0.225 - 0.21| = 0.015 <= hypot(0.0071, 0.0141) = 0.0158; far: 0.295 is not
    assert math.hypot(statistics.stdev([0.22, 0.23]), statistics.stdev([0.20, 0.22])) > 0.015
    assert [row.get("vs_best") for row in rows] == ["best", "within noise", "worse", None]
    assert within_noise(best_config(near), best_config(single)) is None
    table = format_table(rows, [])
    assert "vs best" in table.splitlines()[0]
    assert "0.2100 ± 0.0141" in table and "within noise" in table


def test_without_repeats_the_table_is_as_before(repeated):
    one = SearchSummary("one", "dwa", 1.0, [trial("o0", "-", 0.9, 0.9, end=1)])
    row = cost_rows([one], [])[0]
    assert "vs_best" not in row and "best_val_std" not in row and row["best_val_score"] == 0.9
    assert "vs best" not in format_table([row], []) and "±" not in format_table([row], [])


def test_best_so_far_follows_the_configuration_means(repeated):
    # a0 (0.10) leads alone; then alpha=2 with one seed (0.20); a1 lifts alpha=1 to 0.25: the
    # best mean is alpha=2's 0.20, then 0.21 with b1; the failed trial adds compute only
    points = best_so_far(repeated)
    assert [x for x, _ in points] == [10, 20, 30, 40, 50]
    assert [y for _, y in points] == pytest.approx([0.10, 0.10, 0.20, 0.21, 0.21])
