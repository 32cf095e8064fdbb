"""sweeps.report.selection: a search's trials grouped by configuration, mean and spread over
seeds, the best configuration and trial, the best-so-far curve and the recommended weights,
checked against plain-Python recomputation on hand-built trials."""

from __future__ import annotations

import math
import statistics

import pytest

from report_fixtures import all_failed_search, gradnorm_search, grid_search, independent_best
from report_fixtures import trial as make_trial
from sweeps.report import (
    SearchSummary,
    TrialSummary,
    best_config,
    best_so_far,
    best_trial,
    config_label,
    config_results,
    cost_rows,
    format_table,
    label_of,
    recommended_weights,
    time_averaged_weights,
    within_noise,
)


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


def test_a_diverged_or_killed_seed_is_kept_beside_its_configuration_not_in_it():
    trials = [trial("a0", "alpha=1", 0.10, 0.2, end=1), trial("a1", "alpha=1", 0.05, 0.2, end=2, status="KILLED"),
              trial("a2", "alpha=1", 0.30, 0.2, end=3)]
    trials.append(TrialSummary(search="s", trial_id="a3", config={"label": "alpha=1"}, status="FINISHED",
                               compute_seconds=10.0, device="cpu", end_time=4,
                               history=[{"epoch": 1, "score": 0.01, "test/score": float("nan")}]))
    (result,) = config_results(SearchSummary("gn", "gradnorm", 1.0, trials))
    assert [t.trial_id for t in result.trials] == ["a0", "a2"]
    assert [(t.trial_id, t.outcome) for t in result.others] == [("a1", "killed"), ("a3", "diverged")]
    assert result.mean == pytest.approx(0.20) and result.seeds == 4
    assert result.left_out() == {"killed": 1, "diverged": 1}
    # the curve counts their compute, never their scores
    assert [y for _, y in best_so_far(SearchSummary("gn", "gradnorm", 1.0, trials))] == pytest.approx([0.10, 0.10, 0.20, 0.20])


def test_the_label_is_read_in_one_place():
    assert config_label({"label": "alpha=0.5", "alpha": 0.5}) == "alpha=0.5"
    assert config_label({"alpha": 0.5}) is None and config_label({"label": ""}) is None
    assert label_of(trial("t9", "alpha=2", 0.1, 0.1, end=1)) == "alpha=2"
    assert label_of(make_trial("s", "t9", {"method": "equal"})) == "t9"


# ----------------------------------------------------------------------------- best trial, curve, weights


def test_best_trial_selects_on_validation_not_test():
    gradnorm = gradnorm_search()
    chosen = best_trial(gradnorm)
    expected_trial, _ = independent_best(gradnorm)
    assert chosen is expected_trial
    assert chosen.trial_id == "t_good"
    # the bait has the better test score, the failed trial the better validation score
    bait = next(t for t in gradnorm.trials if t.trial_id == "t_test_bait")
    assert min(r["test/score"] for r in bait.history) < min(r["test/score"] for r in chosen.history)


def test_best_trial_none_without_finished():
    assert best_trial(all_failed_search()) is None
    assert best_trial(SearchSummary(name="x", kind="equal", wall_seconds=0.0, trials=[])) is None


def flat(points):
    return [v for point in points for v in point]


def test_best_so_far_orders_by_end_time():
    gradnorm = gradnorm_search()
    points = best_so_far(gradnorm)
    ordered = sorted(gradnorm.trials, key=lambda t: t.end_time)
    expected, compute, best = [], 0.0, math.inf
    for t in ordered:
        compute += t.compute_seconds
        if t.status == "FINISHED":
            best = min(best, min(r["score"] for r in t.history))
        if best < math.inf:
            expected.append((compute, best))
    assert flat(points) == pytest.approx(flat(expected))
    # the failed trial ends first: its 5 s count, its 0.01 does not; then t_good, bait, late
    assert flat(points) == pytest.approx(flat([(25.0, 0.30), (55.0, 0.30), (95.0, 0.30)]))
    scores = [s for _, s in points]
    assert all(b <= a for a, b in zip(scores, scores[1:]))
    xs = [x for x, _ in points]
    assert all(b > a for a, b in zip(xs, xs[1:]))


def test_best_so_far_improving_and_empty():
    # grid trials end in order 0, 1, 2 with scores 0.9, 0.8, 0.7 and compute 1, 2, 3
    assert flat(best_so_far(grid_search())) == pytest.approx(flat([(1.0, 0.9), (3.0, 0.8), (6.0, 0.7)]))
    assert best_so_far(all_failed_search()) == []


def test_time_averaged_weights():
    t_good = next(t for t in gradnorm_search().trials if t.trial_id == "t_good")
    assert time_averaged_weights(t_good) == pytest.approx([(1.1 + 1.3 + 1.45) / 3, (0.9 + 0.7 + 0.55) / 3])


def test_time_averaged_weights_task_order_from_first_record():
    history = [{"epoch": 0, "score": 1.0, "mean_weight/b": 2.0, "mean_weight/a": 0.0},
               {"epoch": 1, "score": 1.0, "mean_weight/a": 1.0, "mean_weight/b": 1.0}]
    assert time_averaged_weights(make_trial("s", "x", {}, history=history)) == [1.5, 0.5]


@pytest.mark.parametrize("history", [[], [{"epoch": 0, "score": 1.0, "test/score": 1.0}]])
def test_time_averaged_weights_without_history_is_one_line_error(history):
    with pytest.raises(ValueError) as info:
        time_averaged_weights(make_trial("s", "t_none", {"method": "equal"}, history=history))
    message = str(info.value)
    assert "\n" not in message and "t_none" in message and "weight" in message


def test_recommended_weights_come_from_the_searches_that_recommend_them():
    gradnorm, grid = gradnorm_search(), grid_search()
    t_good = next(t for t in gradnorm.trials if t.trial_id == "t_good")
    assert recommended_weights([grid, gradnorm, all_failed_search()]) == {"gradnorm": time_averaged_weights(t_good)}
    gradnorm.recommends_static = False
    assert recommended_weights([gradnorm]) == {}
