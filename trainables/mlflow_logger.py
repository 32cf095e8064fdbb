"""Each Tune trial as one MLflow child run, written from the driver only.

Writing from the driver keeps a single writer on the tracking store (SQLite included) and lets a
trial restored from a checkpoint, or a whole sweep resumed after its driver died, find its run
again by the trial id tag: a trial never gets two runs, and an epoch is logged at most once.
"""

from __future__ import annotations

import json
import math
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
PARENT = "mlflow.parentRunId"
METRIC_KEYS = ("score", "best_score", "best_test_score", "compute_seconds")


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


class MlflowTrialLogger(tune.Callback):
    """Logs params, per-epoch metrics (step = epoch), device, status and errors of every trial
    of one search under that search's parent run."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, search: str, sweep_id: str):
        self.tracking_uri = tracking_uri
        self._client: MlflowClient | None = None
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.search = search
        self.sweep_id = sweep_id
        self._runs: dict[str, str] = {}
        self._last_epoch: dict[str, int] = {}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment; a restored one starts with a new client
        # and finds its runs again by tag.
        return {**self.__dict__, "_client": None, "_runs": {}, "_last_epoch": {}}

    def run_id(self, trial) -> str:
        """The trial's run: found by its trial id tag, or created."""
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        run = find_trial_run(self.client, self.experiment_id, self.parent_run_id, trial.trial_id)
        if run is None:
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"{self.search}-{trial.trial_id}",
                tags={PARENT: self.parent_run_id, TRIAL_ID: trial.trial_id, ROLE: "trial",
                      SEARCH: self.search, SWEEP: self.sweep_id},
            )
            params = [Param(k, v[:6000]) for k, v in trial_params(trial.config).items()]
            try:
                params.append(Param("varied", TrialConfig.from_dict(trial.config).describe()))
            except TrialConfigError:
                pass
            self.client.log_batch(run.info.run_id, params=params)
            last = 0
        else:
            history = self.client.get_metric_history(run.info.run_id, "score")
            last = max((m.step for m in history), default=0)
        self._runs[trial.trial_id] = run.info.run_id
        self._last_epoch[trial.trial_id] = last
        return run.info.run_id

    def on_trial_start(self, iteration, trials, trial, **info):
        self.run_id(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        run_id = self.run_id(trial)
        epoch = int(result.get("epoch", 0))
        last = self._last_epoch[trial.trial_id]
        if epoch <= last:
            return  # logged before the trial (or the sweep) was restarted
        records = [result]
        if epoch > last + 1 and trial.checkpoint is not None:
            # the driver died after these epochs were checkpointed but before they were logged
            records = [r for r in checkpoint_history(trial.checkpoint) if last < r["epoch"] < epoch] + records
        for record in records:
            self._log_epoch(run_id, record)
        self._last_epoch[trial.trial_id] = epoch

    def _log_epoch(self, run_id: str, record: dict[str, Any]) -> None:
        step = int(record["epoch"])
        timestamp = int(record.get("timestamp", 0) * 1000) or 0
        metrics = [
            Metric(key, float(value), timestamp, step)
            for key, value in record.items()
            if (key in METRIC_KEYS or "/" in key) and _is_number(value)
        ]
        tags = [RunTag(TAG_PREFIX + "device", str(record["device"]))] if "device" in record else []
        self.client.log_batch(run_id, metrics=metrics, tags=tags)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.client.set_terminated(self.run_id(trial), "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        run_id = self.run_id(trial)
        message = trial_error_message(trial)
        self.client.set_tag(run_id, ERROR_TAG, message[:5000])
        self.client.set_terminated(run_id, "FAILED")


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
