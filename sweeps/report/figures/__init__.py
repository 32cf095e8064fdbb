"""The plots of a comparison, as matplotlib figures (no pyplot), and the one list of those a
comparison writes: :func:`comparison_figures`.

- ``best_so_far.png``: each search's best validation score against the compute it spent
  (:func:`best_so_far_figure`);
- ``pareto.png``: per-task normalized validation errors, the static grid's front and each
  search's best trial (:func:`pareto_figure`);
- ``weights_<search>.png``: the task weights over the epochs of the best trial of each search
  that recommends static weights, or whose weights change as it trains (``pbt``: a member's
  schedule) (:func:`weights_figure`);
- ``alpha_vs_score.png``: every GradNorm configuration's alpha against its best validation score,
  beside the grid's best (:func:`alpha_vs_score_figure`), when an alpha search ran;
- ``grid_cost_by_tasks.png``: the grid's cost for 2 to 10 tasks and more against the alpha
  search's (:func:`grid_cost_figure`), when a grid ran.

Costs are drawn in the sweep's stable unit (:func:`..costs.stable_unit`).

Shared helpers (figure, scales, title, legend, styles) live in :mod:`.base`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..costs import stable_unit
from ..selection import best_trial
from ..summaries import ALPHA_KIND, GRID_KIND, SearchSummary
from .alpha import alpha_vs_score_figure, grid_cost_figure
from .base import new_figure, save_figure, spans_decades
from .curves import best_so_far_figure, weights_figure
from .pareto import pareto_figure

__all__ = ["alpha_vs_score_figure", "best_so_far_figure", "comparison_figures", "grid_cost_figure", "new_figure",
           "pareto_figure", "save_figure", "spans_decades", "weights_figure"]


def comparison_figures(summaries: Sequence[SearchSummary]) -> dict:
    """``{artifact file name: Figure}``: every plot a comparison writes, in this order."""
    unit = stable_unit(summaries)
    figures = {"best_so_far.png": best_so_far_figure(summaries, unit), "pareto.png": pareto_figure(summaries)}
    if any(summary.kind == ALPHA_KIND for summary in summaries):
        figures["alpha_vs_score.png"] = alpha_vs_score_figure(summaries)
    if any(summary.kind == GRID_KIND and summary.grid_size for summary in summaries):
        figures["grid_cost_by_tasks.png"] = grid_cost_figure(summaries, unit)
    for summary in summaries:
        best = best_trial(summary) if summary.recommends_static or summary.schedules_weights else None
        if best is not None:
            figures[f"weights_{summary.name}.png"] = weights_figure(best)
    return figures
