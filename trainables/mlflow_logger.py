"""Each Tune trial as one MLflow child run, written from the driver only.

Writing from the driver keeps a single writer on the tracking store (SQLite included) and lets a
trial restored from a checkpoint, or a whole sweep resumed after its driver died, find its run
again by the trial id tag: a trial never gets two runs, and an epoch is logged at most once.

When the tracking server cannot be reached, updates wait in order in a buffer and are retried
every ``retry_seconds`` while the trials go on; the search's end waits up to
``patience_seconds`` for the server. Every write is idempotent (a run is found by its tag before
one is created; a metric point carries its report time, so writing it twice stores it once), so
a write whose answer was lost can be retried safely. :meth:`MlflowTrialLogger.reconcile` finally
compares every trial's runs with its checkpointed history and writes what is missing: the
checkpoints, not the buffer, are the record.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from .config import TrialConfig, TrialConfigError
from .trainable import checkpoint_history

TAG_PREFIX = "gradnorm_tune."
TRIAL_ID = TAG_PREFIX + "trial_id"
ROLE = TAG_PREFIX + "role"
SEARCH = TAG_PREFIX + "search"
SWEEP = TAG_PREFIX + "sweep_id"
ERROR_TAG = TAG_PREFIX + "error"
RESTARTS = TAG_PREFIX + "restarts"
PARENT = "mlflow.parentRunId"
METRIC_KEYS = ("score", "best_score", "best_test_score", "compute_seconds")
MAX_BATCH_METRICS = 1000  # MLflow's limit per log_batch


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    """A trial config flattened into MLflow params (strings)."""
    params: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            for inner, inner_value in value.items():
                params[f"{key}.{inner}"] = json.dumps(inner_value) if isinstance(inner_value, (list, dict)) else str(inner_value)
        elif value is not None:
            params[key] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return params


def find_trial_run(client: MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str):
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TRIAL_ID}` = '{trial_id}' and tags.`{PARENT}` = '{parent_run_id}'",
        max_results=2,
    )
    return runs[0] if runs else None


@contextlib.contextmanager
def temporary_environment(**values: str) -> Iterator[None]:
    """These environment variables inside the block, their old values (or absence) after it."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def fail_fast(timeout_seconds: float = 10.0):
    """MLflow requests in this block try once: the client's own retries back off for minutes."""
    return temporary_environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                                 MLFLOW_HTTP_REQUEST_TIMEOUT=str(int(timeout_seconds)))


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


@dataclass
class TrialUpdate:
    """What one trial's run needs next: epochs to log, then possibly its end."""

    trial_id: str
    config: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Any = None  # where epochs missing before ``records`` can be read back
    status: str | None = None
    error: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


class MlflowTrialLogger(tune.Callback):
    """Logs params, per-epoch metrics (step = epoch), device, status and errors of every trial
    of one search under that search's parent run."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, search: str, sweep_id: str,
                 retry_seconds: float = 2.0, patience_seconds: float = 300.0):
        self.tracking_uri = tracking_uri
        self._client: MlflowClient | None = None
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.search = search
        self.sweep_id = sweep_id
        self.retry_seconds = retry_seconds
        self.patience_seconds = patience_seconds
        self._runs: dict[str, str] = {}
        self._status: dict[str, str] = {}
        self._last_epoch: dict[str, int] = {}
        self._pending: list[TrialUpdate] = []
        self._retry_at = 0.0
        self._outage_since: float | None = None
        self._end_deadline: float | None = None  # set when the search ends: all waiting shares it
        self.outages = 0
        self.last_error = ""

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    @property
    def pending(self) -> int:
        """Updates not yet written (the server was unreachable)."""
        return len(self._pending)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment; a restored one starts with a new client
        # and finds its runs again by tag. Unwritten updates are rebuilt from the checkpoints.
        return {**self.__dict__, "_client": None, "_runs": {}, "_status": {}, "_last_epoch": {},
                "_pending": [], "_retry_at": 0.0, "_outage_since": None, "_end_deadline": None}

    def run_id(self, trial_id: str, config: dict[str, Any]) -> str:
        """The trial's run: found by its trial id tag, or created."""
        if trial_id in self._runs:
            return self._runs[trial_id]
        run = find_trial_run(self.client, self.experiment_id, self.parent_run_id, trial_id)
        if run is None:
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"{self.search}-{trial_id}",
                tags={PARENT: self.parent_run_id, TRIAL_ID: trial_id, ROLE: "trial",
                      SEARCH: self.search, SWEEP: self.sweep_id},
            )
            params = [Param(k, v[:6000]) for k, v in trial_params(config).items()]
            try:
                params.append(Param("varied", TrialConfig.from_dict(config).describe()))
            except TrialConfigError:
                pass
            self.client.log_batch(run.info.run_id, params=params)
            last = 0
        else:
            history = self.client.get_metric_history(run.info.run_id, "score")
            last = max((m.step for m in history), default=0)
        self._runs[trial_id] = run.info.run_id
        self._status[trial_id] = run.info.status
        self._last_epoch[trial_id] = last
        return run.info.run_id

    # Tune's callbacks: each queues an update, then writes what it can
    def on_trial_start(self, iteration, trials, trial, **info):
        self._queue(TrialUpdate(trial.trial_id, trial.config))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._queue(TrialUpdate(trial.trial_id, trial.config, [result], checkpoint=trial.checkpoint))

    def on_trial_recover(self, iteration, trials, trial, **info):
        # a failed attempt (its node died, say) that Tune retries from the last checkpoint; Tune
        # counts them, and keeps the count across a restored sweep
        self._queue(TrialUpdate(trial.trial_id, trial.config, tags={RESTARTS: str(trial.num_failures)}))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._queue(TrialUpdate(trial.trial_id, trial.config, status="FINISHED"))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._queue(TrialUpdate(trial.trial_id, trial.config, status="FAILED", error=trial_error_message(trial)))

    def on_experiment_end(self, trials, **info):
        self.flush()

    def reconcile(self, results) -> None:
        """Make every trial's run match its checkpointed history and its end (a Tune ResultGrid)."""
        for result in results:
            trial_id = (result.metrics or {}).get("trial_id")
            if not trial_id:
                continue
            try:
                history = checkpoint_history(result.checkpoint) if result.checkpoint is not None else []
            except (OSError, KeyError, RuntimeError):
                history = []
            failed = result.error is not None
            self._pending.append(TrialUpdate(
                trial_id, dict(result.config or {}), history,
                status="FAILED" if failed else "FINISHED",
                error=first_line(result.error) if failed else None,
            ))
        self.flush()

    def flush(self) -> None:
        """Write the buffered updates, retrying until ``patience_seconds`` after the search's end
        (the first flush marks it: the end and the reconcile after it wait once, not twice)."""
        if self._end_deadline is None:
            self._end_deadline = time.monotonic() + self.patience_seconds
        deadline = self._end_deadline
        while True:
            self._retry_at = 0.0
            self._write_pending()
            if not self._pending or time.monotonic() >= deadline:
                return
            time.sleep(min(self.retry_seconds, max(0.0, deadline - time.monotonic())))

    def _queue(self, update: TrialUpdate) -> None:
        self._pending.append(update)
        self._write_pending()

    def _write_pending(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        with fail_fast():
            while self._pending:
                try:
                    self._write(self._pending[0])
                except Exception as error:  # noqa: BLE001 - kept and retried, whatever the cause
                    self._retry_at = time.monotonic() + self.retry_seconds
                    self.last_error = first_line(error)
                    if self._outage_since is None:
                        self._outage_since = time.time()
                        self.outages += 1
                        print(f"  [{self.search}] tracking server unreachable ({self.last_error}); "
                              f"keeping updates and retrying every {self.retry_seconds:g} s", flush=True)
                    return
                self._pending.pop(0)
        if self._outage_since is not None:
            print(f"  [{self.search}] tracking server back after {time.time() - self._outage_since:.0f} s; "
                  "buffered updates written", flush=True)
            self._outage_since = None

    def _write(self, update: TrialUpdate) -> None:
        run_id = self.run_id(update.trial_id, update.config)
        last = self._last_epoch[update.trial_id]
        records = [r for r in update.records if int(r.get("epoch", 0)) > last]
        if records and int(records[0]["epoch"]) > last + 1 and update.checkpoint is not None:
            # the driver died after these epochs were checkpointed but before they were logged
            first = int(records[0]["epoch"])
            records = [r for r in checkpoint_history(update.checkpoint) if last < r["epoch"] < first] + records
        for record in records:
            self._log_epoch(run_id, record)
            self._last_epoch[update.trial_id] = int(record["epoch"])
        if update.tags:
            self.client.log_batch(run_id, tags=[RunTag(key, value) for key, value in update.tags.items()])
        if update.error and self._status.get(update.trial_id) != "FAILED":
            self.client.set_tag(run_id, ERROR_TAG, update.error[:5000])
        if update.status and self._status.get(update.trial_id) != update.status:
            self.client.set_terminated(run_id, update.status)
            self._status[update.trial_id] = update.status

    def _log_epoch(self, run_id: str, record: dict[str, Any]) -> None:
        step = int(record["epoch"])
        # the trainable's own report time: the same point written twice is stored once
        timestamp = int(float(record.get("reported_at", record.get("timestamp", 0))) * 1000)
        metrics = [
            Metric(key, float(value), timestamp, step)
            for key, value in record.items()
            if (key in METRIC_KEYS or "/" in key) and _is_number(value)
        ]
        tags = [RunTag(TAG_PREFIX + key, str(record[key])) for key in ("device", "node") if key in record]
        for start in range(0, max(len(metrics), 1), MAX_BATCH_METRICS):
            self.client.log_batch(run_id, metrics=metrics[start:start + MAX_BATCH_METRICS], tags=tags)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def trial_error_message(trial) -> str:
    """The last line of the trial's error: for a config error, its one-line reason."""
    text = ""
    error_file = getattr(trial, "error_file", None)
    if error_file:
        try:
            with open(error_file) as handle:
                text = handle.read()
        except OSError:
            text = ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if "TrialConfigError:" in line:
            return line.split("TrialConfigError:", 1)[1].strip()
    return lines[-1] if lines else "trial failed (no error file)"
