"""Each Tune trial as one MLflow child run, written from the driver only.

Writing from the driver keeps a single writer on the tracking store (SQLite included) and lets a
trial restored from a checkpoint, or a whole sweep resumed after its driver died, find its run
again by the trial id tag: a trial never gets two runs, and an epoch is logged at most once.

When the tracking server cannot be reached, updates wait in order in a buffer and are retried
every ``retry_seconds`` while the trials go on; the experiment's end waits up to
``patience_seconds`` for the server (the buffer and its writer thread are
:class:`~trainables.write_queue.WriteQueue`). Every write is idempotent (a run is found by its tag before
one is created; a metric point carries its report time, so writing it twice stores it once), so
a write whose answer was lost can be retried safely. A search's run is created when the first of
its trials' starts is written, started then (:func:`~trainables.sweep_runs.ensure_search_run`),
and its own writes (its end, the recommended static's weights) wait in the same queue, after its
trials'. :meth:`MlflowTrialLogger.reconcile` finally
compares every trial's runs with its checkpointed history and writes what is missing: the
checkpoints, not the buffer, are the record. A run's start and end are the trial's own, however
late they are written. The record's format is :mod:`trainables.tracking`'s.

The writes happen on a thread of their own, in order, so that Tune's loop never waits on the
tracking store: a trial's report is handed back to it at once (on SQLite an epoch's write takes
about 30 ms, longer than the epochs of a small problem).
"""

from __future__ import annotations

import time
from typing import Any

from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from . import storage
from .config import epochs_of, search_of
from .outcome import ERROR, LOG, Outcome, is_marker, outcome_of
from .trainable import checkpoint_history
from .tracking import (
    ERROR_LOG,
    OUTCOME,
    RESTARTS,
    STOPPED_EARLY,
    create_trial_run,
    ensure_trial_params,
    find_trial_run,
    finish_run,
    log_epoch,
)
from .tracking_store import first_line
from .sweep_runs import end_search_run, ensure_search_run, log_search_weights
from .updates import SearchUpdate, TrialUpdate, last_line, tune_error_text
from .write_queue import WriteQueue


class MlflowTrialLogger(tune.Callback):
    """Logs params, per-epoch metrics (step = epoch), device, status, times and errors of every
    trial of a sweep under the run of the trial's search (``config["search"]``).

    ``parents`` maps each search's name to its MLflow run id; the logger keeps this very dict
    (``logger.parents``), so a search added while the experiment runs is added to it. ``plans``
    maps a search without a run yet to ``(its type, its run's params)``: its run is created under
    ``comparison_run_id`` when its first trial's start is written, and added to ``parents``.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parents: dict[str, str], sweep_id: str,
                 retry_seconds: float = 2.0, patience_seconds: float = 300.0, logs: str | None = None,
                 comparison_run_id: str | None = None, plans: dict[str, tuple[str, dict[str, Any]]] | None = None):
        self.tracking_uri = tracking_uri
        self._client: MlflowClient | None = None
        self.experiment_id = experiment_id
        self.parents = parents
        self.comparison_run_id = comparison_run_id
        self.plans = plans if plans is not None else {}
        self.sweep_id = sweep_id
        self.retry_seconds = retry_seconds
        self.patience_seconds = patience_seconds
        self.logs = logs  # the sweep's logs folder: failed trials' tracebacks (trainables.failures)
        self._runs: dict[str, str] = {}
        self._status: dict[str, str] = {}
        self._last_epoch: dict[str, int] = {}
        self._writes: WriteQueue[TrialUpdate | SearchUpdate] = WriteQueue(self._write, retry_seconds, patience_seconds)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    @property
    def pending(self) -> int:
        """Updates not yet written (the server was unreachable)."""
        return len(self._writes)

    @property
    def outages(self) -> int:
        """How many times the tracking server went away."""
        return self._writes.outages

    @property
    def last_error(self) -> str:
        """The last failed write's error, one line."""
        return self._writes.last_error

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment; a restored one starts with a new client
        # and finds its runs again by tag. Unwritten updates are rebuilt from the checkpoints.
        return {**self.__dict__, "_client": None, "_runs": {}, "_status": {}, "_last_epoch": {}, "_writes": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._writes = WriteQueue(self._write, self.retry_seconds, self.patience_seconds)

    def search_of(self, config: dict[str, Any]) -> str:
        """The trial's search, which must have a run in ``parents``, or one planned (``plans``)."""
        search = search_of(config)
        if search not in self.parents and search not in self.plans:
            known = ", ".join(sorted(self.parents)) or "none"
            raise ValueError(f"trial config's search {search!r} has no MLflow run in MlflowTrialLogger.parents "
                             f"(known: {known}); add it before the search's trials start")
        return search

    def run_id(self, trial_id: str, config: dict[str, Any], started: float | None = None) -> str:
        """The trial's run: found by its trial id tag under its search's run, or created
        (started at ``started``, unix seconds; default now)."""
        if trial_id in self._runs:
            return self._runs[trial_id]
        search = self.search_of(config)
        parent = self.search_run(search, started)
        run = find_trial_run(self.client, self.experiment_id, parent, trial_id)
        if run is None:
            run = create_trial_run(self.client, self.experiment_id, parent, trial_id, search, self.sweep_id,
                                   config, start_time=started)
            last = 0
        else:
            ensure_trial_params(self.client, run, config)
            # compute_seconds: in every epoch's record ("score" only where it validated)
            history = self.client.get_metric_history(run.info.run_id, "compute_seconds")
            last = max((m.step for m in history), default=0)
        self._runs[trial_id] = run.info.run_id
        self._status[trial_id] = run.info.status
        self._last_epoch[trial_id] = last
        return run.info.run_id

    def search_run(self, search: str, started: float | None = None) -> str:
        """The search's run: from ``parents``, else found by its tags or created, started at
        ``started`` (unix seconds; its first trial's start), from its ``plans`` entry."""
        if search not in self.parents:
            kind, params = self.plans[search]
            self.parents[search] = ensure_search_run(self.client, self.experiment_id, self.comparison_run_id,
                                                     self.sweep_id, search, kind, params, start_time=started)
        return self.parents[search]

    def end_search(self, search: str, status: str, ended: float) -> None:
        """Queue the end of the search's run (after its trials' updates)."""
        self._writes.put(SearchUpdate(search, status=status, ended=ended))

    def search_weights(self, search: str, weights: list[float]) -> None:
        """Queue the recommended static search's weights, as its run's ``weights`` param."""
        self._writes.put(SearchUpdate(search, weights=weights))

    # Tune's callbacks: each queues an update, then writes what it can
    def on_trial_start(self, iteration, trials, trial, **info):
        self.queue(TrialUpdate(trial.trial_id, trial.config, started=time.time()))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not is_marker(result):  # a failed or diverged trial's last word: its end says it
            self.queue(TrialUpdate(trial.trial_id, trial.config, [result], checkpoint=trial.checkpoint))

    def on_trial_recover(self, iteration, trials, trial, **info):
        # a failed attempt (its node died, say) that Tune retries from the last checkpoint; Tune
        # counts them, and keeps the count across a restored sweep
        self.queue(TrialUpdate(trial.trial_id, trial.config, tags={RESTARTS: str(trial.num_failures)}))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.queue(self.ending(trial.trial_id, trial.config, trial.last_result, errored=False, ended=True))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.queue(self.failed_by_tune(trial))

    def failed_by_tune(self, trial) -> TrialUpdate:
        """The end of a trial Tune gave up on (a lost worker or node, ``--max-failures`` times, or
        an error the trainable raised for a retry): its error file says why, and goes to its log."""
        text = tune_error_text(trial)
        update = self.ending(trial.trial_id, trial.config, trial.last_result, errored=True, ended=True)
        update.error = last_line(text)
        update.log = self._keep_log(trial.trial_id, text)
        return update

    def on_experiment_end(self, trials, **info):
        self.flush()

    def ending(self, trial_id: str, config: dict[str, Any], last_result: dict[str, Any] | None, *,
               errored: bool, ended: bool, ended_at: float | None = None) -> TrialUpdate:
        """The update that ends a trial's run as its outcome says (``trainables.outcome``)."""
        outcome = outcome_of(epochs_of(config), last_result, errored=errored, ended=ended)
        marker = last_result if is_marker(last_result) else {}
        tags = {OUTCOME: outcome.value} | ({STOPPED_EARLY: "true"} if outcome == Outcome.STOPPED else {})
        return TrialUpdate(trial_id, config, outcome=outcome, tags=tags, error=marker.get(ERROR),
                           log=marker.get(LOG), ended=time.time() if ended_at is None else ended_at)

    def _keep_log(self, trial_id: str, text: str) -> str | None:
        """Append Tune's error text to the trial's log in the sweep's logs folder; its location."""
        if not self.logs or not text:
            return None
        from .failures import TrialFailures

        failures = TrialFailures(self.logs, trial_id)
        failures.append(text)
        return failures.log

    def reconcile(self, results, statuses: dict[str, str], configs: dict[str, dict[str, Any]] | None = None) -> None:
        """Make every trial's run match its checkpointed history and its end (``results``, a Tune
        ResultGrid; ``statuses``, each trial's Tune status at the experiment's end, as callbacks
        saw it; ``configs``, each trial's config as Tune's trials hold it, for a trial that never
        reported, whose result holds no config). A trial that ended gets its outcome's status; one
        cut off by an interruption (neither TERMINATED nor ERROR) ends KILLED at its last
        checkpointed epoch, for ``resume`` to continue; one that never started and never reported
        has no run and gets none. A trial this logger has already written whole, end included, is
        not read again."""
        self.flush()  # what is queued first: then only what is still missing is read back
        updates = []
        for result in results:
            metrics = result.metrics or {}
            trial_id = metrics.get("trial_id")
            if not trial_id:
                continue
            status = statuses.get(trial_id)
            config = dict(result.config or (configs or {}).get(trial_id) or {})
            if "epoch" not in metrics and (search_of(config) not in self.parents
                                           or trial_id not in self._runs and status in (None, "PENDING")):
                continue  # never reported, and never started (or of no known search): no run to end
            self.search_of(config)
            errored = status == "ERROR" or result.error is not None
            update = self.ending(trial_id, config, metrics, errored=errored, ended=errored or status == "TERMINATED")
            if (self._status.get(trial_id) == update.outcome.run_status
                    and self._last_epoch.get(trial_id, -1) >= int(metrics.get("epoch", 0))):
                continue
            try:
                history = checkpoint_history(result.checkpoint) if result.checkpoint is not None else []
            except (OSError, KeyError, RuntimeError):
                history = []
            update.records = history
            update.ended = float(history[-1].get("reported_at", time.time())) if history else time.time()
            if errored and update.error is None:
                update.error = first_line(result.error)
            updates.append(update)
        self._writes.extend(updates)
        self.flush()

    def close(self) -> None:
        """Stop the writer thread (after the last flush; what is still pending stays pending)."""
        self._writes.close()

    def flush(self) -> None:
        """Write the buffered updates, retrying until ``patience_seconds`` after the experiment's end
        (the first flush marks it: the end and the reconcile after it wait once, not twice)."""
        self._writes.flush()

    def queue(self, update: TrialUpdate) -> None:
        self.search_of(update.config)
        self._writes.put(update)

    def _write(self, update: TrialUpdate | SearchUpdate) -> None:
        if isinstance(update, SearchUpdate):
            run_id = self.search_run(update.search, update.ended)
            if update.weights is not None:
                log_search_weights(self.client, run_id, update.weights)
            if update.status is not None:
                end_search_run(self.client, run_id, update.status, update.ended)
            return
        trial_id = update.trial_id
        run_id = self.run_id(trial_id, update.config, update.start_time())
        last = self._last_epoch[trial_id]
        records = [r for r in update.records if int(r.get("epoch", 0)) > last]
        if records and int(records[0]["epoch"]) > last + 1 and update.checkpoint is not None:
            # the driver died after these epochs were checkpointed but before they were logged
            first = int(records[0]["epoch"])
            try:
                records = [r for r in checkpoint_history(update.checkpoint) if last < r["epoch"] < first] + records
            except (OSError, KeyError, RuntimeError):
                pass  # that checkpoint is gone already: the reconcile at the end writes the gap
        for record in records:
            log_epoch(self.client, run_id, record)
            self._last_epoch[trial_id] = int(record["epoch"])
        if update.outcome is None and records and self._status.get(trial_id) in ("KILLED", "FAILED"):
            # a trial of an interrupted sweep (or one retried on resume) goes on: so does its run
            self.client.update_run(run_id, status="RUNNING")
            self._status[trial_id] = "RUNNING"
        if update.tags:
            self.client.log_batch(run_id, tags=[RunTag(key, value) for key, value in update.tags.items()])
        if update.log and self._status.get(trial_id) != update.outcome.run_status:
            text = storage.read_text(update.log)
            if text:
                self.client.log_text(run_id, text, ERROR_LOG)
        if update.outcome is not None and self._status.get(trial_id) != update.outcome.run_status:
            finish_run(self.client, run_id, update.outcome.run_status, end_time=update.ended, error=update.error)
            self._status[trial_id] = update.outcome.run_status
