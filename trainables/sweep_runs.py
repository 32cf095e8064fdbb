"""The runs above the trials: a sweep's comparison run and its search runs, from creation to end.

The sweep's driver (``sweeps``) decides when; this module is how, so that nothing else writes
these runs. Every end is idempotent (setting a run's status and tags again is harmless), so an
end that a tracking outage missed is simply written again later.

- A comparison run ends ``FINISHED`` when the sweep ran to its end, with the tag ``outcome``
  saying whether every trial ended as planned (``complete``), some failed or diverged
  (``trials_failed``) or a search got no result at all (``no_result``); ``KILLED`` with
  ``outcome=interrupted`` when the sweep was stopped (``resume`` puts it back to ``RUNNING``);
  ``FAILED`` with the error when the comparison itself failed (``report`` rebuilds it).
- A search run starts when its search's first trial starts (:func:`ensure_search_run`, called
  by the trial logger when it writes that trial's start), so that its duration in MLflow is its
  own, and ends ``FINISHED`` when it has a result, ``FAILED`` when every trial of it failed or
  diverged, ``KILLED`` when the sweep was interrupted before its last trial ended; a search that
  was skipped (the recommended static search, when its source search has no result) ends
  ``FINISHED`` with the tag ``outcome=skipped``. A search with no trial that started gets its run
  when the sweep settles.
- When the comparison is built, the comparison run gets the answer as its description
  (:func:`describe_comparison`; MLflow renders it on the run's Overview), the experiment the
  answer's gist, and every search run its own numbers under the same names
  (:func:`log_search_metrics`), so that MLflow's runs table, charts and Compare set the searches
  side by side.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS, MLFLOW_RUN_NOTE

from .tracking import (
    ERROR_TAG,
    MAX_TAG_LENGTH,
    OUTCOME,
    ROLE,
    ROLE_COMPARISON,
    ROLE_SEARCH,
    ROLE_TRIAL,
    SEARCH,
    SWEEP,
    TAG_PREFIX,
    TRIAL_ID,
    create_search_run,
    encode_params,
)

__all__ = [
    "COST_TABLE",
    "COUNTS",
    "delete_orphan_trial_runs",
    "describe_comparison",
    "end_comparison_run",
    "end_search_run",
    "ensure_search_run",
    "log_comparison",
    "log_search_metrics",
    "skip_search_run",
    "log_search_weights",
    "reopen_run",
]

#: the cost table as MLflow's own table artifact (``log_table``): sortable in its UI
COST_TABLE = "cost_table.json"

#: the comparison run's tags that count the trials of each outcome: ``gradnorm_tune.failed_trials``, ...
COUNTS = TAG_PREFIX + "{}_trials"


def _ms(seconds: float | None) -> int:
    return int((time.time() if seconds is None else seconds) * 1000)


#: the outcome tag of a search run that ran no trial by design
SKIPPED = "skipped"


def end_search_run(client: MlflowClient, run_id: str, status: str, end_time: float | None = None) -> None:
    """End a search run as ``status`` (``FINISHED``, ``FAILED`` or ``KILLED``) at ``end_time``."""
    client.set_terminated(run_id, status, end_time=_ms(end_time))


def skip_search_run(client: MlflowClient, run_id: str) -> None:
    """End the run of a search that has nothing to run (the recommended static search whose source
    has no result): ``FINISHED``, tagged ``outcome=skipped``, not an interruption's ``KILLED``."""
    client.set_tag(run_id, OUTCOME, SKIPPED)
    client.set_terminated(run_id, "FINISHED", end_time=_ms(None))


def end_comparison_run(client: MlflowClient, run_id: str, outcome: str, counts: dict[str, int],
                       error: str | None = None) -> None:
    """End the comparison run: ``KILLED`` when ``outcome`` is ``interrupted``, ``FAILED`` with
    ``error`` (one line) when the comparison itself failed, else ``FINISHED``; tagged with the
    outcome and the number of trials of each trial outcome."""
    tags = [RunTag(OUTCOME, outcome)] + [RunTag(COUNTS.format(name), str(count)) for name, count in counts.items()]
    client.log_batch(run_id, tags=tags + ([RunTag(ERROR_TAG, error[:MAX_TAG_LENGTH])] if error else []))
    status = "FAILED" if error else "KILLED" if outcome == "interrupted" else "FINISHED"
    client.set_terminated(run_id, status)


def ensure_search_run(client: MlflowClient, experiment_id: str, comparison_run_id: str, sweep_id: str,
                      search: str, search_type: str, params: dict[str, Any], start_time: float | None = None) -> str:
    """The search's run under the comparison run: found by its tags (a driver that died after
    creating it), or created now, started at ``start_time`` (unix seconds; default now): when its
    first trial started."""
    runs = client.search_runs(
        [experiment_id], max_results=1,
        filter_string=(f"tags.`{SWEEP}` = '{sweep_id}' and tags.`{ROLE}` = '{ROLE_SEARCH}' "
                       f"and tags.`{SEARCH}` = '{search}'"))
    if runs:
        return runs[0].info.run_id
    return create_search_run(client, experiment_id, comparison_run_id, sweep_id, search, search_type, params,
                             start_time=start_time)


def _log_new(client: MlflowClient, run_id: str, metrics: dict[str, float]) -> None:
    """``metrics`` (in their order) that the run does not hold at that value yet: a rebuilt
    report logs no value twice, and a changed one (a resumed sweep's) once more."""
    logged = client.get_run(run_id).data.metrics
    now = _ms(None)
    new = [Metric(name, float(value), now, 0) for name, value in metrics.items() if logged.get(name) != float(value)]
    for start in range(0, len(new), 1000):  # (one request each: MLflow takes 1000 metrics a batch)
        client.log_batch(run_id, metrics=new[start:start + 1000])


def log_comparison(client: MlflowClient, run_id: str, folder: str | Path, figures: dict[str, Any],
                   metrics: dict[str, float], table: list[dict[str, Any]] | None = None) -> None:
    """The comparison's record on its run: the files in ``folder`` as artifacts, each matplotlib
    figure with ``log_figure`` (the MLflow UI shows it in the run's artifacts), ``metrics`` not
    yet held at their value, in their order, and ``table`` (one dict per row) as MLflow's own
    table, :data:`COST_TABLE` (``log_table``; on a rebuilt report it is written again whole, not
    appended to as ``log_table`` would)."""
    client.log_artifacts(run_id, str(folder))
    for name, figure in figures.items():
        client.log_figure(run_id, figure, name)
    if table is not None:
        _log_table(client, run_id, table)
    _log_new(client, run_id, metrics)


def _log_table(client: MlflowClient, run_id: str, rows: list[dict[str, Any]]) -> None:
    import pandas

    data = pandas.DataFrame(rows)
    if COST_TABLE not in {item.path for item in client.list_artifacts(run_id)}:
        client.log_table(run_id, data=data, artifact_file=COST_TABLE)
        return
    import tempfile

    with tempfile.TemporaryDirectory() as directory:  # log_table's own format (pandas' "split" JSON)
        path = Path(directory) / COST_TABLE
        data.to_json(path, orient="split", index=False, date_format="iso")
        client.log_artifact(run_id, str(path))
    tagged = json.loads(client.get_run(run_id).data.tags.get(MLFLOW_LOGGED_ARTIFACTS, "[]"))
    if {"path": COST_TABLE, "type": "table"} not in tagged:
        client.set_tag(run_id, MLFLOW_LOGGED_ARTIFACTS, json.dumps([*tagged, {"path": COST_TABLE, "type": "table"}]))


def log_search_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float]) -> None:
    """A search's own numbers on its run (:func:`_log_new`: no value twice)."""
    _log_new(client, run_id, metrics)


def describe_comparison(client: MlflowClient, experiment_id: str, run_id: str, description: str, line: str) -> None:
    """The answer where MLflow shows it: ``description`` (Markdown) as the comparison run's
    description (the ``mlflow.note.content`` tag, rendered on its Overview), and ``line`` as the
    experiment's (the same tag on the experiment) when this comparison run is the experiment's
    latest: a report rebuilt for an earlier sweep leaves the latest sweep's line in place. A
    description longer than a tag holds keeps the paragraphs that fit."""
    while len(description) > MAX_TAG_LENGTH and "\n\n" in description.rstrip():
        description = description.rstrip().rsplit("\n\n", 1)[0] + "\n"
    client.set_tag(run_id, MLFLOW_RUN_NOTE, description[:MAX_TAG_LENGTH])
    latest = client.search_runs([experiment_id], filter_string=f"tags.`{ROLE}` = '{ROLE_COMPARISON}'",
                                order_by=["attributes.start_time DESC"], max_results=1)
    if not latest or latest[0].info.run_id == run_id:
        client.set_experiment_tag(experiment_id, MLFLOW_RUN_NOTE, line)


def reopen_run(client: MlflowClient, run_id: str) -> None:
    """Put an ended run (a comparison or search run of an interrupted sweep) back to RUNNING."""
    if client.get_run(run_id).info.status != "RUNNING":
        client.update_run(run_id, status="RUNNING")


def log_search_weights(client: MlflowClient, run_id: str, weights: list[float]) -> None:
    """The recommended static search's weights, as its run's ``weights`` param."""
    client.log_param(run_id, "weights", encode_params({"weights": weights})["weights"])


def delete_orphan_trial_runs(client: MlflowClient, experiment_id: str, sweep_id: str, known: set[str]) -> int:
    """Delete the sweep's trial runs whose trial id is not in ``known`` (trials of a killed driver
    that the restored experiment never knew, redone by new trials); returns how many."""
    runs = client.search_runs([experiment_id], max_results=5000,
                              filter_string=f"tags.`{SWEEP}` = '{sweep_id}' and tags.`{ROLE}` = '{ROLE_TRIAL}'")
    orphans = [run for run in runs if run.data.tags.get(TRIAL_ID) not in known]
    for run in orphans:
        client.delete_run(run.info.run_id)
    return len(orphans)
