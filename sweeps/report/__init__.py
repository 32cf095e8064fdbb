"""The comparison report of a finished sweep: what each search cost and what it found.

Modules in layers, each using only those above it in this list:

1. :mod:`.summaries`: trials and searches as plain data (:class:`TrialSummary`,
   :class:`SearchSummary`, each trial's outcome), read back from the MLflow record; beside it
   :mod:`.primaries`: Delta m%'s primary metrics, as the trials recorded them;
2. :mod:`.selection`: trials grouped by configuration, means and spread over seeds, the best
   configuration, noise, the best-so-far curve, the recommended static weights, the compute at
   which a search came within noise of the grid's best, a derived search's cost with its source's;
3. :mod:`.delta`: Delta m% against the single-task reference;
4. :mod:`.fronts`: the static grid's Pareto front and where each search's best trial lands;
5. :mod:`.table`: the cost table's rows, Markdown and CSV;
6. :mod:`.figures`: the plots, their shared helpers, and :func:`comparison_figures`, the list of
   the plots a comparison writes.

Everything but the reading in :mod:`.summaries` and :mod:`.primaries` is a pure function over the
dataclasses: no Ray, no MLflow, no pyplot. Selection is always on the validation ``"score"`` (lower is better); test
numbers are only read off the trial and epoch that validation chose.
"""

from __future__ import annotations

from .figures import best_so_far_figure, comparison_figures, pareto_figure, save_figure, weights_figure
from .delta import alone_task, delta_m, delta_ms, reference_search, single_task_reference, task_epoch
from .fronts import (
    BEYOND,
    INSIDE,
    ON_FRONT,
    ParetoView,
    dominates,
    front_status,
    front_statuses,
    pareto_front,
    pareto_view,
    task_errors,
)
from .selection import (
    ConfigResult,
    best_config,
    best_so_far,
    best_trial,
    compute_to_reach,
    config_label,
    config_results,
    grid_reach,
    grid_search,
    label_of,
    reaches,
    recommended_weights,
    source_compute,
    time_averaged_weights,
    with_source,
    within_noise,
)
from .summaries import (
    GRID_KIND,
    OUTCOMES,
    RESULT_OUTCOMES,
    PrimaryMetric,
    SearchSummary,
    TrialSummary,
    outcome_from_status,
    primary_metrics,
    reads_metric,
    search_summary,
    sweep_summaries,
    sweep_timing,
    task_metric_names,
)
from .primaries import recorded_primary_metrics, spec_primary_metrics, sweep_primary_metrics
from .table import OUTCOME_FIELDS, cost_rows, format_table, trials_cell, write_csv

__all__ = [
    "BEYOND",
    "GRID_KIND",
    "INSIDE",
    "ON_FRONT",
    "OUTCOMES",
    "OUTCOME_FIELDS",
    "RESULT_OUTCOMES",
    "ConfigResult",
    "ParetoView",
    "PrimaryMetric",
    "SearchSummary",
    "TrialSummary",
    "best_config",
    "best_so_far",
    "best_so_far_figure",
    "alone_task",
    "best_trial",
    "comparison_figures",
    "compute_to_reach",
    "config_label",
    "config_results",
    "cost_rows",
    "delta_m",
    "delta_ms",
    "dominates",
    "format_table",
    "front_status",
    "front_statuses",
    "grid_reach",
    "grid_search",
    "label_of",
    "outcome_from_status",
    "pareto_figure",
    "pareto_front",
    "pareto_view",
    "primary_metrics",
    "reaches",
    "reads_metric",
    "recorded_primary_metrics",
    "recommended_weights",
    "reference_search",
    "save_figure",
    "search_summary",
    "single_task_reference",
    "source_compute",
    "spec_primary_metrics",
    "sweep_primary_metrics",
    "sweep_summaries",
    "sweep_timing",
    "task_epoch",
    "task_errors",
    "task_metric_names",
    "time_averaged_weights",
    "trials_cell",
    "weights_figure",
    "with_source",
    "within_noise",
    "write_csv",
]
