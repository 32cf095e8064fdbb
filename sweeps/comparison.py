"""The comparison of a finished sweep, rebuilt from MLflow alone: each search's trials and what
they cost, the cost table and plots on the comparison run, and the sweep's own timing."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from trainables import DEVICE, ERROR_TAG, STOPPED_EARLY, TRIAL_ID, decode_params, metric_history, trial_runs

from . import pareto, report, weights
from .searches import SEARCH_TYPES
from .results import SearchSummary, TrialSummary
from .searcher import RECOMMENDED, RECOMMENDED_TYPE
from .spec import SweepSpec
from .state import SweepState

ROW_METRICS = ("trials", "finished", "stopped_early", "compute_seconds", "stopped_compute_seconds", "wall_seconds",
               "best_val_score", "best_test_score")


def search_summary(client: MlflowClient, state: SweepState, name: str, kind: str) -> SearchSummary:
    """One search rebuilt from MLflow: its trial runs and their metric histories. Its wall-clock
    is the span from its first trial's start to its last trial's end (searches overlap)."""
    entry = state.searches[name]
    trials = []
    for run in trial_runs(client, state.experiment_id, entry["parent_run_id"]):
        history = metric_history(client, run, report.reads_metric)
        start = run.info.start_time / 1000
        end = (run.info.end_time or run.info.start_time) / 1000
        trials.append(TrialSummary(
            search=name, trial_id=run.data.tags.get(TRIAL_ID, run.info.run_id),
            config=decode_params(run.data.params), status=run.info.status,
            compute_seconds=history[-1].get("compute_seconds", 0.0) if history else 0.0,
            device=run.data.tags.get(DEVICE, "?"),
            end_time=end, history=history, error=run.data.tags.get(ERROR_TAG),
            stopped_early=run.data.tags.get(STOPPED_EARLY) == "true",
            start_time=start,
        ))
    return SearchSummary(name=name, kind=kind, wall_seconds=span(trials), trials=trials,
                         grid_size=entry.get("grid_size"), sampled=bool(entry.get("sampled", False)))


def span(trials: list[TrialSummary]) -> float:
    """Seconds from the first trial's start to the last trial's end (0 without trials)."""
    return max(t.end_time for t in trials) - min(t.start_time for t in trials) if trials else 0.0


def sweep_summaries(client: MlflowClient, state: SweepState, spec: SweepSpec) -> list[SearchSummary]:
    kinds = {search.name: search.type for search in spec.searches} | {RECOMMENDED: RECOMMENDED_TYPE}
    return [search_summary(client, state, name, kinds.get(name, "?")) for name in state.searches]


def sweep_timing(summaries: list[SearchSummary], state: SweepState) -> dict[str, float]:
    """``trial_phase_seconds`` (first trial start to last trial end, all searches),
    ``compute_seconds`` (summed over trials) and ``wall_seconds`` (the Tune experiment's, summed over
    the runs of a resumed sweep)."""
    trials = [trial for summary in summaries for trial in summary.trials]
    return {"trial_phase_seconds": span(trials), "compute_seconds": sum(t.compute_seconds for t in trials),
            "wall_seconds": state.wall_seconds}


def task_metric_names(summaries: list[SearchSummary]) -> list[str]:
    """``<task>/<metric>`` test metrics present in the trials, other than losses."""
    names: list[str] = []
    for summary in summaries:
        for trial in summary.trials:
            for record in [trial.best_epoch] if trial.best_epoch is not None else []:  # has test/...
                for key in record:
                    if key.startswith("test/") and key.count("/") == 2 and not key.endswith("/loss"):
                        name = key[len("test/"):]
                        if name not in names:
                            names.append(name)
    return names


def build_comparison(state: SweepState, spec: SweepSpec, client: MlflowClient) -> str:
    """The cost table and plots, logged to the comparison run and printed; returns the table."""
    summaries = sweep_summaries(client, state, spec)
    metrics = task_metric_names(summaries)
    rows = report.cost_rows(summaries, metrics, fronts=pareto.front_statuses(summaries))
    # the terminal table keeps the readable metrics; the CSV has them all
    table = report.format_table(rows, [m for m in metrics if not m.endswith("/normalized_error")])
    run_id = state.comparison_run_id
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        (folder / "cost_table.md").write_text(table + "\n")
        report.write_csv(rows, folder / "cost_table.csv")
        report.plot_best_so_far(summaries, folder / "best_so_far.png")
        pareto.plot_pareto(summaries, folder / "pareto.png")
        for summary in summaries:
            best = report.best_trial(summary)
            if getattr(SEARCH_TYPES.get(summary.kind), "recommends_static", False) and best is not None:
                weights.plot_weight_trajectories(best, folder / f"weights_{summary.name}.png")
                averaged = weights.time_averaged_weights(best)
                (folder / f"recommended_weights_{summary.name}.json").write_text(json.dumps(averaged))
        client.log_artifacts(run_id, str(folder))
    logged = client.get_run(run_id).data.metrics  # a rebuilt report logs no value twice
    values = {f"sweep/{key}": value for key, value in sweep_timing(summaries, state).items()}
    for row in rows:
        for key in ROW_METRICS:
            value = row.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[f"{row['search']}/{key}"] = float(value)
    for name, value in values.items():
        if name not in logged:
            client.log_metric(run_id, name, value)
    print(table, flush=True)
    return table
