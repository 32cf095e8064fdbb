"""What the driver does with Ray Tune's events while the sweep's one experiment runs.

:class:`SweepEvents` is the sweep's live handler, built by the runner for each run (new or
resumed): it passes each trial's events to the MLflow trial logger, prints the trial lines and
the progress line (:mod:`sweeps.progress`), and keeps each search's status: ``running`` from its
first trial, ``done`` after its last, when its MLflow run ends too (FINISHED, or FAILED when none
of its trials has a result), while the other searches go on. A search's run is the logger's to
write: it is created when its first trial's start is written and ended after its last trial's
updates, in the logger's queue. The runner reads it in memory;
``sweep.json`` keeps the statuses only so that ``resume`` finds them.

Tune pickles its callbacks with the experiment; what it holds is a :class:`Relay`, which keeps
nothing but the sweep's id and hands every event to the live handler registered for that id in
this process. A resumed sweep thus gets fresh handlers, not stale copies.
"""

from __future__ import annotations

import time
from typing import Any

from ray import tune

from trainables import MlflowTrialLogger, Outcome, search_of, weights_of

from .progress import Progress, trial_outcome
from .searcher import RECOMMENDED
from .signals import StopSignals
from .state import SweepState

__all__ = ["Relay", "SweepEvents"]

_LIVE: dict[str, SweepEvents] = {}  # sweep id -> its live handler in this process


class SweepEvents:
    """The live handler of one sweep's Tune events (see the module docstring); a context manager
    that registers it for its :class:`Relay` while the experiment runs."""

    def __init__(self, state: SweepState, logger: MlflowTrialLogger, totals: dict[str, int],
                 stop: StopSignals | None = None) -> None:
        self.state = state
        self.stop = stop  # a signal that came while Tune started is handed to Tune at its first step
        self.logger = logger
        self.totals = dict(totals)
        self.progress = Progress(totals)
        self.trials: dict[str, Any] = {}  # trial id -> Tune's trial: every one Tune knows in this run
        self.ended: dict[str, Outcome] = {}  # trial id -> how it ended, as it ends in this run
        self.statuses: dict[str, str] = {}  # trial id -> its Tune status, as last seen

    def __enter__(self) -> SweepEvents:
        _LIVE[self.state.sweep_id] = self
        return self

    def __exit__(self, *exc_info) -> None:
        _LIVE.pop(self.state.sweep_id, None)

    # -- Tune's events -----------------------------------------------------------------------

    def _see(self, trials) -> None:
        for trial in trials:
            self.trials[trial.trial_id] = trial
            if self.statuses.get(trial.trial_id) not in ("TERMINATED", "ERROR"):
                self.statuses[trial.trial_id] = trial.status

    def step_begin(self, trials) -> None:
        if self.stop is not None:
            self.stop.forward()
        self._see(trials)

    def step_end(self, trials) -> None:
        self._see(trials)
        self.progress.step(trials)

    def trial_start(self, trials, trial) -> None:
        self.trials[trial.trial_id] = trial
        self.statuses[trial.trial_id] = "RUNNING"
        self.logger.on_trial_start(0, trials, trial)
        search = search_of(trial.config)
        entry = self.state.searches.get(search)
        if entry is None:
            return
        changed = entry.get("status") == "pending"
        if changed:
            entry["status"] = "running"
        if search == RECOMMENDED and "weights" not in entry:
            entry["weights"], changed = weights_of(trial.config), True
            self.logger.search_weights(search, entry["weights"])
        if changed:
            self.state.save()

    def trial_result(self, trials, trial, result: dict[str, Any]) -> None:
        self.logger.on_trial_result(0, trials, trial, result)

    def trial_recover(self, trials, trial) -> None:
        self.logger.on_trial_recover(0, trials, trial)

    def trial_complete(self, trials, trial) -> None:
        update = self.logger.ending(trial.trial_id, trial.config, trial.last_result, errored=False, ended=True)
        self._ended(trials, trial, update, "TERMINATED")

    def trial_error(self, trials, trial) -> None:
        self._ended(trials, trial, self.logger.failed_by_tune(trial), "ERROR")

    def _ended(self, trials, trial, update, status: str) -> None:
        self.logger.queue(update)
        self.trials[trial.trial_id] = trial
        self.ended[trial.trial_id] = update.outcome
        self.statuses[trial.trial_id] = status
        self.progress.ended(trials, trial, update.outcome, update.error, update.log)
        self._check_done(trials, trial, update.ended)

    def experiment_end(self, trials) -> None:
        # Only the trials no step of this run saw (a resumed experiment whose trials had all
        # ended): Tune's clean-up has already marked the trials it cut off TERMINATED, though its
        # saved experiment keeps them unfinished, for resume to continue.
        for trial in trials:
            if trial.trial_id not in self.trials:
                self.trials[trial.trial_id] = trial
                self.statuses[trial.trial_id] = trial.status
        self.logger.on_experiment_end(trials)

    # -- searches ------------------------------------------------------------------------------

    def _check_done(self, trials, trial, at: float | None = None) -> None:
        """End the trial's search (its status, its run) once its last trial has ended (``at``, that
        trial's end: the search's run ends with it)."""
        search = search_of(trial.config)
        entry = self.state.searches.get(search)
        outcomes = [self.ended.get(t.trial_id) or trial_outcome(t) for t in trials if search_of(t.config) == search]
        ended = [outcome for outcome in outcomes if outcome is not None]
        if entry is None or entry.get("status") == "done" or len(ended) < self.totals.get(search, 0):
            return
        entry["status"], entry["ended_at"] = "done", at or time.time()
        entry["result"] = any(outcome.selectable for outcome in ended)
        self.state.save()
        self.logger.end_search(search, "FINISHED" if entry["result"] else "FAILED", entry["ended_at"])


class Relay(tune.Callback):
    """The callback Tune holds for a sweep: its id, and every event handed to the sweep's live
    :class:`SweepEvents` in this process (none registered: the event is dropped)."""

    def __init__(self, sweep_id: str) -> None:
        self.sweep_id = sweep_id

    def _live(self) -> SweepEvents | None:
        return _LIVE.get(self.sweep_id)

    def _send(self, name: str, *args: Any) -> None:
        live = self._live()
        if live is not None:
            getattr(live, name)(*args)

    def on_step_begin(self, iteration, trials, **info):
        self._send("step_begin", trials)

    def on_step_end(self, iteration, trials, **info):
        self._send("step_end", trials)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._send("trial_start", trials, trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._send("trial_result", trials, trial, result)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._send("trial_recover", trials, trial)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._send("trial_complete", trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._send("trial_error", trials, trial)

    def on_experiment_end(self, trials, **info):
        self._send("experiment_end", trials)
