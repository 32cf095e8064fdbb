"""The comparison report of a finished sweep: what each search cost and what it found.

Modules in layers, each using only those above it in this list:

1. :mod:`.summaries`: trials and searches as plain data (:class:`TrialSummary`,
   :class:`SearchSummary`, each trial's outcome), read back from the MLflow record;
2. :mod:`.selection`: trials grouped by configuration, means and spread over seeds, the best
   configuration, noise, the best-so-far curve, the recommended static weights;
3. :mod:`.fronts`: the static grid's Pareto front and where each search's best trial lands;
4. :mod:`.table`: the cost table's rows, Markdown and CSV;
5. :mod:`.figures`: the plots, their shared helpers, and :func:`comparison_figures`, the list of
   the plots a comparison writes.

Everything but the reading in :mod:`.summaries` is a pure function over the dataclasses: no Ray,
no MLflow, no pyplot. Selection is always on the validation ``"score"`` (lower is better); test
numbers are only read off the trial and epoch that validation chose.
"""

from __future__ import annotations

from .figures import best_so_far_figure, comparison_figures, pareto_figure, save_figure, weights_figure
from .fronts import (
    BEYOND,
    GRID_KIND,
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
    config_label,
    config_results,
    label_of,
    recommended_weights,
    time_averaged_weights,
    within_noise,
)
from .summaries import (
    OUTCOMES,
    RESULT_OUTCOMES,
    SearchSummary,
    TrialSummary,
    outcome_from_status,
    reads_metric,
    search_summary,
    sweep_summaries,
    sweep_timing,
    task_metric_names,
)
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
    "SearchSummary",
    "TrialSummary",
    "best_config",
    "best_so_far",
    "best_so_far_figure",
    "best_trial",
    "comparison_figures",
    "config_label",
    "config_results",
    "cost_rows",
    "dominates",
    "format_table",
    "front_status",
    "front_statuses",
    "label_of",
    "outcome_from_status",
    "pareto_figure",
    "pareto_front",
    "pareto_view",
    "reads_metric",
    "recommended_weights",
    "save_figure",
    "search_summary",
    "sweep_summaries",
    "sweep_timing",
    "task_errors",
    "task_metric_names",
    "time_averaged_weights",
    "trials_cell",
    "weights_figure",
    "within_noise",
    "write_csv",
]
