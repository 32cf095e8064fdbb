"""The core trainer as a Ray Tune trainable, with checkpoints, and its MLflow record.

What callers outside this package use is exported here; the record's own format (tag names,
params, runs) is :mod:`trainables.tracking`'s, and how a trial ended is :mod:`trainables.outcome`'s.

Importing this package is cheap: each name is imported from its module on first use (so that a
command that needs no Ray or MLflow does not load them).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MAX_SEED": "config",
    "ProblemConfig": "config",
    "TrainingConfig": "config",
    "TrialBase": "config",
    "TrialConfig": "config",
    "TrialConfigError": "config_errors",  # (config's own, without the torch that config imports)
    "epochs_of": "config",
    "label_of": "config",
    "logs_of": "config",
    "search_of": "config",
    "weights_of": "config",
    "name_problem": "limits",
    "error_line": "failures",
    "user_error": "failures",
    "MlflowTrialLogger": "mlflow_logger",
    "Outcome": "outcome",
    "is_marker": "outcome",
    "outcome_of": "outcome",
    "delete_orphan_trial_runs": "sweep_runs",
    "describe_comparison": "sweep_runs",
    "end_comparison_run": "sweep_runs",
    "end_search_run": "sweep_runs",
    "ensure_search_run": "sweep_runs",
    "log_comparison": "sweep_runs",
    "log_search_metrics": "sweep_runs",
    "log_search_weights": "sweep_runs",
    "skip_search_run": "sweep_runs",
    "reopen_run": "sweep_runs",
    "DEVICE": "tracking",
    "DIRECTORY": "tracking",
    "ERROR_LOG": "tracking",
    "ERROR_TAG": "tracking",
    "EXPERIMENT_KIND": "tracking",
    "KIND": "tracking",
    "OUTCOME": "tracking",
    "PARENT": "tracking",
    "PRIMARY_METRICS": "tracking",
    "RESTARTS": "tracking",
    "ROLE": "tracking",
    "ROLE_TRIAL": "tracking",
    "SEARCH": "tracking",
    "STOPPED_EARLY": "tracking",
    "SWEEP": "tracking",
    "TRIAL_ID": "tracking",
    "VARIED": "tracking",
    "create_comparison_run": "tracking",
    "create_search_run": "tracking",
    "decode_params": "tracking",
    "encode_params": "tracking",
    "ensure_experiment": "tracking",
    "finish_run": "tracking",
    "log_epoch": "tracking",
    "metric_history": "tracking",
    "start_train_run": "tracking",
    "trial_runs": "tracking",
    "CLIENT_SETTINGS": "tracking_store",
    "TrackingError": "tracking_store",
    "check_tracking_server": "tracking_store",
    "default_tracking_uri": "tracking_store",
    "first_line": "tracking_store",
    "is_local_store": "tracking_store",
    "reach_tracking_server": "tracking_store",
    "redact": "tracking_store",
    "tracking_client": "tracking_store",
    "checkpoint_history": "trainable",
    "epoch_metrics": "trainable",
    "task_error_metric": "trainable",
    "train_trial": "trainable",
}

#: modules callers use as a whole: ``storage`` (a sweep's storage, a path or a URI),
#: ``metric_names`` (a trial's metrics: the record's keys and their MLflow names) and ``run_names``
#: (a trial's name from its configuration); the last two are pure Python
_MODULES = ("storage", "metric_names", "run_names")

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
