"""The comparison of a finished sweep, rebuilt from MLflow alone: each search's trials and what
they cost, the answer in words, the cost table and plots on the comparison run, every search's
own numbers on its own run, and the sweep's own timing."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from trainables import describe_comparison, log_comparison, log_search_metrics

from . import report
from .spec import SweepSpec
from .state import SweepState

#: A search's numbers, in the order that matters (what it found, what it cost against the grid,
#: what it cost, how its trials ended): logged on its own run under these names, and on the
#: comparison run as ``<search>/<name>``. Fractions of the grid and the full grid's cost in
#: every unit follow where a row has them (:func:`search_metrics`).
SEARCH_METRICS = ("best_val_score", "best_val_std", "best_test_score", "delta_m", "to_grid_best",
                  "grid_compute_fraction", "full_grid_compute_fraction", "compute_seconds", "cpu_seconds",
                  "gpu_seconds", "samples", "wall_seconds", "trials", "failed", "finished", "stopped_early",
                  "stopped_compute_seconds", "compute_with_source_seconds")


def search_metrics(row: dict) -> dict[str, float]:
    """A cost row's numbers as metrics, in :data:`SEARCH_METRICS`' order, then its fractions of the
    grid and the full grid's cost in the other units, then its nonzero outcome counts; ``failed``
    counts its trials that failed or diverged. Missing, non-numeric and zero-count values are left out."""
    values = dict(row, failed=row.get("outcome/failed", 0) + row.get("outcome/diverged", 0))
    keys = [*SEARCH_METRICS]
    keys += [key for key in row if (key.startswith("grid_") and key.endswith("_fraction"))
             or key.startswith(("full_grid_", "to_grid_best_"))]
    keys += ["grid_size", "points_ran"]
    keys += [key for key in row if key.startswith("outcome/") and row[key]]
    keys += [key for key in row if key.endswith("_with_source_seconds") or key == "samples_with_source"]
    out = {}
    for key in dict.fromkeys(keys):
        value = values.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def build_comparison(state: SweepState, spec: SweepSpec, client: MlflowClient) -> str:
    """The answer, the cost table and the plots, logged to the comparison run (the answer as its
    description, the answer's gist as the experiment's), each search's numbers on its run; prints
    the tables and the answer and returns the answer."""
    summaries = report.sweep_summaries(client, state, spec)
    metrics = report.task_metric_names(summaries)
    # Delta m%'s primary metrics, read from the problem (no data), when a single-task reference ran
    primaries = report.spec_primary_metrics(spec) if report.reference_search(summaries) else None
    rows = report.cost_rows(summaries, metrics, fronts=report.front_statuses(summaries), primaries=primaries)
    unit = report.stable_unit(summaries)
    shown = [m for m in metrics if not m.endswith("/normalized_error")]  # the CSV has them all
    headline, details = report.headline_table(rows, unit), report.details_table(rows, shown)
    answer = report.answer(rows, unit)
    run_id = state.comparison_run_id
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        (folder / "cost_table.md").write_text(f"{report.table_heading(rows, unit)}\n\n{headline}\n\n{details}\n")
        report.write_csv(rows, folder / "cost_table.csv")
        if primaries:
            reference = report.single_task_reference(report.reference_search(summaries), primaries)
            (folder / "delta_m_reference.json").write_text(json.dumps(
                {p.task: {"metric": p.name, "higher_is_better": p.higher_is_better, "single_task": reference.get(p.name)}
                 for p in primaries}))
        for name, weights in report.recommended_weights(summaries).items():
            (folder / f"recommended_weights_{name}.json").write_text(json.dumps(weights))
        values = {}
        for row in rows:
            values |= {f"{row['search']}/{key}": value for key, value in search_metrics(row).items()}
        values |= {f"sweep/{key}": value for key, value in report.sweep_timing(summaries, state).items()}
        log_comparison(client, run_id, folder, report.comparison_figures(summaries), values, rows)
    for row in rows:
        run = state.searches.get(row["search"], {}).get("parent_run_id")
        if run:
            log_search_metrics(client, run, search_metrics(row))
    describe_comparison(client, state.experiment_id, run_id, f"{answer}\n\n{headline}\n",
                        f"{spec.name}: {report.answer_line(rows, unit)}")
    print(f"{headline}\n\n{details}\n\n{answer}", flush=True)
    return answer
