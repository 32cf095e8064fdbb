"""sweeps.report: every number checked against a plain-Python recomputation on hand-built data."""

from __future__ import annotations

import csv
import math

import pytest

from sweeps.report import (
    best_so_far,
    best_trial,
    cost_rows,
    log_x,
    format_table,
    plot_best_so_far,
    write_csv,
)
from sweeps.results import SearchSummary, TrialSummary
from sweeps.weights import plot_weight_trajectories, time_averaged_weights

TASKS = ["left", "right"]
TASK_METRICS = ["left/accuracy", "right/accuracy"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def epoch(i: int, score: float, test: float, weights=(1.0, 1.0), mean=(1.0, 1.0), acc=(0.5, 0.5)):
    record = {"epoch": i, "score": score, "test/score": test, "compute_seconds": 10.0 * (i + 1)}
    for task, w, m, a in zip(TASKS, weights, mean, acc):
        record[f"weight/{task}"] = w
        record[f"mean_weight/{task}"] = m
        record[f"test/{task}/accuracy"] = a
    return record


def trial(search, trial_id, config, *, status="FINISHED", compute=10.0, end=0.0, history=()):
    return TrialSummary(search=search, trial_id=trial_id, config=config, status=status,
                        compute_seconds=compute, device="cpu", end_time=end, history=list(history),
                        error=None if status == "FINISHED" else "boom")


@pytest.fixture
def gradnorm() -> SearchSummary:
    """Alpha search. t_good has the best validation score (epoch 1) but not the best test score;
    t_test_bait has a better test score with a worse validation score; t_failed reached the best
    validation score of all before failing, and must be ignored for scores."""
    trials = [
        trial("gradnorm", "t_test_bait", {"method": "gradnorm", "alpha": 1.5, "label": "alpha=1.5"}, compute=30.0, end=300.0,
              history=[epoch(0, 0.60, 0.05, acc=(0.99, 0.98)), epoch(1, 0.50, 0.04, acc=(0.99, 0.99))]),
        trial("gradnorm", "t_good", {"method": "gradnorm", "alpha": 0.12, "label": "alpha=0.12"}, compute=20.0, end=200.0,
              history=[epoch(0, 0.45, 0.40, weights=(1.2, 0.8), mean=(1.1, 0.9)),
                       epoch(1, 0.30, 0.35, weights=(1.4, 0.6), mean=(1.3, 0.7), acc=(0.91, 0.87)),
                       epoch(2, 0.32, 0.20, weights=(1.5, 0.5), mean=(1.45, 0.55), acc=(0.95, 0.96))]),
        trial("gradnorm", "t_failed", {"method": "gradnorm", "alpha": 3.0, "label": "alpha=3.0"}, status="FAILED",
              compute=5.0, end=100.0, history=[epoch(0, 0.01, 0.01)]),
        trial("gradnorm", "t_late", {"method": "gradnorm", "alpha": 0.5, "label": "alpha=0.5"}, compute=40.0, end=400.0,
              history=[epoch(0, 0.70, 0.70), epoch(1, 0.31, 0.31)]),
    ]
    return SearchSummary(name="gradnorm", kind="gradnorm", wall_seconds=55.5, trials=trials)


@pytest.fixture
def grid() -> SearchSummary:
    trials = [
        trial("grid", f"g{i}", {"method": "static", "weights": [1.0, w], "label": f"weights=[1, {w:g}]"}, compute=1.0 + i, end=float(i),
              history=[epoch(0, 0.9 - 0.1 * i, 0.8)])
        for i, w in enumerate([0.5, 1.0, 2.0])
    ]
    return SearchSummary(name="grid", kind="static_grid", wall_seconds=12.4, trials=trials,
                         grid_size=27, sampled=True)


@pytest.fixture
def all_failed() -> SearchSummary:
    trials = [trial("equal", "e0", {"method": "equal"}, status="FAILED", compute=7.0, end=1.0),
              trial("equal", "e1", {"method": "equal"}, status="ERROR", compute=3.0, end=2.0)]
    return SearchSummary(name="equal", kind="equal", wall_seconds=9.0, trials=trials)


def independent_best(search):
    """Recompute the selection by hand: lowest validation score over finished trials' epochs."""
    best = None
    for t in search.trials:
        if t.status != "FINISHED":
            continue
        for record in t.history:
            if best is None or record["score"] < best[1]["score"]:
                best = (t, record)
    return best


# ----------------------------------------------------------------------------- selection


def test_best_trial_selects_on_validation_not_test(gradnorm):
    chosen = best_trial(gradnorm)
    expected_trial, _ = independent_best(gradnorm)
    assert chosen is expected_trial
    assert chosen.trial_id == "t_good"
    # the bait has the better test score, the failed trial the better validation score
    bait = next(t for t in gradnorm.trials if t.trial_id == "t_test_bait")
    assert min(r["test/score"] for r in bait.history) < min(r["test/score"] for r in chosen.history)


def test_best_trial_none_without_finished(all_failed):
    assert best_trial(all_failed) is None
    assert best_trial(SearchSummary(name="x", kind="equal", wall_seconds=0.0, trials=[])) is None


# ----------------------------------------------------------------------------- rows


def test_cost_rows_match_hand_computation(gradnorm, grid, all_failed):
    searches = [gradnorm, grid, all_failed]
    rows = cost_rows(searches, TASK_METRICS)
    assert [r["search"] for r in rows] == ["gradnorm", "grid", "equal"]
    for row, search in zip(rows, searches):
        assert row["kind"] == search.kind
        assert row["trials"] == len(search.trials)
        assert row["finished"] == len([t for t in search.trials if t.status == "FINISHED"])
        total = 0.0
        for t in search.trials:
            total += t.compute_seconds
        assert row["compute_seconds"] == pytest.approx(total)
        assert row["wall_seconds"] == search.wall_seconds
        best = independent_best(search)
        if best is None:
            for key in ("best_val_score", "best_test_score", "best_trial", "best_config",
                        "test/left/accuracy", "test/right/accuracy"):
                assert row[key] is None
            continue
        t, record = best
        assert row["best_val_score"] == record["score"]
        assert row["best_test_score"] == record["test/score"]
        assert row["best_trial"] == t.trial_id
        for name in TASK_METRICS:
            assert row[f"test/{name}"] == record[f"test/{name}"]


def test_cost_rows_specifics(gradnorm, grid, all_failed):
    g, s, e = cost_rows([gradnorm, grid, all_failed], TASK_METRICS)
    # failed trial counts in trials and compute, not in scores
    assert (g["trials"], g["finished"], g["compute_seconds"]) == (4, 3, 95.0)
    assert (g["best_val_score"], g["best_test_score"], g["best_trial"]) == (0.30, 0.35, "t_good")
    assert (g["test/left/accuracy"], g["test/right/accuracy"]) == (0.91, 0.87)
    assert g["best_config"] == "alpha=0.12"
    assert "grid_size" not in g and "sampled" not in g
    assert s["best_config"] == "weights=[1, 2]"
    assert (s["grid_size"], s["sampled"]) == (27, True)
    assert (e["trials"], e["finished"], e["compute_seconds"]) == (2, 0, 10.0)
    assert e["best_config"] is None


def test_best_config_is_the_search_types_label_or_a_dash():
    nested = SearchSummary("n", "gradnorm", 1.0, [trial("n", "a", {"alpha": 0.25, "label": "alpha=0.25"},
                                                        history=[epoch(0, 1.0, 1.0)])])
    plain = SearchSummary("p", "equal", 1.0, [trial("p", "b", {"method": "equal"},
                                                    history=[epoch(0, 1.0, 1.0)])])
    assert cost_rows([nested], [])[0]["best_config"] == "alpha=0.25"
    assert cost_rows([plain], [])[0]["best_config"] == "-"


# ----------------------------------------------------------------------------- table


def test_format_table(gradnorm, grid, all_failed):
    unsampled = SearchSummary("full", "static_grid", 3.0, list(grid.trials), grid_size=3, sampled=False)
    rows = cost_rows([gradnorm, grid, all_failed, unsampled], TASK_METRICS)
    text = format_table(rows, TASK_METRICS)
    lines = text.splitlines()
    assert len(lines) == 2 + len(rows)
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["search", "trials", "compute s", "wall s", "best val score", "test score",
                      *TASK_METRICS, "best config"]
    assert set(lines[1]) <= set("|-:")
    # padded: every line has the same width and the pipes line up
    assert len({len(line) for line in lines}) == 1
    assert len({tuple(i for i, c in enumerate(line) if c == "|") for line in lines}) == 1
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
             for line in lines[2:]}
    assert cells["gradnorm"] == ["gradnorm", "4", "95.0", "55.5", "0.3000", "0.3500", "0.9100",
                                 "0.8700", "alpha=0.12"]
    assert cells["grid"][1] == "3 of 27 (sampled)"
    assert cells["grid"][2:4] == ["6.0", "12.4"]
    assert cells["grid"][-1] == "weights=[1, 2]"
    assert cells["full"][1] == "3 of 3"
    assert cells["equal"] == ["equal", "2", "10.0", "9.0", "-", "-", "-", "-", "-"]


def test_format_table_small_and_large_numbers():
    t = trial("s", "a", {"alpha": 1.0}, compute=12345.67, history=[epoch(0, 1.234e-5, 2.0)])
    row = cost_rows([SearchSummary("s", "gradnorm", 98765.4, [t])], [])[0]
    text = format_table([row], [])
    assert "1.234e-05" in text and "2.0000" in text
    assert "12,345.7" in text and "98,765.4" in text


# ----------------------------------------------------------------------------- csv


def test_csv_round_trip(tmp_path, gradnorm, grid, all_failed):
    rows = cost_rows([gradnorm, grid, all_failed], TASK_METRICS)
    path = tmp_path / "sub" / "report.csv"
    write_csv(rows, path)
    with open(path, newline="") as handle:
        back = list(csv.DictReader(handle))
    assert len(back) == len(rows)
    assert list(back[0]) == list(rows[1])  # the grid row has every key, first-seen order
    for original, read in zip(rows, back):
        for key, value in original.items():
            if value is None:
                assert read[key] == ""
            elif isinstance(value, float):
                assert float(read[key]) == value
            else:
                assert read[key] == str(value)
    assert back[0]["grid_size"] == ""  # a key missing from a row is an empty cell


# ----------------------------------------------------------------------------- best so far


def flat(points):
    return [v for point in points for v in point]


def test_best_so_far_orders_by_end_time(gradnorm):
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


def test_best_so_far_improving_and_empty(grid, all_failed):
    # grid trials end in order 0, 1, 2 with scores 0.9, 0.8, 0.7 and compute 1, 2, 3
    assert flat(best_so_far(grid)) == pytest.approx(flat([(1.0, 0.9), (3.0, 0.8), (6.0, 0.7)]))
    assert best_so_far(all_failed) == []


# ----------------------------------------------------------------------------- weights


def test_time_averaged_weights(gradnorm):
    t_good = next(t for t in gradnorm.trials if t.trial_id == "t_good")
    assert time_averaged_weights(t_good) == pytest.approx([(1.1 + 1.3 + 1.45) / 3, (0.9 + 0.7 + 0.55) / 3])


def test_time_averaged_weights_task_order_from_first_record():
    history = [{"epoch": 0, "score": 1.0, "mean_weight/b": 2.0, "mean_weight/a": 0.0},
               {"epoch": 1, "score": 1.0, "mean_weight/a": 1.0, "mean_weight/b": 1.0}]
    assert time_averaged_weights(trial("s", "x", {}, history=history)) == [1.5, 0.5]


@pytest.mark.parametrize("history", [[], [{"epoch": 0, "score": 1.0, "test/score": 1.0}]])
def test_time_averaged_weights_without_history_is_one_line_error(history):
    with pytest.raises(ValueError) as info:
        time_averaged_weights(trial("s", "t_none", {"method": "equal"}, history=history))
    message = str(info.value)
    assert "\n" not in message and "t_none" in message and "weight" in message


# ----------------------------------------------------------------------------- plots


def assert_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01  # something was drawn, not a blank canvas


def test_plot_best_so_far(tmp_path, gradnorm, grid, all_failed):
    path = tmp_path / "best_so_far.png"
    plot_best_so_far([gradnorm, grid, all_failed], path)
    assert_png(path)


def test_plot_best_so_far_log_axis(tmp_path):
    # compute spans 1 s .. 10,000 s: more than two decades
    trials = [trial("w", f"t{i}", {"alpha": 1.0}, compute=c, end=float(i), history=[epoch(0, 1.0 / (i + 1), 1.0)])
              for i, c in enumerate([1.0, 99.0, 9900.0])]
    path = tmp_path / "log.png"
    plot_best_so_far([SearchSummary("wide", "gradnorm", 1.0, trials)], path)
    assert_png(path)
    assert log_x([1.0, 100.0, 10_000.0]) and log_x([0.0, 1.0, 101.0])
    assert not log_x([1.0, 100.0]) and not log_x([0.0]) and not log_x([])


def test_plot_weight_trajectories(tmp_path, gradnorm):
    path = tmp_path / "weights.png"
    plot_weight_trajectories(best_trial(gradnorm), path)
    assert_png(path)


def test_plot_weight_trajectories_without_weights_is_one_line_error(tmp_path):
    with pytest.raises(ValueError) as info:
        plot_weight_trajectories(trial("s", "t_none", {}, history=[{"epoch": 0, "score": 1.0}]),
                                 tmp_path / "w.png")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "w.png").exists()


def test_report_imports_neither_ray_nor_mlflow_nor_pyplot():
    import ast
    import inspect

    import sweeps.report

    tree = ast.parse(inspect.getsource(sweeps.report))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
    assert not {n for n in names if n.split(".")[0] in ("ray", "mlflow")}
    assert "matplotlib.pyplot" not in names
