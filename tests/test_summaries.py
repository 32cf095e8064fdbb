"""sweeps.report.summaries: each trial's outcome, from its run's tag or else from its status, and
a search read back from a real MLflow store (SQLite) through trainables' functions."""

from __future__ import annotations

import math

import pytest
from mlflow.tracking import MlflowClient

from sweeps.report import (
    OUTCOMES,
    TrialSummary,
    cost_rows,
    outcome_from_status,
    search_summary,
    task_metric_names,
    trials_cell,
)
from sweeps.state import SweepState
from trainables import OUTCOME, STOPPED_EARLY, create_comparison_run, create_search_run, finish_run, log_epoch
from trainables.tracking import create_trial_run


def summary(status="FINISHED", outcome="", history=()):
    return TrialSummary(search="s", trial_id="t", config={}, status=status, compute_seconds=1.0, device="cpu",
                        end_time=0.0, history=list(history), outcome=outcome)


@pytest.mark.parametrize("status, stopped, expected", [
    ("FINISHED", False, "finished"), ("FINISHED", True, "stopped"), ("FAILED", False, "failed"),
    ("KILLED", False, "killed"), ("RUNNING", False, "killed"), ("ERROR", False, "failed"),
])
def test_the_outcome_from_a_status_alone(status, stopped, expected):
    assert outcome_from_status(status, stopped) == expected
    assert expected in OUTCOMES


@pytest.mark.parametrize("key", ["score", "test/score", "train/left/loss", "val/right/loss"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_or_score_makes_a_finished_trial_diverged(key, value):
    record = {"epoch": 1, "score": 0.5, "test/score": 0.5, key: value}
    assert summary(history=[{"epoch": 0, "score": 0.4}, record]).outcome == "diverged"
    assert summary(outcome="stopped", history=[record]).outcome == "diverged"
    assert summary(status="FAILED", history=[record]).outcome == "failed"  # it failed first
    assert not summary(history=[record]).has_result


def test_other_non_finite_metrics_and_a_bad_outcome():
    record = {"epoch": 1, "score": 0.5, "val/left/normalized_error": math.inf}
    assert summary(history=[record]).outcome == "finished"  # no loss, no score: not divergence
    with pytest.raises(ValueError) as info:
        summary(outcome="crashed")
    assert "\n" not in str(info.value) and "outcome" in str(info.value) and "finished" in str(info.value)


def epoch_record(epoch: int, score: float) -> dict:
    return {"epoch": epoch, "score": score, "test/score": score + 0.1, "test/left/accuracy": 1 - score,
            "test/left/loss": score, "val/left/normalized_error": score, "val/left/accuracy": 1 - score,
            "weight/left": 1.0, "mean_weight/left": 1.0, "compute_seconds": 2.0 * epoch, "reported_at": 1e9 + epoch}


def test_a_search_read_back_from_mlflow(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("report", artifact_location=(tmp_path / "a").as_uri())
    comparison = create_comparison_run(client, experiment, "c", "sweep", str(tmp_path))
    parent = create_search_run(client, experiment, comparison, "sweep", "gn", "gradnorm", {})
    # (status, tags, epochs): each way a trial ends, as the record says it
    ends = {
        "t_finished": ("FINISHED", {}, [0.5, 0.3]),
        "t_stopped": ("FINISHED", {STOPPED_EARLY: "true"}, [0.6]),
        "t_failed": ("FAILED", {}, [0.2]),
        "t_killed": ("KILLED", {}, [0.1]),
        "t_diverged": ("FAILED", {OUTCOME: "diverged"}, [0.05]),
        "t_tagged": ("FINISHED", {OUTCOME: "stopped"}, [0.4]),
    }
    for trial_id, (status, tags, scores) in ends.items():
        run = create_trial_run(client, experiment, parent, trial_id, "gn", "sweep",
                               {"label": f"alpha={len(trial_id)}", "alpha": 1.0}, start_time=1e9)
        for epoch, score in enumerate(scores, start=1):
            log_epoch(client, run.info.run_id, epoch_record(epoch, score))
        for key, value in tags.items():
            client.set_tag(run.info.run_id, key, value)
        finish_run(client, run.info.run_id, status, end_time=1e9 + 10, error="boom" if status == "FAILED" else None)
    state = SweepState(directory=tmp_path, spec={}, spec_source="", tracking_uri=uri, sweep_id="sweep",
                       experiment_id=experiment, comparison_run_id=comparison, searches={"gn": {"parent_run_id": parent}})

    search = search_summary(client, state, "gn", "gradnorm")
    trials = {t.trial_id: t for t in search.trials}
    assert {k: t.outcome for k, t in trials.items()} == {
        "t_finished": "finished", "t_stopped": "stopped", "t_failed": "failed", "t_killed": "killed",
        "t_diverged": "diverged", "t_tagged": "stopped"}
    assert search.recommends_static and search.kind == "gradnorm"
    finished = trials["t_finished"]
    assert finished.config == {"label": "alpha=10", "alpha": 1.0}
    assert [r["score"] for r in finished.history] == [0.5, 0.3] and finished.compute_seconds == 4.0
    assert "val/left/accuracy" not in finished.history[0]  # only what the report reads is fetched
    assert finished.best_epoch["epoch"] == 2 and trials["t_failed"].error == "boom"
    assert (finished.start_time, finished.end_time) == (1e9, 1e9 + 10)
    assert task_metric_names([search]) == ["left/accuracy"]  # test metrics, not losses
    row = cost_rows([search], [])[0]
    assert (row["trials"], row["finished"], row["stopped_early"]) == (6, 3, 2)
    assert trials_cell(row) == "6 (2 stopped early, 1 failed, 1 diverged, 1 killed)"
    assert row["best_val_score"] == 0.3  # the lower scores of the trials without a result are not
