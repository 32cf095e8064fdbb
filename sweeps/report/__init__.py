"""The comparison report of a finished sweep: what each search cost and what it found.

Modules in layers, each using only those above it in this list:

1. :mod:`.summaries`: trials and searches as plain data (:class:`TrialSummary`,
   :class:`SearchSummary`, each trial's outcome), read back from the MLflow record; beside it
   :mod:`.primaries`: Delta m%'s primary metrics, as the trials recorded them;
2. :mod:`.selection`: trials grouped by configuration, means and spread over seeds, the best
   configuration, noise, the best-so-far curve, the recommended static weights, the compute at
   which a search came within noise of the grid's best, a derived search's cost with its source's;
3. :mod:`.costs`: every search's cost against the grid in every unit (wall-clock, the trials'
   own CPU or GPU time, samples), the full grid's projected cost, the sweep's stable unit;
4. :mod:`.delta`: Delta m% against the single-task reference;
5. :mod:`.fronts`: the static grid's Pareto front and where each search's best trial lands;
   :mod:`.hypervolume`: the volume of the front each search found, and per second of compute;
6. :mod:`.table`: the cost table's rows and CSV;
7. :mod:`.markdown`: the cost table as Markdown, a headline table and the rest;
8. :mod:`.answer`: the answer in words (who won, within what noise, at what share of the grid);
9. :mod:`.figures`: the plots, their shared helpers, and :func:`comparison_figures`, the list of
   the plots a comparison writes.

Everything but the reading in :mod:`.summaries` and :mod:`.primaries` is a pure function over the
dataclasses: no Ray, no MLflow, no pyplot. Selection is always on the validation ``"score"`` (lower is better); test
numbers are only read off the trial and epoch that validation chose.
"""

from __future__ import annotations

from .answer import answer, answer_line, table_heading
from .costs import (
    PREFERRED,
    UNIT_WORDS,
    full_grid_cost,
    grid_fractions,
    grid_points_by_tasks,
    points_ran,
    projected,
    reach_key,
    stable_unit,
)
from .figures import (
    alpha_vs_score_figure,
    best_so_far_figure,
    comparison_figures,
    grid_cost_figure,
    pareto_figure,
    save_figure,
    weights_figure,
)
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
from .hypervolume import front_tasks, hypervolume, hypervolumes, reference_point, search_front, search_points
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
from .markdown import HEADLINE_COLUMNS, details_table, format_table, headline_table, percent, trials_cell
from .summaries import (
    ALPHA_KIND,
    COST_UNITS,
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
    short_label,
    task_metric_names,
)
from .primaries import recorded_primary_metrics, spec_primary_metrics, sweep_primary_metrics
from .table import OUTCOME_FIELDS, cost_key, cost_rows, full_grid_key, with_source_key, write_csv

__all__ = [
    "ALPHA_KIND",
    "BEYOND",
    "COST_UNITS",
    "GRID_KIND",
    "HEADLINE_COLUMNS",
    "INSIDE",
    "ON_FRONT",
    "OUTCOMES",
    "OUTCOME_FIELDS",
    "PREFERRED",
    "RESULT_OUTCOMES",
    "UNIT_WORDS",
    "ConfigResult",
    "ParetoView",
    "PrimaryMetric",
    "SearchSummary",
    "TrialSummary",
    "alone_task",
    "alpha_vs_score_figure",
    "answer",
    "answer_line",
    "best_config",
    "best_so_far",
    "best_so_far_figure",
    "best_trial",
    "comparison_figures",
    "compute_to_reach",
    "config_label",
    "config_results",
    "cost_key",
    "cost_rows",
    "delta_m",
    "delta_ms",
    "details_table",
    "dominates",
    "format_table",
    "front_status",
    "front_statuses",
    "front_tasks",
    "full_grid_cost",
    "full_grid_key",
    "grid_cost_figure",
    "grid_fractions",
    "grid_points_by_tasks",
    "grid_reach",
    "grid_search",
    "headline_table",
    "hypervolume",
    "hypervolumes",
    "label_of",
    "outcome_from_status",
    "pareto_figure",
    "pareto_front",
    "pareto_view",
    "percent",
    "points_ran",
    "primary_metrics",
    "projected",
    "reach_key",
    "reaches",
    "reads_metric",
    "recorded_primary_metrics",
    "recommended_weights",
    "reference_point",
    "reference_search",
    "save_figure",
    "search_front",
    "search_points",
    "search_summary",
    "short_label",
    "single_task_reference",
    "source_compute",
    "spec_primary_metrics",
    "stable_unit",
    "sweep_primary_metrics",
    "sweep_summaries",
    "sweep_timing",
    "table_heading",
    "task_epoch",
    "task_errors",
    "task_metric_names",
    "time_averaged_weights",
    "trials_cell",
    "weights_figure",
    "with_source",
    "with_source_key",
    "within_noise",
    "write_csv",
]
