"""A search's trials grouped by configuration, with their mean and spread over seeds.

A search with ``repeats: N`` trains each configuration (what its label names: ``alpha=1.3``,
``weights=[1, 2]``) with N seeds; selection, tables and plots then go by the configuration's
mean over its seeds, and a difference between two configurations smaller than their seeds'
spread is called noise. Without repeats every configuration is one trial and all of this
reduces to the single trial's numbers.

Pure functions over :mod:`sweeps.results` data, like :mod:`sweeps.report`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from sweeps.results import SearchSummary, TrialSummary

FINISHED = "FINISHED"


@dataclass
class ConfigResult:
    """One configuration of a search: its finished trials (one per seed), in the search's order."""

    label: str
    trials: list[TrialSummary]

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


def label_of(trial: TrialSummary) -> str:
    """The configuration a trial trains: its search's label (its trial id when it has none)."""
    return str(trial.config.get("label") or trial.trial_id)


def config_results(search: SearchSummary) -> list[ConfigResult]:
    """The search's configurations that have a finished trial, in order of their first trial.
    Trials that failed or have no history are left out (their compute still counts elsewhere)."""
    groups: dict[str, ConfigResult] = {}
    for trial in search.trials:
        if trial.status == FINISHED and trial.best_epoch is not None:
            groups.setdefault(label_of(trial), ConfigResult(label_of(trial), [])).trials.append(trial)
    return list(groups.values())


def best_config(search: SearchSummary) -> ConfigResult | None:
    """The configuration with the lowest mean best validation score (ties: the first), or
    ``None`` when no trial finished."""
    results = config_results(search)
    return min(results, key=lambda result: result.mean) if results else None


def within_noise(a: ConfigResult, b: ConfigResult) -> bool | None:
    """Whether the two means differ by less than the seeds' spread: ``|mean_a - mean_b| <=
    sqrt(std_a^2 + std_b^2)``, the standard deviation of the difference of one run of each.
    ``None`` when either has a single seed (no spread to compare with)."""
    if a.std is None or b.std is None:
        return None
    return abs(a.mean - b.mean) <= math.hypot(a.std, b.std)
