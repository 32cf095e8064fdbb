"""One Ray Tune searcher that hands out the trials of every search of a sweep, so that all
searches share the cluster's trial slots in one Tune experiment.

Each search keeps its own way of choosing trials: a search whose trials are known up front (a
grid, a one-trial baseline) gives them in order; a search that learns from results (Optuna over
alpha) keeps its own Ray searcher and is told of its own trials only: their final metric, or each
of a search's objectives (``static_pareto``) at the trial's best epoch. Tune's
``max_concurrent_trials`` limits the sweep as a whole, and Tune's checkpoints, restore and
failure handling apply to every trial as to any other experiment.

The recommended static trial (the time-averaged weights of the best trial of the sweep's first
GradNorm search, the paper's section 5.4) is handed out as soon as that search has ended, ahead
of anything still queued. When that search searched the network's learning rate, the
recommended trial trains at its best configuration's rate: the weights were found at it.

Order: the search that feeds the recommended trial first (so that the alpha result and the
recommended trial come early), then the others in the spec's order, each search giving out all
of its trials before the next one starts. Idle slots never wait on a search that has nothing to
give, but a search whose trials train together (a ``pbt`` population) starts only once all of
them fit under Tune's ``max_concurrent_trials`` beside the trials still running.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from typing import Any

from ray.tune.search import Searcher

from trainables import TrialBase, is_marker, metric_names

from .scheduler import SCORE
from .searches import SearchType, StaticSearch

RECOMMENDED = "recommended_static"
RECOMMENDED_TYPE = StaticSearch.type_name()
AVERAGE_WEIGHT = metric_names.AVERAGE_WEIGHT  # the trainable's running time-average of the step-mean weights


def trial_config(base: TrialBase, search: SearchType, point: dict[str, Any], repeat: int = 0) -> dict[str, Any]:
    """What Tune gets as one trial's config: the search's :meth:`~SearchType.trial_config` of the
    point (the sweep's problem, training and run, the search's balancer and the point, its label;
    repeat ``k`` of a search with repeats trains with the sweep's seed + k), serialised."""
    return search.trial_config(base, point, repeat).to_dict()


@dataclass
class _Group:
    """One configuration a learning searcher picked, trained ``repeats`` times; the searcher
    hears of it once, under its first trial's id, with the mean of the repeats' results (an
    error only if every repeat failed). Ray's ``Repeater`` does not do this: it forwards the
    ``error`` flag of whichever repeat ends last and averages failed repeats in as NaN, and it
    repeats one wrapped searcher, while here the grids' and the recommended static trial's
    repeats (seed + k) come from the same ledger."""

    key: str
    point: dict[str, Any]
    handed: int = 0
    scores: dict[str, list[float]] = field(default_factory=dict)  # trial id -> its final metric(s)
    failed: set[str] = field(default_factory=set)


@dataclass
class _Source:
    """The trials one search still has to give, and what became of those it gave."""

    search: SearchType
    total: int
    points: list[dict[str, Any]] | None  # None: chosen by ``searcher`` from results
    searcher: Searcher | None = None
    handed: int = 0
    ended: set[str] = field(default_factory=set)  # ids: a trial retried on resume counts once
    groups: dict[str, _Group] = field(default_factory=dict)  # the searcher's picks, by key
    group_of: dict[str, str] = field(default_factory=dict)  # trial id -> its group's key
    open_group: str | None = None  # the pick whose repeats are being handed out
    labels: dict[str, str] = field(default_factory=dict)  # trial id -> its configuration's label
    rates: dict[str, float] = field(default_factory=dict)  # trial id -> its network lr (training.lr)
    objectives: list[str] | None = None  # what its searcher is told, at each trial's best epoch; None: the metric
    best_epochs: dict[str, dict] = field(default_factory=dict)  # trial id -> its best epoch's objectives so far

    @property
    def exhausted(self) -> bool:
        return self.handed >= self.total

    @property
    def done(self) -> bool:
        return len(self.ended) >= self.total

    def next_point(self, trial_id: str) -> tuple[dict[str, Any], int] | None:
        """The point and repeat index of the next trial, or ``None`` when the searcher has
        nothing to give now."""
        repeats = self.search.repeats
        if self.points is not None:
            index, repeat = divmod(self.handed, repeats)
            return self.points[index], repeat
        group = self.groups.get(self.open_group) if self.open_group else None
        if group is None or group.handed >= repeats:
            point = self.searcher.suggest(trial_id)
            if point is None or point == Searcher.FINISHED:
                return None
            group = self.groups[trial_id] = _Group(trial_id, dict(point))
            self.open_group = trial_id
        self.group_of[trial_id] = group.key
        group.handed += 1
        return group.point, group.handed - 1

    def keep_best_epoch(self, trial_id: str, result: dict) -> None:
        """Keep the :attr:`objectives` of the trial's epoch with the lowest ``score`` so far (the first of equals)."""
        score = result.get(SCORE)
        if self.objectives is None or score is None or not math.isfinite(score):
            return
        kept = self.best_epochs.get(trial_id)
        if kept is None or score < kept[SCORE]:
            self.best_epochs[trial_id] = {SCORE: score, **{key: result.get(key) for key in self.objectives}}

    def tell(self, trial_id: str, result: dict | None, error: bool, metric: str) -> None:
        """Tell the searcher of an ended trial (its :attr:`objectives` at its best epoch, else
        ``metric``): at once without repeats, else the mean of a pick's repeats once all of them
        have ended (an error only if every one failed)."""
        keys = self.objectives or [metric]
        if result and self.objectives is not None:
            result = {key: self.best_epochs.get(trial_id, {}).get(key) for key in keys}
        if self.search.repeats == 1:
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            return
        group = self.groups.get(self.group_of.get(trial_id, ""))
        if group is None:
            return
        values = None if error or not result else [result.get(key) for key in keys]
        if values is None or any(value is None for value in values):
            group.failed.add(trial_id)
        else:
            group.scores[trial_id] = [float(value) for value in values]
        if len(group.scores) + len(group.failed) == self.search.repeats:
            scores = list(group.scores.values())
            if scores:
                means = {key: sum(column) / len(scores) for key, column in zip(keys, zip(*scores))}
                self.searcher.on_trial_complete(group.key, result=means)
            else:
                self.searcher.on_trial_complete(group.key, error=True)


@dataclass
class _Recommendation:
    """The recommended static trials: waiting for their GradNorm search, handed out, or skipped
    (every trial of that search failed). ``results`` holds each configuration's (label) scores
    and averaged weights, one per repeat; ``rates`` each configuration's network lr."""

    source: str
    status: str = "waiting"  # waiting | handed | skipped
    results: dict[str, list[tuple[float, list[float]]]] = field(default_factory=dict)
    weights: list[float] | None = None
    rates: dict[str, float] = field(default_factory=dict)
    lr: float | None = None  # the network lr of the best configuration, when its search searched it

    def best_label(self) -> str | None:
        """The configuration with the lowest mean score (ties: the one that ended first)."""
        if not self.results:
            return None
        def mean_score(label: str) -> float:
            return sum(score for score, _ in self.results[label]) / len(self.results[label])
        return min(self.results, key=mean_score)  # dicts keep insertion order: ties go first

    def best_weights(self) -> list[float] | None:
        """The weights averaged over the repeats of the configuration with the lowest mean
        score (ties: the one that ended first), or ``None`` without any result."""
        best = self.best_label()
        if best is None:
            return None
        runs = [weights for _, weights in self.results[best]]
        return [sum(column) / len(runs) for column in zip(*runs)]


@dataclass
class _Ledger:
    sources: list[_Source]
    recommendation: _Recommendation | None
    trial_search: dict[str, str] = field(default_factory=dict)


class SweepSearcher(Searcher):
    """Tune's search algorithm for a whole sweep (see the module docstring)."""

    def __init__(self, searches: list[SearchType], base: TrialBase, task_names: list[str], seed: int,
                 recommend_from: str | None, metric: str = "best_score", mode: str = "min") -> None:
        super().__init__(metric=metric, mode=mode)
        self.base = base
        self.task_names = list(task_names)
        first = [s for s in searches if s.name == recommend_from]
        ordered = first + [s for s in searches if s.name != recommend_from]
        sources = []
        for search in ordered:
            points = search.trial_points(len(task_names), seed)
            objectives = search.objectives(task_names) if points is None else None
            searcher = None if points is not None else search.searcher(seed, objectives or metric, mode, len(task_names))
            sources.append(_Source(search, search.trial_count(len(task_names)), points, searcher, objectives=objectives))
        recommendation = _Recommendation(recommend_from) if recommend_from else None
        self.ledger = _Ledger(sources, recommendation)

    # -- what Tune asks ----------------------------------------------------------------------

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # our searches bring their own spaces; metric and mode are fixed above

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Kept for a population to wait for room (:meth:`suggest`); Tune's ConcurrencyLimiter enforces it."""
        self.max_concurrent = max_concurrent
        return False

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        self._add_recommended()
        for source in self.ledger.sources:
            if source.exhausted:
                continue
            if source.search.trains_together and source.handed == 0 and not self._room_for(source):
                return None  # a population starts at once: its members wait until all of them fit
            picked = source.next_point(trial_id)
            if picked is None:
                continue
            source.handed += 1
            self.ledger.trial_search[trial_id] = source.search.name
            config = trial_config(self.base, source.search, dict(picked[0]), picked[1])
            source.labels[trial_id] = config["label"]
            source.rates[trial_id] = config["training"]["lr"]
            return config
        waiting = self.ledger.recommendation is not None and self.ledger.recommendation.status == "waiting"
        return None if waiting else Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        source = self._source_of(trial_id)
        if source is None or source.searcher is None or is_marker(result):
            return
        source.keep_best_epoch(trial_id, result)
        if source.search.repeats == 1 and source.objectives is None:
            source.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        source = self._source_of(trial_id)
        if source is None:
            return
        if is_marker(result):  # failed or diverged: no result for Optuna or the recommended weights
            result, error = None, True
        source.ended.add(trial_id)
        if source.searcher is not None:
            source.tell(trial_id, result, error, self.metric)
        recommendation = self.ledger.recommendation
        if recommendation is not None and source.search.name == recommendation.source and not error and result:
            weights = [result.get(AVERAGE_WEIGHT + task) for task in self.task_names]
            score = result.get(self.metric)
            if score is not None and all(w is not None for w in weights):
                label = source.labels.get(trial_id, trial_id)
                recommendation.results.setdefault(label, []).append((float(score), [float(w) for w in weights]))
                if trial_id in source.rates:
                    recommendation.rates[label] = source.rates[trial_id]

    # -- Tune's experiment checkpoints: the whole ledger, Optuna's studies included ------------

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.ledger, handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.ledger = pickle.load(handle)

    # -- what the runner reads ---------------------------------------------------------------

    @property
    def recommended_weights(self) -> list[float] | None:
        recommendation = self.ledger.recommendation
        return None if recommendation is None else recommendation.weights

    def search_of(self, trial_id: str) -> str | None:
        return self.ledger.trial_search.get(trial_id)

    # -- internals ---------------------------------------------------------------------------

    def _room_for(self, source: _Source) -> bool:
        """Whether all of the source's trials fit beside the live ones under ``max_concurrent``."""
        limit = getattr(self, "max_concurrent", None)
        live = len(self.ledger.trial_search) - sum(len(s.ended) for s in self.ledger.sources)
        return limit is None or live + source.total <= limit

    def _source_of(self, trial_id: str) -> _Source | None:
        name = self.ledger.trial_search.get(trial_id)
        return next((s for s in self.ledger.sources if s.search.name == name), None)

    def _add_recommended(self) -> None:
        """Once the recommending search has ended, put the recommended static trials (its
        repeats) first in line, or skip them when that search has no result."""
        recommendation = self.ledger.recommendation
        if recommendation is None or recommendation.status != "waiting":
            return
        source = next(s for s in self.ledger.sources if s.search.name == recommendation.source)
        if not source.done:
            return
        weights = recommendation.best_weights()
        if weights is None:
            recommendation.status = "skipped"
            return
        recommendation.weights = [round(w, 4) for w in weights]
        recommendation.status = "handed"
        if source.search.lr is not None:  # the weights were found at that configuration's network lr
            recommendation.lr = recommendation.rates.get(recommendation.best_label())
        rate = {"lr": [recommendation.lr]} if recommendation.lr is not None else {}
        search = StaticSearch(name=RECOMMENDED, weights=recommendation.weights, repeats=source.search.repeats, **rate)
        points = search.trial_points(len(self.task_names), 0)
        self.ledger.sources.insert(0, _Source(search, search.trial_count(len(self.task_names)), points))
