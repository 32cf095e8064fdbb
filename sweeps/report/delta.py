r"""Delta m%: a search's mean relative loss against training each task alone (Maninis et al.,
CVPR 2019; the summary of Nash-MTL, FAMO, LibMTL and DB-MTL):

.. math:: \Delta m\% = \frac{100}{T} \sum_{t=1}^{T} (-1)^{h_t} \frac{M_t - M_{\mathrm{stl},t}}{M_{\mathrm{stl},t}}

with :math:`M_t` the search's test value of task t's primary metric (the mean over the seeds of
its best configuration, at the epochs validation chose), :math:`M_{\mathrm{stl},t}` the same
metric of the single-task reference (:func:`single_task_reference`), and :math:`h_t = 1` when a
higher value is better (accuracy), 0 when lower is (an error, an MAE). Lower is better; below 0
the search beats training each task alone on average.

Pure functions over :mod:`.summaries` data; the primary metrics come in as
:class:`.summaries.PrimaryMetric` (read from the problem by :func:`.summaries.primary_metrics`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from .selection import best_config
from .summaries import PrimaryMetric, SearchSummary, TrialSummary


def delta_m(values: Mapping[str, float | None], reference: Mapping[str, float],
            primaries: Sequence[PrimaryMetric]) -> float | None:
    """Delta m% of ``values`` (``{metric name: M_t}``) against ``reference`` (``{metric name:
    M_stl,t}``) over the tasks of ``primaries``; ``None`` when a value or reference is missing or
    not finite, or a reference is 0 (no relative change from 0)."""
    terms = []
    for primary in primaries:
        value, base = values.get(primary.name), reference.get(primary.name)
        if value is None or base is None or not (math.isfinite(value) and math.isfinite(base)) or base == 0:
            return None
        sign = -1.0 if primary.higher_is_better else 1.0
        terms.append(sign * (value - base) / base)
    return 100.0 * sum(terms) / len(terms) if terms else None


def alone_task(trial: TrialSummary) -> str | None:
    """The one task a trial trained (its only ``weight/<task>`` above 0 in its record), or ``None``."""
    record = trial.history[0] if trial.history else {}
    tasks = [key.removeprefix("weight/") for key, value in record.items() if key.startswith("weight/") and value > 0]
    return tasks[0] if len(tasks) == 1 else None


def task_epoch(trial: TrialSummary, task: str, metric: str) -> dict[str, float] | None:
    """The epoch of a single-task trial its task's validation chose: among the epochs with the
    test value ``test/<metric>`` (the training loop tests at each new best overall score and at the
    last epoch), the one with the lowest ``val/<task>/normalized_error`` (the first of equals);
    the trial's :attr:`~TrialSummary.best_epoch` when none of them has that error."""
    tested = [r for r in trial.history if f"test/{metric}" in r]
    scored = [r for r in tested if math.isfinite(r.get(f"val/{task}/normalized_error", math.nan))]
    if not scored:
        best = trial.best_epoch
        return best if best is not None and f"test/{metric}" in best else None
    return min(scored, key=lambda r: r[f"val/{task}/normalized_error"])


def single_task_reference(search: SearchSummary, primaries: Sequence[PrimaryMetric]) -> dict[str, float]:
    """``{metric name: M_stl,t}``: for each task, the mean over the reference's trials that trained
    it alone (one per seed, with a result) of its primary test metric at :func:`task_epoch`. A task
    none of them trained is left out."""
    reference = {}
    for primary in primaries:
        values = []
        for trial in search.trials:
            if trial.has_result and alone_task(trial) == primary.task:
                epoch = task_epoch(trial, primary.task, primary.name)
                if epoch is not None:
                    values.append(float(epoch[f"test/{primary.name}"]))
        if values:
            reference[primary.name] = statistics.fmean(values)
    return reference


def reference_search(searches: Sequence[SearchSummary]) -> SearchSummary | None:
    """The first single-task reference search, or ``None``."""
    return next((search for search in searches if search.reference), None)


def delta_ms(searches: Sequence[SearchSummary], primaries: Sequence[PrimaryMetric]) -> dict[str, float | None]:
    """``{search name: Delta m%}`` of every search (the reference's own is 0 by construction;
    ``None`` for a search without a result); empty without a reference search or primary metrics."""
    found = reference_search(searches)
    if found is None or not primaries:
        return {}
    reference = single_task_reference(found, primaries)
    out: dict[str, float | None] = {}
    for search in searches:
        if search.reference:
            out[search.name] = delta_m(single_task_reference(search, primaries), reference, primaries)
            continue
        config = best_config(search)
        values = {}
        if config is not None:
            for primary in primaries:
                found_values = config.values(f"test/{primary.name}")
                values[primary.name] = statistics.fmean(found_values) if found_values else None
        out[search.name] = delta_m(values, reference, primaries) if config is not None else None
    return out
