"""The MLflow record of a sweep, in one place: tag names, params, runs, and epochs.

- One experiment per spec, tagged ``mlflow.experimentKind=custom_model_development`` so that
  MLflow 3's UI opens it on the runs table.
- A sweep is one *comparison* run; under it (``mlflow.parentRunId``) one *search* run per search;
  under each search one *trial* run per trial, found again by its trial id tag. ``gradnorm-tune
  train`` writes one *train* run.
- A trial's params are its config, flattened by :func:`encode_params` and read back by
  :func:`decode_params`; its metrics are its epochs (step = epoch), written by :func:`log_epoch`
  with the epoch's report time as timestamp, so writing an epoch twice stores it once.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .config import method_of
from .run_names import trial_run_name
from .metric_names import BEST_SCORE, BEST_TEST_SCORE, COST_KEYS, SCORE, mlflow_name, record_key
from .tracking_store import TrackingError, is_local_store

TAG_PREFIX = "gradnorm_tune."
TRIAL_ID = TAG_PREFIX + "trial_id"
ROLE = TAG_PREFIX + "role"
SEARCH = TAG_PREFIX + "search"
SWEEP = TAG_PREFIX + "sweep_id"
ERROR_TAG = TAG_PREFIX + "error"
RESTARTS = TAG_PREFIX + "restarts"
DEVICE = TAG_PREFIX + "device"
NODE = TAG_PREFIX + "node"
DIRECTORY = TAG_PREFIX + "directory"
KIND = TAG_PREFIX + "kind"
# "true" on a trial run that an early-stopping scheduler (ASHA) ended before its last epoch; the run
# is FINISHED like any other (its epochs are valid results), see :func:`trainables.outcome.stopped_early`
STOPPED_EARLY = TAG_PREFIX + "stopped_early"
# how the run's trial ended (trainables.outcome), or the comparison's verdict (trainables.sweep_runs)
OUTCOME = TAG_PREFIX + "outcome"
ERROR_LOG = "error.log"  # the artifact of a failed trial's run: its full traceback(s)
#: the keys of an epoch's record (trainables.epoch_metrics) that its run keeps as tags
#: ``gradnorm_tune.<key>``: where it ran, and (the first epoch) its problem's primary metrics
RECORD_TAGS = ("device", "node", "primary_metrics")
PRIMARY_METRICS = TAG_PREFIX + "primary_metrics"  # JSON {task: {"metric": ..., "higher_is_better": ...}}
PARENT = "mlflow.parentRunId"
EXPERIMENT_KIND = "mlflow.experimentKind"

ROLE_COMPARISON = "comparison"
ROLE_SEARCH = "search"
ROLE_TRIAL = "trial"
ROLE_TRAIN = "train"

VARIED = "varied"  # the param beside a trial's config that says what its search varied: config["label"]
#: the keys of an epoch record logged as metrics besides every "<split>/<name>" and "weight/..."
METRIC_KEYS = (SCORE, BEST_SCORE, BEST_TEST_SCORE, *COST_KEYS)
MAX_BATCH_METRICS = 1000  # MLflow's limit per log_batch
MAX_PARAM_LENGTH = 6000  # MLflow's limit per param value
MAX_TAG_LENGTH = 5000


# params

def _encode_value(value: Any) -> str:
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value  # plain text stays readable in the UI
        return json.dumps(value)  # "1", "true", '"x"': quoted, so that they come back as strings
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def _decode_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _flattens(value: Any) -> bool:
    """Whether a dict becomes one param per key (``problem.options.num_train``): non-empty, with
    names for keys that hold no dot; any other dict is one JSON param."""
    return isinstance(value, dict) and bool(value) and all(isinstance(k, str) and k and "." not in k for k in value)


def encode_params(config: dict[str, Any]) -> dict[str, str]:
    """A trial config as MLflow params, its nested dicts flattened with dots at every depth
    (``{"problem": {"options": {"n": 3}}}`` gives ``problem.options.n``); numbers, bools, lists
    and dicts that cannot be flattened (empty, or with a dot in a key) as JSON, strings as they
    are (JSON-quoted only where they would read back as something else), None left out.
    :func:`decode_params` inverts it."""
    params: dict[str, str] = {}

    def add(prefix: str, value: Any) -> None:
        if value is None:
            return
        if _flattens(value):
            for key, inner in value.items():
                add(f"{prefix}.{key}", inner)
        else:
            params[prefix] = _encode_value(value)

    for key, value in config.items():
        if not isinstance(key, str) or "." in key:
            raise ValueError(f"config key {key!r}: a top-level key cannot hold '.'; rename it")
        add(key, value)
    return params


def decode_params(params: dict[str, str]) -> dict[str, Any]:
    """The trial config back from its params (:func:`encode_params`): each dotted key nested
    again; the ``varied`` param that :func:`create_trial_run` writes beside the config is not
    part of it."""
    config: dict[str, Any] = {}
    for key, text in params.items():
        if key == VARIED:
            continue
        *outer, last = key.split(".")
        node = config
        for part in outer:
            node = node.setdefault(part, {})
        node[last] = _decode_value(text)
    return config


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)  # as log_epoch stamps its points


def _log_params(client: MlflowClient, run_id: str, params: dict[str, str]) -> None:
    items = [Param(key, value[:MAX_PARAM_LENGTH]) for key, value in params.items()]
    for start in range(0, len(items), 100):  # MLflow's limit of params per log_batch
        client.log_batch(run_id, params=items[start:start + 100])


# experiments and the runs above the trials

def artifact_root(tracking_uri: str) -> Path | None:
    """Where a local store's experiments keep their artifacts: ``mlartifacts`` beside a SQLite
    store's file (a store and its artifacts stay together, whatever the working directory), in
    the working directory for a folder store; ``None`` for a tracking server (its own root)."""
    if not is_local_store(tracking_uri):
        return None
    if tracking_uri.startswith("sqlite:///"):
        database = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
        if database and database != ":memory:":
            return Path(database).resolve().parent / "mlartifacts"
    return Path.cwd() / "mlartifacts"


def ensure_experiment(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The id of the experiment ``name``, created (tagged, and for a local store with its artifacts
    in ``<artifact root>/<name>``, see :func:`artifact_root`) the first time."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        root = artifact_root(tracking_uri)
        location = None if root is None else (root / name.replace("/", "_")).as_uri()
        try:
            # MLflow 3's UI opens an experiment without this tag as a GenAI one, with the runs hidden
            return client.create_experiment(name, artifact_location=location,
                                            tags={EXPERIMENT_KIND: "custom_model_development"})
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # another process created it meanwhile
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise TrackingError(f"experiment {name!r} is deleted; restore it (mlflow experiments restore "
                            f"--experiment-id {experiment.experiment_id}) or choose another name")
    if experiment.tags.get(EXPERIMENT_KIND) is None:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, "custom_model_development")
    return experiment.experiment_id


def create_comparison_run(client: MlflowClient, experiment_id: str, name: str, sweep_id: str,
                          directory: str) -> str:
    """The run of a whole sweep, named ``name`` (the runner's ``"<spec name> comparison"``)."""
    run = client.create_run(experiment_id, run_name=name,
                            tags={ROLE: ROLE_COMPARISON, SWEEP: sweep_id, DIRECTORY: str(directory)})
    return run.info.run_id


def create_search_run(client: MlflowClient, experiment_id: str, comparison_run_id: str, sweep_id: str,
                      search: str, search_type: str, params: dict[str, Any], *,
                      run_name: str | None = None, start_time: float | None = None) -> str:
    """One search's run under the comparison run, named ``run_name`` or else the search's name,
    started at ``start_time`` (unix seconds; default now); ``params`` (its options, grid size,
    ...) as JSON."""
    run = client.create_run(
        experiment_id, run_name=run_name or search, start_time=_ms(start_time),
        tags={PARENT: comparison_run_id, ROLE: ROLE_SEARCH, SEARCH: search, SWEEP: sweep_id, KIND: search_type},
    )
    _log_params(client, run.info.run_id, {key: json.dumps(value) for key, value in params.items()})
    return run.info.run_id


# trial runs

def find_trial_run(client: MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str) -> Run | None:
    """The trial's run under that search run, by its trial id tag; None if there is none yet."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TRIAL_ID}` = '{trial_id}' and tags.`{PARENT}` = '{parent_run_id}'",
        max_results=2,
    )
    return runs[0] if runs else None


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    """What a trial run holds as params: its config, and what its search varied."""
    return encode_params(config) | {VARIED: str(config.get("label", "-"))}


def create_trial_run(client: MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str, search: str,
                     sweep_id: str, config: dict[str, Any], start_time: float | None = None) -> Run:
    """A new run for the trial, named by its search and configuration
    (:func:`trainables.run_names.trial_run_name`: ``"gradnorm alpha=1.27 wlr=0.054"``), with its
    params; ``start_time`` in unix seconds (default: now). Look for one first
    (:func:`find_trial_run`): this always creates."""
    run = client.create_run(
        experiment_id, start_time=_ms(start_time), run_name=trial_run_name(search, config.get("label")),
        tags={PARENT: parent_run_id, TRIAL_ID: trial_id, ROLE: ROLE_TRIAL, SEARCH: search, SWEEP: sweep_id},
    )
    _log_params(client, run.info.run_id, trial_params(config))
    return run


def ensure_trial_params(client: MlflowClient, run: Run, config: dict[str, Any]) -> None:
    """Write the params a found run lacks (its creation's answer may have been lost before them)."""
    missing = {key: value for key, value in trial_params(config).items() if key not in run.data.params}
    if missing:
        _log_params(client, run.info.run_id, missing)


def trial_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[Run]:
    """All trial runs of one search run."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=f"tags.`{PARENT}` = '{parent_run_id}' and tags.`{ROLE}` = '{ROLE_TRIAL}'",
            max_results=1000, page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def metric_history(client: MlflowClient, run: Run, wanted: Callable[[str], bool] | None = None) -> list[dict[str, Any]]:
    """The run's epochs as epoch records, rebuilt from its metrics (those whose record key
    ``wanted`` says yes to; default all): ``[{"epoch": 1, "score": ..., ...}, ...]``, under the
    record's keys whatever names the run was written under (:func:`trainables.metric_names.record_key`).
    One request per metric: ask only for what you use."""
    by_step: dict[int, dict[str, Any]] = {}
    for name in run.data.metrics:
        key = record_key(name)
        if wanted is not None and not wanted(key):
            continue
        for metric in client.get_metric_history(run.info.run_id, name):
            by_step.setdefault(metric.step, {"epoch": metric.step})[key] = metric.value
    return [by_step[step] for step in sorted(by_step)]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def log_epoch(client: MlflowClient, run_id: str, record: dict[str, Any]) -> None:
    """One epoch's record (``trainables.epoch_metrics``) as metrics at step = epoch, under their
    MLflow names (:func:`trainables.metric_names.mlflow_name`), and its device and node (and the
    first epoch's primary metrics) as tags (:data:`RECORD_TAGS`). The points carry the record's
    ``reported_at`` time: written twice, stored once."""
    step = int(record["epoch"])
    timestamp = int(float(record.get("reported_at", record.get("timestamp", 0))) * 1000)
    metrics = [
        Metric(mlflow_name(key), float(value), timestamp, step)
        for key, value in record.items()
        if (key in METRIC_KEYS or "/" in key) and _is_number(value)
    ]
    tags = [RunTag(TAG_PREFIX + key, str(record[key])[:MAX_TAG_LENGTH]) for key in RECORD_TAGS if key in record]
    for start in range(0, max(len(metrics), 1), MAX_BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[start:start + MAX_BATCH_METRICS], tags=tags)


def finish_run(client: MlflowClient, run_id: str, status: str = "FINISHED", end_time: float | None = None,
               error: str | None = None) -> None:
    """End a run as ``status`` at ``end_time`` (unix seconds; default now), with its one-line error."""
    if error:
        client.set_tag(run_id, ERROR_TAG, error[:MAX_TAG_LENGTH])
    client.set_terminated(run_id, status, end_time=_ms(end_time if end_time is not None else time.time()))


# gradnorm-tune train

def start_train_run(client: MlflowClient, experiment_id: str, config: dict[str, Any],
                    start_time: float | None = None) -> str:
    """The run of one ``gradnorm-tune train``: ``train <method> <label>``, role ``train``, the config
    as params like a trial's. Log its epochs with :func:`log_epoch`, end it with :func:`finish_run`."""
    label = str(config.get("label", "-"))
    run = client.create_run(experiment_id, start_time=_ms(start_time),
                            run_name=f"train {method_of(config) or '?'} {label}", tags={ROLE: ROLE_TRAIN})
    _log_params(client, run.info.run_id, trial_params(config))
    return run.info.run_id
