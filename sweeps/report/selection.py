"""Selection: a search's trials grouped by configuration, their mean and spread over seeds, the
best configuration, whether a difference is noise, the best-so-far curve and the recommended
static weights.

A search with ``repeats: N`` trains each configuration (what its label names: ``alpha=1.3``,
``weights=[1, 2]``) with N seeds; selection, tables and plots then go by the configuration's
mean over its seeds, and a difference between two configurations smaller than their seeds'
spread is called noise. Without repeats every configuration is one trial and all of this
reduces to the single trial's numbers. Selection is always on the validation ``"score"`` (lower
is better) at each trial's best epoch; test numbers are only ever read off what validation chose.

Only trials with a result (:attr:`TrialSummary.has_result`: finished or stopped early, with a
finite score) are selected from or averaged; a configuration still knows its other trials
(failed, diverged, killed), so that tables can say so beside its mean.

The grid's best is what every search is measured against (:func:`grid_search`, :func:`reaches`):
:func:`compute_to_reach` says at what compute a search first came within noise of it, and
:func:`with_source` counts a derived search's cost with its source's (the recommended static's
weights come from its GradNorm search, which it cannot be had without). Each counts the cost in
one of :data:`.summaries.COST_UNITS` (``unit``; wall-clock ``compute`` seconds by default), and
gives ``None`` where a trial's cost in that unit is unknown.

Pure functions over :mod:`.summaries` data.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from .summaries import GRID_KIND, MEAN_WEIGHT, RESULT_OUTCOMES, SearchSummary, TrialSummary, history_keys


def config_label(config: dict[str, Any]) -> str | None:
    """The label a trial's search type gave its configuration (``"alpha=0.12"``,
    ``"weights=[1, 0.5]"``), ``None`` when it has none: the one place that reads it from a
    trial's config."""
    label = config.get("label")
    return None if label in (None, "") else str(label)


def label_of(trial: TrialSummary) -> str:
    """The configuration a trial trains: its label, or its trial id when it has none."""
    return config_label(trial.config) or trial.trial_id


@dataclass
class ConfigResult:
    """One configuration of a search: its trials with a result (one per seed), in the search's
    order, and ``others``, its trials without one (failed, diverged, killed)."""

    label: str
    trials: list[TrialSummary]
    others: list[TrialSummary] = field(default_factory=list)

    @property
    def scores(self) -> list[float]:
        """Each trial's best validation score (its best epoch's ``"score"``)."""
        return [trial.best_epoch["score"] for trial in self.trials]

    def values(self, key: str) -> list[float]:
        """``key`` at each trial's best epoch (trials that lack it are left out)."""
        return [trial.best_epoch[key] for trial in self.trials if key in trial.best_epoch]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def std(self) -> float | None:
        """The sample standard deviation over seeds; ``None`` with one seed."""
        return statistics.stdev(self.scores) if len(self.trials) > 1 else None

    @property
    def best_trial(self) -> TrialSummary:
        """Its trial with the lowest best-epoch score (ties: the first)."""
        return min(self.trials, key=lambda trial: trial.best_epoch["score"])

    @property
    def seeds(self) -> int:
        """How many trials the configuration ran, with a result or not."""
        return len(self.trials) + len(self.others)

    def left_out(self) -> dict[str, int]:
        """``{outcome: count}`` of its trials without a result (failed, diverged, killed), in
        order of first appearance."""
        counts: dict[str, int] = {}
        for trial in self.others:
            counts[trial.outcome] = counts.get(trial.outcome, 0) + 1
        return counts


def config_results(search: SearchSummary) -> list[ConfigResult]:
    """The search's configurations that have a trial with a result, in order of their first
    trial. Each also holds its trials without a result (their compute still counts elsewhere)."""
    groups: dict[str, ConfigResult] = {}
    for trial in search.trials:
        group = groups.setdefault(label_of(trial), ConfigResult(label_of(trial), []))
        if trial.has_result:
            group.trials.append(trial)
        elif trial.outcome not in RESULT_OUTCOMES:
            group.others.append(trial)
    return [group for group in groups.values() if group.trials]


def best_config(search: SearchSummary) -> ConfigResult | None:
    """The configuration with the lowest mean best validation score (ties: the first), or
    ``None`` when no trial has a result."""
    results = config_results(search)
    return min(results, key=lambda result: result.mean) if results else None


def best_trial(search: SearchSummary) -> TrialSummary | None:
    """The best trial (:attr:`ConfigResult.best_trial`) of the search's best configuration
    (:func:`best_config`); without repeats, simply the trial with the lowest best-epoch score.
    ``None`` when no trial has a result."""
    best = best_config(search)
    return None if best is None else best.best_trial


def within_noise(a: ConfigResult, b: ConfigResult) -> bool | None:
    """Whether the two means differ by less than the seeds' spread: ``|mean_a - mean_b| <=
    sqrt(std_a^2 + std_b^2)``, the standard deviation of the difference of one run of each.
    ``None`` when either has a single seed (no spread to compare with)."""
    if a.std is None or b.std is None:
        return None
    return abs(a.mean - b.mean) <= math.hypot(a.std, b.std)


def best_so_far(search: SearchSummary, unit: str = "compute") -> list[tuple[float, float]]:
    """Points ``(cumulative cost in unit, best validation score so far)``.

    Trials are taken in order of ``end_time`` (stable for ties). Every trial adds its cost in
    ``unit`` (0 where unknown) to the running total (failed and diverged ones too: the compute was
    spent); only trials with a result contribute their best-epoch ``"score"``, to their
    configuration's mean over the seeds that have ended so far (without repeats, the trial's own
    score). One point per trial, starting at the first trial that gives a score (before that there
    is nothing to plot); the value is the lowest configuration mean so far (with repeats it can
    rise, when a later seed pulls the leading configuration's mean up).
    """
    points: list[tuple[float, float]] = []
    compute = 0.0
    scores: dict[str, list[float]] = {}
    for trial in sorted(search.trials, key=lambda t: t.end_time):
        compute += trial.cost(unit) or 0.0
        if trial.has_result:
            scores.setdefault(label_of(trial), []).append(trial.best_epoch["score"])
        if scores:
            points.append((compute, min(statistics.fmean(v) for v in scores.values())))
    return points


def time_averaged_weights(trial: TrialSummary) -> list[float]:
    """The task weights averaged over training: for each ``"mean_weight/<task>"`` key (tasks in
    the order of the first history record's keys), the plain mean over epochs. Every epoch has
    the same number of steps, so this is also the mean over all steps.

    Raises ValueError (one line) when the trial has no such entries, or an epoch lacks one.
    """
    keys = history_keys(trial, MEAN_WEIGHT)
    for record in trial.history:
        missing = [k for k in keys if k not in record]
        if missing:
            raise ValueError(f"trial {trial.trial_id!r}: epoch {record.get('epoch')} lacks "
                             f"{missing[0]!r}; every epoch must log the same tasks' weights")
    return [sum(r[k] for r in trial.history) / len(trial.history) for k in keys]


def recommended_weights(searches: list[SearchSummary]) -> dict[str, list[float]]:
    """``{search name: time_averaged_weights of its best trial}`` for every search whose type
    recommends static weights (GradNorm) and that has a trial with a result."""
    out = {}
    for search in searches:
        best = best_trial(search) if search.recommends_static else None
        if best is not None:
            out[search.name] = time_averaged_weights(best)
    return out


# ------------------------------------------------------------------ against the grid's best


def grid_search(searches: list[SearchSummary]) -> SearchSummary | None:
    """The grid every search is measured against: the first search of kind ``static_grid`` (in
    the order given: the spec's) with a trial with a result, or ``None``."""
    return next((s for s in searches if s.kind == GRID_KIND and best_config(s) is not None), None)


def reaches(config: ConfigResult, target: ConfigResult) -> bool:
    """Whether ``config`` came within noise of ``target``: its mean is at or below the target's,
    or the two differ by less than their seeds' spread (:func:`within_noise`; with one seed, only
    at or below counts)."""
    return config.mean <= target.mean or within_noise(config, target) is True


def compute_to_reach(search: SearchSummary, target: ConfigResult, unit: str = "compute") -> float | None:
    """The search's cumulative cost in ``unit`` (its trials in the order they ended, every outcome
    counted) when a configuration first :func:`reaches` ``target`` with all its trials ended (all
    its seeds, so that its mean is the one the table shows); ``None`` if none does, or a trial's
    cost in ``unit`` is unknown."""
    if search.cost(unit) is None:
        return None
    totals: dict[str, int] = {}
    for trial in search.trials:
        totals[label_of(trial)] = totals.get(label_of(trial), 0) + 1
    compute, seen, results = 0.0, {}, {}
    for trial in sorted(search.trials, key=lambda t: t.end_time):
        compute += trial.cost(unit)
        label = label_of(trial)
        seen[label] = seen.get(label, 0) + 1
        if trial.has_result:
            results.setdefault(label, []).append(trial)
        if seen[label] == totals[label] and label in results and reaches(ConfigResult(label, results[label]), target):
            return compute
    return None


def source_compute(search: SearchSummary, searches: list[SearchSummary], unit: str = "compute") -> float | None:
    """The cost in ``unit`` of the search that ``search`` derives from (its ``source``), 0
    without one; ``None`` when unknown."""
    source = next((s for s in searches if s.name == search.source), None) if search.source else None
    return source.cost(unit) if source is not None else 0.0


def with_source(search: SearchSummary, searches: list[SearchSummary], unit: str = "compute") -> float | None:
    """The search's cost in ``unit`` with its source's included: what it cost to have its
    result; ``None`` when unknown."""
    own, source = search.cost(unit), source_compute(search, searches, unit)
    return None if own is None or source is None else own + source


def grid_reach(searches: list[SearchSummary], unit: str = "compute") -> dict[str, float | None]:
    """``{search name: the fraction of the grid's cost in unit at which it first came within noise
    of the grid's best}`` (:func:`compute_to_reach`, a derived search's source counted in full
    before its own trials; ``None``: never, or its cost in ``unit`` is unknown), for every search but
    the single-task reference. Empty without a grid (:func:`grid_search`), when the grid spent
    nothing, or its cost in ``unit`` is unknown."""
    grid = grid_search(searches)
    target = best_config(grid) if grid is not None else None
    total = grid.cost(unit) if target is not None else None
    if target is None or not total or total <= 0:
        return {}
    out: dict[str, float | None] = {}
    for search in searches:
        if search.reference:
            continue
        reached, source = compute_to_reach(search, target, unit), source_compute(search, searches, unit)
        out[search.name] = None if reached is None or source is None else (reached + source) / total
    return out
