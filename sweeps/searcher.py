"""One Ray Tune searcher that hands out the trials of every search of a sweep, so that all
searches share the cluster's trial slots in one Tune experiment.

Each search keeps its own way of choosing trials: a search whose trials are known up front (a
grid, a one-trial baseline) gives them in order; a search that learns from results (Optuna over
alpha) keeps its own Ray searcher and is told of its own trials only. Tune's
``max_concurrent_trials`` limits the sweep as a whole, and Tune's checkpoints, restore and
failure handling apply to every trial as to any other experiment.

The recommended static trial (the time-averaged weights of the best trial of the sweep's first
GradNorm search, the paper's section 5.4) is handed out as soon as that search has ended, ahead
of anything still queued.

Order: the search that feeds the recommended trial first (so that the alpha result and the
recommended trial come early), then the others in the spec's order, each search giving out all
of its trials before the next one starts. Idle slots never wait on a search that has nothing to
give.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

from ray.tune.search import Searcher

from .searches import SearchType, StaticSearch

RECOMMENDED = "recommended_static"
RECOMMENDED_TYPE = StaticSearch.type_name()
AVERAGE_WEIGHT = "avg_weight/"  # the trainable's running time-average of the step-mean weights


def trial_config(base: dict[str, Any], search: SearchType, point: dict[str, Any]) -> dict[str, Any]:
    """The full config of one trial: the sweep's problem and training, the search's method and
    fixed options, the point it varies, and the search's label for that point."""
    options = {key: value for key, value in search.balancer_options().items() if key not in point}
    config = {**base, "search": search.name, "method": search.method, "method_options": options, **point}
    config["label"] = search.label(config)
    return config


@dataclass
class _Source:
    """The trials one search still has to give, and what became of those it gave."""

    search: SearchType
    total: int
    points: list[dict[str, Any]] | None  # None: chosen by ``searcher`` from results
    searcher: Searcher | None = None
    handed: int = 0
    ended: set[str] = field(default_factory=set)  # ids: a trial retried on resume counts once

    @property
    def exhausted(self) -> bool:
        return self.handed >= self.total

    @property
    def done(self) -> bool:
        return len(self.ended) >= self.total


@dataclass
class _Recommendation:
    """The recommended static trial: waiting for its GradNorm search, handed out, or skipped
    (every trial of that search failed)."""

    source: str
    status: str = "waiting"  # waiting | handed | skipped
    best: tuple[float, int, list[float]] | None = None  # (best score, order, averaged weights)
    weights: list[float] | None = None


@dataclass
class _Ledger:
    sources: list[_Source]
    recommendation: _Recommendation | None
    trial_search: dict[str, str] = field(default_factory=dict)


class SweepSearcher(Searcher):
    """Tune's search algorithm for a whole sweep (see the module docstring)."""

    def __init__(self, searches: list[SearchType], base: dict[str, Any], task_names: list[str], seed: int,
                 recommend_from: str | None, metric: str = "best_score", mode: str = "min") -> None:
        super().__init__(metric=metric, mode=mode)
        self.base = dict(base)
        self.task_names = list(task_names)
        first = [s for s in searches if s.name == recommend_from]
        ordered = first + [s for s in searches if s.name != recommend_from]
        sources = []
        for search in ordered:
            points = search.trial_points(len(task_names), seed)
            searcher = None if points is not None else search.searcher(seed, metric, mode)
            sources.append(_Source(search, search.trial_count(len(task_names)), points, searcher))
        recommendation = _Recommendation(recommend_from) if recommend_from else None
        self.ledger = _Ledger(sources, recommendation)

    # -- what Tune asks ----------------------------------------------------------------------

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # our searches bring their own spaces; metric and mode are fixed above

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        recommended = self._recommended_config()
        if recommended is not None:
            self.ledger.trial_search[trial_id] = RECOMMENDED
            return recommended
        for source in self.ledger.sources:
            if source.exhausted:
                continue
            if source.points is not None:
                point = source.points[source.handed]
            else:
                point = source.searcher.suggest(trial_id)
                if point is None or point == Searcher.FINISHED:
                    continue
            source.handed += 1
            self.ledger.trial_search[trial_id] = source.search.name
            return trial_config(self.base, source.search, dict(point))
        waiting = self.ledger.recommendation is not None and self.ledger.recommendation.status == "waiting"
        return None if waiting else Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        source = self._source_of(trial_id)
        if source is not None and source.searcher is not None:
            source.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        source = self._source_of(trial_id)
        if source is None:
            return
        source.ended.add(trial_id)
        if source.searcher is not None:
            source.searcher.on_trial_complete(trial_id, result=result, error=error)
        recommendation = self.ledger.recommendation
        if recommendation is not None and source.search.name == recommendation.source and not error and result:
            weights = [result.get(AVERAGE_WEIGHT + task) for task in self.task_names]
            score = result.get(self.metric)
            if score is not None and all(w is not None for w in weights):
                candidate = (float(score), len(source.ended), [float(w) for w in weights])
                if recommendation.best is None or candidate[:2] < recommendation.best[:2]:
                    recommendation.best = candidate

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

    def _source_of(self, trial_id: str) -> _Source | None:
        name = self.ledger.trial_search.get(trial_id)
        return next((s for s in self.ledger.sources if s.search.name == name), None)

    def _recommended_config(self) -> dict[str, Any] | None:
        recommendation = self.ledger.recommendation
        if recommendation is None or recommendation.status != "waiting":
            return None
        source = next(s for s in self.ledger.sources if s.search.name == recommendation.source)
        if not source.done:
            return None
        if recommendation.best is None:
            recommendation.status = "skipped"
            return None
        recommendation.weights = [round(w, 4) for w in recommendation.best[2]]
        recommendation.status = "handed"
        search = StaticSearch(name=RECOMMENDED, weights=recommendation.weights)
        return trial_config(self.base, search, search.trial_points(len(self.task_names), 0)[0])
