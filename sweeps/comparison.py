"""The comparison of a finished sweep, rebuilt from MLflow alone: each search's trials and what
they cost, the cost table and plots on the comparison run, and the sweep's own timing."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from trainables import log_comparison

from . import report
from .spec import SweepSpec
from .state import SweepState

ROW_METRICS = ("trials", "finished", "stopped_early", *report.OUTCOME_FIELDS, "compute_seconds",
               "stopped_compute_seconds", "compute_with_source_seconds", "wall_seconds", "best_val_score",
               "best_test_score", "delta_m", "grid_compute_fraction", "to_grid_best")


def build_comparison(state: SweepState, spec: SweepSpec, client: MlflowClient) -> str:
    """The cost table and plots, logged to the comparison run and printed; returns the table."""
    summaries = report.sweep_summaries(client, state, spec)
    metrics = report.task_metric_names(summaries)
    # Delta m%'s primary metrics, as the trials recorded them, when a single-task reference ran
    primaries = report.sweep_primary_metrics(summaries, spec) if report.reference_search(summaries) else None
    rows = report.cost_rows(summaries, metrics, fronts=report.front_statuses(summaries), primaries=primaries)
    # the terminal table keeps the readable metrics; the CSV has them all
    table = report.format_table(rows, [m for m in metrics if not m.endswith("/normalized_error")])
    run_id = state.comparison_run_id
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        (folder / "cost_table.md").write_text(table + "\n")
        report.write_csv(rows, folder / "cost_table.csv")
        if primaries:
            reference = report.single_task_reference(report.reference_search(summaries), primaries)
            (folder / "delta_m_reference.json").write_text(json.dumps(
                {p.task: {"metric": p.name, "higher_is_better": p.higher_is_better, "single_task": reference.get(p.name)}
                 for p in primaries}))
        for name, weights in report.recommended_weights(summaries).items():
            (folder / f"recommended_weights_{name}.json").write_text(json.dumps(weights))
        values = {f"sweep/{key}": value for key, value in report.sweep_timing(summaries, state).items()}
        for row in rows:
            for key in ROW_METRICS:
                value = row.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values[f"{row['search']}/{key}"] = float(value)
        log_comparison(client, run_id, folder, report.comparison_figures(summaries), values)
    print(table, flush=True)
    return table
