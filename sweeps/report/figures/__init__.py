"""The plots of a comparison, as matplotlib figures (no pyplot), and the one list of those a
comparison writes: :func:`comparison_figures`.

- ``best_so_far.png``: each search's best validation score against the compute it spent
  (:func:`best_so_far_figure`);
- ``pareto.png``: per-task normalized validation errors, the static grid's front and each
  search's best trial (:func:`pareto_figure`);
- ``weights_<search>.png``: the task weights over the epochs of the best trial of each search
  that recommends static weights, or whose weights change as it trains (``pbt``: a member's
  schedule) (:func:`weights_figure`).

Shared helpers (figure, scales, title, legend, styles) live in :mod:`.base`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..selection import best_trial
from ..summaries import SearchSummary
from .base import new_figure, save_figure, spans_decades
from .curves import best_so_far_figure, weights_figure
from .pareto import pareto_figure

__all__ = ["best_so_far_figure", "comparison_figures", "new_figure", "pareto_figure", "save_figure",
           "spans_decades", "weights_figure"]


def comparison_figures(summaries: Sequence[SearchSummary]) -> dict:
    """``{artifact file name: Figure}``: every plot a comparison writes, in this order."""
    figures = {"best_so_far.png": best_so_far_figure(summaries), "pareto.png": pareto_figure(summaries)}
    for summary in summaries:
        best = best_trial(summary) if summary.recommends_static or summary.schedules_weights else None
        if best is not None:
            figures[f"weights_{summary.name}.png"] = weights_figure(best)
    return figures
