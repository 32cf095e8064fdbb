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

#: A search's numbers, in the order that matters after the first ones (:func:`search_metrics`):
#: logged on its own run under these names, and on the comparison run as ``<search>/<name>``.
SEARCH_METRICS = ("best_val_score", "best_val_std", "best_test_score", "delta_m", "to_grid_best",
                  "grid_compute_fraction", "full_grid_compute_fraction", "compute_seconds", "cpu_seconds",
                  "gpu_seconds", "samples", "wall_seconds", "trials", "failed", "finished", "stopped_early",
                  "stopped_compute_seconds", "compute_with_source_seconds", "hypervolume",
                  "hypervolume_per_compute_second")
#: the counts and costs of the trials that ended early or without a result: left out when zero
ZERO_LEFT_OUT = ("stopped_early", "stopped_compute_seconds")


def _group(key: str, unit: str) -> int:
    """Where a search's number goes: what it found, then its cost against the grid and its cost in
    ``unit`` (the sweep's stable one), then :data:`SEARCH_METRICS`, then its shares of the grid in the
    other units, the full grid (its cost, whether projected, its size), the outcome counts, the
    costs with a derived search's source."""
    first = ("best_val_score", "best_val_std", "best_test_score", "delta_m", report.reach_key(unit),
             f"grid_{unit}_fraction", f"full_grid_{unit}_fraction", report.cost_key(unit))
    if key in first:
        return first.index(key)
    if key in SEARCH_METRICS:
        return len(first) + SEARCH_METRICS.index(key)
    rest = len(first) + len(SEARCH_METRICS)
    if key.startswith("to_grid_best_") or key.endswith("_fraction"):
        return rest
    if key.startswith("full_grid_") or key in ("grid_size", "points_ran"):
        return rest + 1
    return rest + 2 if key.startswith("outcome/") else rest + 3


def search_metrics(row: dict, unit: str = "compute") -> dict[str, float]:
    """A cost row's numbers as metrics, what matters first (:func:`_group`; costs in the sweep's
    stable ``unit`` before the others): :data:`SEARCH_METRICS`, the shares of the grid and of the
    full grid in every unit, a grid's full cost (``full_grid_projected``: 1 where it is a projection),
    size and points that ran, the outcome counts, a derived search's costs with its source's.
    ``failed`` counts the trials that failed or diverged. Missing and non-numeric values are left
    out, and so are zero counts of trials that did not end as planned (``failed`` excepted: every
    search run carries it)."""
    values = dict(row, failed=row.get("outcome/failed", 0) + row.get("outcome/diverged", 0))
    if "full_grid_projected" in row:
        values["full_grid_projected"] = int(bool(row["full_grid_projected"]))
    out = {}
    for key, value in values.items():
        wanted = (key in SEARCH_METRICS or key.startswith(("grid_", "full_grid_", "to_grid_best_", "outcome/"))
                  or key in ("points_ran", "samples_with_source") or key.endswith("_with_source_seconds"))
        zero = (key.startswith("outcome/") or key in ZERO_LEFT_OUT) and not value
        if wanted and not zero and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    order = {key: k for k, key in enumerate(out)}
    return {key: out[key] for key in sorted(out, key=lambda key: (_group(key, unit), order[key]))}


def comparison_metrics(rows: list[dict], unit: str = "compute") -> dict[str, float]:
    """Every search's numbers (:func:`search_metrics`) as ``<search>/<name>``, name by name in the
    order of :func:`_group`, the searches in the rows' order under each: the best validation score of
    every search comes first, then their test scores, and so on."""
    numbers = [(row["search"], search_metrics(row, unit)) for row in rows]
    names = {name: k for k, name in enumerate(dict.fromkeys(name for _, values in numbers for name in values))}
    ordered = sorted(names, key=lambda name: (_group(name, unit), names[name]))
    return {f"{search}/{name}": values[name] for name in ordered for search, values in numbers if name in values}


def build_comparison(state: SweepState, spec: SweepSpec, client: MlflowClient) -> str:
    """The answer, the cost table and the plots, logged to the comparison run (the answer as its
    description, the answer's gist as the experiment's), each search's numbers on its run; prints
    the tables and the answer and returns the answer."""
    summaries = report.sweep_summaries(client, state, spec)
    metrics = report.task_metric_names(summaries)
    # Delta m%'s primary metrics, as the trials recorded them, when a single-task reference ran
    primaries = report.sweep_primary_metrics(summaries, spec) if report.reference_search(summaries) else None
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
        values = comparison_metrics(rows, unit)
        values |= {f"sweep/{key}": value for key, value in report.sweep_timing(summaries, state).items()}
        log_comparison(client, run_id, folder, report.comparison_figures(summaries), values, rows)
    for row in rows:
        run = state.searches.get(row["search"], {}).get("parent_run_id")
        if run:
            log_search_metrics(client, run, search_metrics(row, unit))
    describe_comparison(client, state.experiment_id, run_id, f"{answer}\n\n{headline}\n",
                        f"{spec.name}: {report.answer_line(rows, unit)}")
    print(f"{headline}\n\n{details}\n\n{answer}", flush=True)
    return answer
