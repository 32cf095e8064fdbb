"""sweeps.report.table: the cost table's rows, Markdown and CSV, every number checked against a
plain-Python recomputation on hand-built data, and trials that did not end as planned shown
beside the results they are left out of."""

from __future__ import annotations

import csv
import math
import statistics

import pytest

from report_fixtures import (TASK_METRICS, all_failed_search, epoch, grid_search, gradnorm_search,
                             independent_best, trial)
from sweeps.report import OUTCOME_FIELDS, OUTCOMES, SearchSummary, cost_rows, format_table, trials_cell, write_csv


@pytest.fixture
def gradnorm() -> SearchSummary:
    return gradnorm_search()


@pytest.fixture
def grid() -> SearchSummary:
    return grid_search()


@pytest.fixture
def all_failed() -> SearchSummary:
    return all_failed_search()


def cells_of(table: str, which: int = 0) -> dict[str, list[str]]:
    """The cells of each row of the ``which``-th table (0: the headline), by search."""
    lines = table.split("\n\n")[which].splitlines()
    return {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[2:]}


def header_of(table: str, which: int = 0) -> list[str]:
    return [c.strip() for c in table.split("\n\n")[which].splitlines()[0].strip("|").split("|")]


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
    headline, details = text.split("\n\n")
    for table in (headline, details):
        lines = table.splitlines()
        assert len(lines) == 2 + len(rows) and set(lines[1]) <= set("|-:")
        # padded: every line has the same width and the pipes line up
        assert len({len(line) for line in lines}) == 1
        assert len({tuple(i for i, c in enumerate(line) if c == "|") for line in lines}) == 1
    # the headline: what a preview pane shows uncut; every metric says whether it is validation or test
    assert header_of(text) == ["search", "trials", "compute s, %", "val score", "test score",
                               "reached best", "best config"]
    cells = cells_of(text)
    # reached: t_failed (5 s) then t_good (20 s, 0.30 <= the grid's 0.70) over the grid's 6 s
    assert cells["gradnorm"] == ["gradnorm", "4 (1 failed)", "95.0, 1,583%", "0.3000", "0.3500", "417%",
                                 "alpha=0.12"]
    assert cells["grid"][1:3] == ["3 of 27", "6.0, 100%"]
    assert cells["grid"][-2:] == ["100%", "w=[1, 2]"]  # its best, 0.70, came with its last trial
    assert cells["full"][1] == "3 of 3"
    assert cells["equal"] == ["equal", "2 (2 failed)", "10.0, 167%", "-", "-", "never: no result", "-"]
    # the rest: every cost, the wall-clock, the shares, the full grid (projected where it is), the task metrics
    assert header_of(text, 1) == ["search", "trials", "compute s", "wall s", "of grid, compute s",
                                  "of full grid, compute s", "full grid", "test left/accuracy", "test right/accuracy"]
    rest = cells_of(text, 1)
    assert rest["grid"][1:4] == ["3 of 27 (sampled)", "6.0", "12.4"]
    assert rest["grid"][6] == "27 points, 54.0 compute s (projected)"  # 27 points at 6 s / 3
    assert rest["full"][6] == "3 points, 6.0 compute s"
    assert rest["gradnorm"][4:6] == ["1,583%", "176%"]  # 95 s over the grid's 6 and the full grid's 54
    assert rest["gradnorm"][-2:] == ["0.9100", "0.8700"]


def test_the_headline_never_has_more_than_nine_columns_and_says_why_never():
    """Every optional column at once (Δm%, the reach, vs best): still 9; "never" says why."""
    seeds = [trial("g", f"g{k}", {"label": "w=1"}, compute=1.0, end=k, history=[epoch(1, 0.5 + 0.01 * k, 0.5)])
             for k in range(2)]
    grid = SearchSummary("grid", "static_grid", 1.0, seeds, grid_size=4)
    worse = SearchSummary("worse", "gradnorm", 1.0, [
        trial("worse", f"w{k}", {"label": "alpha=1"}, compute=1.0, end=5 + k, history=[epoch(1, 0.9 + 0.01 * k, 0.9)])
        for k in range(2)])
    single = SearchSummary("single", "equal", 1.0, [trial("single", "s", {}, end=9, history=[epoch(1, 0.8, 0.8)])])
    stl = SearchSummary("stl", "single_task", 1.0, [trial("stl", "t", {}, end=9, history=[epoch(1, 0.8, 0.8)])],
                        reference=True)
    rows = cost_rows([grid, worse, single, stl], TASK_METRICS)
    for row in rows:
        row["delta_m"] = 1.0
    header = header_of(format_table(rows, TASK_METRICS))
    assert len(header) == 9 and header[5] == "Δm%" and header[7] == "vs best"
    cells = cells_of(format_table(rows, TASK_METRICS))
    assert cells["worse"][6] == "never: not within noise" and cells["single"][6] == "never: 1 seed, worse"
    assert cells["stl"][6] == "-"


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
    union = [key for i, row in enumerate(rows) for key in row if all(key not in r for r in rows[:i])]
    assert list(back[0]) == list(dict.fromkeys(union))  # every key, first-seen order
    assert set(back[0]) == set(rows[1])  # the grid row has every key
    for original, read in zip(rows, back):
        for key, value in original.items():
            if value is None:
                assert read[key] == ""
            elif isinstance(value, float):
                assert float(read[key]) == value
            else:
                assert read[key] == str(value)
    assert back[0]["grid_size"] == ""  # a key missing from a row is an empty cell


# ----------------------------------------------------------------------------- outcomes


def seeded(label: str, scores, outcomes, *, search="s", start=0):
    """One configuration's trials, one per seed: ``scores[i]`` at its best epoch, ended as
    ``outcomes[i]`` (a diverged trial's history holds the NaN that ended it)."""
    out = []
    for i, (score, outcome) in enumerate(zip(scores, outcomes)):
        status = {"finished": "FINISHED", "stopped": "FINISHED", "failed": "FAILED", "killed": "KILLED",
                  "diverged": "FAILED"}[outcome]
        history = [epoch(1, score, score + 0.5)]
        if outcome == "diverged":
            history.append(epoch(2, math.nan, math.nan))
        out.append(trial(search, f"{label}-{start + i}", {"label": label}, status=status, end=float(start + i),
                         history=history, outcome=outcome))
    return out


def test_one_count_column_per_outcome_and_every_trials_compute():
    trials = (seeded("a", [0.2, 0.3, 0.4], ["finished", "stopped", "failed"])
              + seeded("b", [0.1, 0.5, 0.6], ["diverged", "killed", "stopped"], start=3))
    row = cost_rows([SearchSummary("s", "gradnorm", 1.0, trials)], [])[0]
    by_hand = {outcome: sum(t.outcome == outcome for t in trials) for outcome in OUTCOMES}
    assert by_hand == {"finished": 1, "stopped": 2, "failed": 1, "diverged": 1, "killed": 1}
    assert {field: row[field] for field in OUTCOME_FIELDS} == {f"outcome/{k}": v for k, v in by_hand.items()}
    assert (row["trials"], row["finished"], row["stopped_early"]) == (6, 3, 2)
    assert row["compute_seconds"] == pytest.approx(sum(t.compute_seconds for t in trials))
    assert row["stopped_compute_seconds"] == pytest.approx(20.0)


def test_a_diverged_seed_is_left_out_of_the_mean_and_said_beside_it():
    # b's diverged seed had the lowest score before its NaN; a has the better mean of whole seeds
    trials = (seeded("a", [0.150, 0.156, 0.148], ["finished", "diverged", "finished"])
              + seeded("b", [0.010, 0.30, 0.32], ["diverged", "finished", "finished"], start=3))
    search = SearchSummary("s", "gradnorm", 1.0, trials)
    row = cost_rows([search], [])[0]
    assert row["best_config"] == "a"
    assert row["best_val_score"] == pytest.approx(statistics.fmean([0.150, 0.148]))
    assert row["best_val_std"] == pytest.approx(statistics.stdev([0.150, 0.148]))
    assert row["best_test_score"] == pytest.approx(statistics.fmean([0.650, 0.648]))
    assert row["seeds"] == 3 and row["best_left_out"] == "1 of 3 diverged"
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in row.values())
    table = format_table([row], [])
    assert "0.1490 ± 0.0014 (1 of 3 diverged)" in table
    assert cells_of(table)["s"][1] == "6 (2 diverged)"
    assert "nan" not in table.lower()


def test_an_outcome_tag_of_finished_with_a_nan_score_is_diverged_not_averaged():
    trials = [*seeded("a", [0.2], ["finished"]),
              trial("s", "a-1", {"label": "a"}, outcome="finished", history=[epoch(1, 0.1, 0.6), epoch(2, math.inf, 0.1)])]
    row = cost_rows([SearchSummary("s", "gradnorm", 1.0, trials)], [])[0]
    assert trials[1].outcome == "diverged"
    assert row["best_val_score"] == 0.2 and row["best_left_out"] == "1 of 2 diverged"


def test_the_trials_cell_names_what_did_not_end_as_planned():
    trials = (seeded("w1", [0.1] * 3, ["stopped", "stopped", "failed"])
              + seeded("w2", [0.2] * 3, ["finished", "killed", "stopped"], start=3)
              + seeded("w3", [0.3] * 3, ["finished", "diverged", "finished"], start=6))
    grid = SearchSummary("grid", "static_grid", 1.0, trials, grid_size=3)
    row = cost_rows([grid], [])[0]
    assert trials_cell(row) == "9 = 3 of 3 x 3 seeds (3 stopped early, 1 failed, 1 diverged, 1 killed)"
    plain = cost_rows([SearchSummary("one", "dwa", 1.0, seeded("-", [0.1, 0.2], ["finished", "failed"]))], [])[0]
    assert trials_cell(plain) == "2 (1 failed)"
    assert trials_cell(cost_rows([SearchSummary("e", "equal", 1.0, seeded("-", [0.1], ["finished"]))], [])[0]) == "1"


def test_a_search_whose_every_trial_diverged_has_no_result():
    row = cost_rows([SearchSummary("s", "dwa", 1.0, seeded("-", [0.1, 0.2], ["diverged", "diverged"]))], [])[0]
    assert row["best_val_score"] is None and row["best_config"] is None and row["best_left_out"] is None
    assert cells_of(format_table([row], []))["s"][1:2] == ["2 (2 diverged)"]


def test_outcome_counts_reach_the_csv(tmp_path):
    trials = seeded("a", [0.2, 0.3, 0.4], ["finished", "failed", "diverged"])
    rows = cost_rows([SearchSummary("s", "gradnorm", 1.0, trials)], [])
    write_csv(rows, tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="") as handle:
        (back,) = list(csv.DictReader(handle))
    assert {field: back[field] for field in OUTCOME_FIELDS} == {
        "outcome/finished": "1", "outcome/stopped": "0", "outcome/failed": "1", "outcome/diverged": "1",
        "outcome/killed": "0"}
    assert back["best_left_out"] == "1 of 3 failed, 1 of 3 diverged"
