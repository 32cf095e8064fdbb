"""Delta m% against single-task training: the formula against a hand-worked example and an
independent numpy computation, the reference read off the single-task trials (each at its own
task's best validation epoch among the tested ones), the column in the table and CSV only with
a reference, the primary metrics read from a problem without its data, and a real short sweep
whose comparison run carries Delta m% for every search."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from report_fixtures import trial
from sweeps.report import (PrimaryMetric, SearchSummary, alone_task, cost_rows, delta_m, delta_ms, format_table,
                           primary_metrics, single_task_reference, task_epoch, write_csv)

ACC = PrimaryMetric("digit", "digit/accuracy", True)
MAE = PrimaryMetric("size", "size/mae", False)
PRIMARIES = [ACC, MAE]


def test_hand_worked_example():
    # digit: accuracy 0.90 against 0.95 alone (higher is better): -(0.90 - 0.95) / 0.95 = +0.052632
    # size: MAE 1.2 against 1.0 alone (lower is better): +(1.2 - 1.0) / 1.0 = +0.2
    # Delta m% = 100 * (0.052632 + 0.2) / 2 = 12.6316
    assert delta_m({"digit/accuracy": 0.90, "size/mae": 1.2}, {"digit/accuracy": 0.95, "size/mae": 1.0},
                   PRIMARIES) == pytest.approx(12.631579, abs=1e-6)
    # better than alone in both: negative
    assert delta_m({"digit/accuracy": 0.99, "size/mae": 0.5}, {"digit/accuracy": 0.9, "size/mae": 1.0},
                   PRIMARIES) == pytest.approx(100 * (-(0.09 / 0.9) - 0.5) / 2)
    assert delta_m({"digit/accuracy": 0.9, "size/mae": 1.0}, {"digit/accuracy": 0.9, "size/mae": 1.0}, PRIMARIES) == 0
    # undefined: a missing value, or a reference of 0
    assert delta_m({"digit/accuracy": 0.9}, {"digit/accuracy": 0.9, "size/mae": 1.0}, PRIMARIES) is None
    assert delta_m({"digit/accuracy": 0.9, "size/mae": 1.0}, {"digit/accuracy": 0.9, "size/mae": 0.0}, PRIMARIES) is None


def test_against_numpy_on_random_values():
    rng = np.random.default_rng(7)
    for _ in range(20):
        count = int(rng.integers(1, 12))
        higher = rng.integers(0, 2, size=count).astype(bool)
        values, reference = rng.uniform(0.1, 5, size=count), rng.uniform(0.1, 5, size=count)
        primaries = [PrimaryMetric(f"t{i}", f"t{i}/m", bool(h)) for i, h in enumerate(higher)]
        expected = 100 * np.mean(np.where(higher, -1.0, 1.0) * (values - reference) / reference)
        got = delta_m({p.name: v for p, v in zip(primaries, values)}, {p.name: r for p, r in zip(primaries, reference)},
                      primaries)
        assert got == pytest.approx(expected, rel=1e-12)


def epoch(i, *, score, weights, val, test, compute=10.0):
    """One epoch record: ``val`` and ``test`` are {task: value} (val: normalized error; test: the
    task's primary metric, by the names of PRIMARIES); test values left out where None."""
    record = {"epoch": i, "score": score, "compute_seconds": compute * (i + 1)}
    for (task, weight), primary in zip(weights.items(), PRIMARIES):
        record[f"weight/{task}"] = weight
        record[f"val/{task}/normalized_error"] = val[task]
        if test.get(task) is not None:
            record[f"test/{primary.name}"] = test[task]
    if any(v is not None for v in test.values()):
        record["test/score"] = score
    return record


def single_task_search(seed_values) -> SearchSummary:
    """Per seed, one trial per task alone. Task digit's trial: epoch 1 is the digit's best
    validation (and tested), epoch 2 the best overall score but worse for digit."""
    trials = []
    for seed, (digit_values, size_values) in enumerate(seed_values):
        alone = {"digit": 1.0, "size": 0.0}
        trials.append(trial("stl", f"d{seed}", {"label": "task=digit"}, end=seed, history=[
            epoch(0, score=0.9, weights=alone, val={"digit": 0.30, "size": 1.0}, test={"digit": 0.5, "size": 9.0}),
            epoch(1, score=0.8, weights=alone, val={"digit": 0.10, "size": 1.5},
                  test={"digit": digit_values[0], "size": 9.0}),
            epoch(2, score=0.7, weights=alone, val={"digit": 0.20, "size": 1.2},
                  test={"digit": digit_values[1], "size": 9.0}),
        ]))
        alone = {"digit": 0.0, "size": 1.0}
        trials.append(trial("stl", f"s{seed}", {"label": "task=size"}, end=seed, history=[
            epoch(0, score=0.9, weights=alone, val={"digit": 0.9, "size": 0.5}, test={"digit": 0.1, "size": 5.0}),
            epoch(1, score=0.95, weights=alone, val={"digit": 0.9, "size": 0.3}, test={"digit": None, "size": None}),
            epoch(2, score=0.97, weights=alone, val={"digit": 0.9, "size": 0.4},
                  test={"digit": 0.1, "size": size_values}),
        ]))
    return SearchSummary("stl", "single_task", 1.0, trials, reference=True)


def competitor(name, digit, size, score=0.5) -> SearchSummary:
    both = {"digit": 1.0, "size": 1.0}
    return SearchSummary(name, "equal", 1.0, [trial(name, f"{name}0", {"label": "-"}, history=[
        epoch(0, score=score, weights=both, val={"digit": 0.2, "size": 0.5}, test={"digit": digit, "size": size})])])


def test_the_reference_is_each_task_alone_at_its_own_tasks_best_tested_epoch():
    stl = single_task_search([((0.96, 0.90), 2.0), ((0.94, 0.80), 4.0)])
    assert [alone_task(t) for t in stl.trials] == ["digit", "size", "digit", "size"]
    # digit: epoch 1 (its val error 0.10), not epoch 2 (the best overall score)
    assert task_epoch(stl.trials[0], "digit", "digit/accuracy")["epoch"] == 1
    # size: epoch 1 has its best val error but no test numbers; of the tested ones, epoch 2 (0.4 < 0.5)
    assert task_epoch(stl.trials[1], "size", "size/mae")["epoch"] == 2
    reference = single_task_reference(stl, PRIMARIES)
    assert reference == {"digit/accuracy": pytest.approx(0.95), "size/mae": pytest.approx(3.0)}  # seed means


def test_delta_ms_rows_table_and_csv(tmp_path):
    stl = single_task_search([((0.96, 0.90), 2.0), ((0.94, 0.80), 4.0)])
    good, bad = competitor("good", 0.95, 2.4), competitor("bad", 0.76, 4.5)
    deltas = delta_ms([good, stl, bad], PRIMARIES)
    assert deltas["stl"] == 0.0
    assert deltas["good"] == pytest.approx(100 * (0.0 + (2.4 - 3.0) / 3.0) / 2)  # -10.0
    assert deltas["bad"] == pytest.approx(100 * (-(0.76 - 0.95) / 0.95 + (4.5 - 3.0) / 3.0) / 2)  # 35.0
    metrics = ["digit/accuracy", "size/mae"]
    rows = cost_rows([good, stl, bad], metrics, primaries=PRIMARIES)
    assert [row["delta_m"] for row in rows] == [pytest.approx(-10.0), 0.0, pytest.approx(35.0)]
    reference_row = rows[1]  # no scores of its own; its task metrics are the reference values
    assert reference_row["best_val_score"] is None and reference_row["best_config"] == "each task alone"
    assert (reference_row["test/digit/accuracy"], reference_row["test/size/mae"]) == (pytest.approx(0.95), 3.0)
    assert "vs_best" not in reference_row
    text = format_table(rows, metrics).split("\n\n")[0]  # the headline table
    header = [c.strip() for c in text.splitlines()[0].strip("|").split("|")]
    assert header[5] == "Δm%"
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
             for line in text.splitlines()[2:]}
    assert (cells["good"][5], cells["stl"][5], cells["bad"][5]) == ("-10.00", "0.00", "35.00")
    write_csv(rows, tmp_path / "rows.csv")
    with open(tmp_path / "rows.csv", newline="") as handle:
        back = {row["search"]: row for row in csv.DictReader(handle)}
    assert float(back["bad"]["delta_m"]) == pytest.approx(35.0)
    # without a reference search, or without the primary metrics: no column
    for plain in (cost_rows([good, bad], metrics, primaries=PRIMARIES), cost_rows([good, stl, bad], metrics)):
        assert all("delta_m" not in row for row in plain)
        assert "Δm%" not in format_table(plain, metrics)


def test_primary_metrics_come_from_the_problem_without_its_data():
    from gradnorm_core import make_problem

    digits = make_problem("multidigits", num_train=64, num_val=32, num_test=32)
    assert primary_metrics(digits) == [PrimaryMetric("left", "left/accuracy", True),
                                       PrimaryMetric("right", "right/accuracy", True),
                                       PrimaryMetric("sum", "sum/rmse", False)]
    qm9 = primary_metrics(make_problem("qm9"))
    assert len(qm9) == 11 and all(p.name == f"{p.task}/mae" and not p.higher_is_better for p in qm9)


def test_the_comparison_reads_the_primary_metrics_as_the_trials_recorded_them(capsys):
    """What a trial records at its first report (trainables' primary_metrics_of) reads back as the
    problem declares them, with no problem imported; a record that leaves a task out is one line
    and no Delta m%; a record without any (older) falls back to the spec's problem."""
    from dataclasses import replace

    from gradnorm_core import make_problem
    from sweeps.report import recorded_primary_metrics, sweep_primary_metrics
    from sweeps.spec import parse_spec
    from trainables.trainable import primary_metrics_of

    digits = make_problem("multidigits", num_train=64, num_val=32, num_test=32)
    recorded = json.loads(primary_metrics_of(digits))
    tasks = list(digits.task_names)
    older = competitor("older", 0.9, 1.0)  # written before trials recorded them: no primary
    both = competitor("equal", 0.9, 1.0)
    both.trials = [replace(both.trials[0], primary=recorded)]
    assert recorded_primary_metrics([older, both], tasks) == primary_metrics(digits)
    assert recorded_primary_metrics([older], tasks) is None

    partial = competitor("partial", 0.9, 1.0)
    partial.trials = [replace(partial.trials[0], primary={"left": recorded["left"]})]
    with pytest.raises(ValueError, match="^the trials' problem gives no primary metric .* for task 'right'; "):
        recorded_primary_metrics([partial], tasks)
    spec = parse_spec({"name": "pm", "problem": {"name": "multidigits", "options": {"num_train": 64}},
                       "training": {"epochs": 1}, "searches": {"equal": "equal"}})
    assert sweep_primary_metrics([partial], spec) is None
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("Delta m% left out: no primary metric of every task (ValueError: the trials' problem")
    assert sweep_primary_metrics([older], spec) == primary_metrics(digits)  # the older record: from the problem


def test_a_short_sweep_logs_delta_m_for_every_search(local_ray, tmp_path, new_store):
    from sweeps.runner import run_sweep
    from sweeps.spec import parse_spec

    uri = new_store(tmp_path / "mlflow.db")
    spec = parse_spec({
        "name": "dm", "experiment": "delta-m-test",
        "problem": {"name": "multidigits", "options": {"num_train": 128, "num_val": 64, "num_test": 64}},
        "training": {"epochs": 2, "batch_size": 64, "lr": 0.003, "seed": 0, "device": "cpu"},
        "resources": {"cpu": 1, "max_concurrent": 2},
        "searches": {"stl": "single_task", "equal": "equal",
                     "so": {"type": "static_optuna", "num_trials": 2}},
        "recommended_static": False,
    }, "test")
    state = run_sweep(spec, storage=tmp_path / "runs", tracking_uri=uri)
    client = MlflowClient(uri)
    metrics = client.get_run(state.comparison_run_id).data.metrics
    assert metrics["stl/delta_m"] == 0.0
    assert {"equal/delta_m", "so/delta_m", "so/to_grid_best"} & set(metrics) == {"equal/delta_m", "so/delta_m"}
    local = client.download_artifacts(state.comparison_run_id, "delta_m_reference.json", str(tmp_path))
    reference = json.loads(open(local).read())
    assert list(reference) == ["left", "right", "sum"]
    assert reference["sum"]["metric"] == "sum/rmse" and reference["sum"]["higher_is_better"] is False
    # the equal search's Delta m%, recomputed here from its trial's logged test metrics
    from sweeps.report import sweep_summaries

    summaries = {s.name: s for s in sweep_summaries(client, state, spec)}
    equal = summaries["equal"].trials[0].best_epoch
    terms = [(-1 if entry["higher_is_better"] else 1) * (equal[f"test/{entry['metric']}"] - entry["single_task"])
             / entry["single_task"] for entry in reference.values()]
    assert metrics["equal/delta_m"] == pytest.approx(100 * sum(terms) / 3, rel=1e-9)
    table = client.download_artifacts(state.comparison_run_id, "cost_table.md", str(tmp_path))
    assert "Δm%" in open(table, encoding="utf-8").read()
