"""The runs above the trials: a sweep's comparison run and its search runs, from creation to end.

The sweep's driver (``sweeps``) decides when; this module is how, so that nothing else writes
these runs. Every end is idempotent (setting a run's status and tags again is harmless), so an
end that a tracking outage missed is simply written again later.

- A comparison run ends ``FINISHED`` when the sweep ran to its end, with the tag ``outcome``
  saying whether every trial ended as planned (``complete``), some failed or diverged
  (``trials_failed``) or a search got no result at all (``no_result``); ``KILLED`` with
  ``outcome=interrupted`` when the sweep was stopped (``resume`` puts it back to ``RUNNING``);
  ``FAILED`` with the error when the comparison itself failed (``report`` rebuilds it).
- A search run ends ``FINISHED`` when it has a result, ``FAILED`` when every trial of it failed or
  diverged, ``KILLED`` when the sweep was interrupted before its last trial ended; a search that
  was skipped (the recommended static search, when its source search has no result) ends
  ``FINISHED`` with the tag ``outcome=skipped``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient

from .tracking import ERROR_TAG, MAX_TAG_LENGTH, OUTCOME, ROLE, ROLE_TRIAL, SWEEP, TAG_PREFIX, TRIAL_ID, encode_params

__all__ = [
    "COUNTS",
    "delete_orphan_trial_runs",
    "end_comparison_run",
    "end_search_run",
    "log_comparison",
    "skip_search_run",
    "log_search_weights",
    "reopen_run",
]

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


def log_comparison(client: MlflowClient, run_id: str, folder: str | Path, figures: dict[str, Any],
                   metrics: dict[str, float]) -> None:
    """The comparison's record on its run: the files in ``folder`` as artifacts, each matplotlib
    figure with ``log_figure`` (the MLflow UI shows it in the run's artifacts), and ``metrics``
    that the run does not hold yet (a rebuilt report logs no value twice)."""
    client.log_artifacts(run_id, str(folder))
    for name, figure in figures.items():
        client.log_figure(run_id, figure, name)
    logged = client.get_run(run_id).data.metrics
    now = _ms(None)
    new = [Metric(name, float(value), now, 0) for name, value in metrics.items() if name not in logged]
    for start in range(0, len(new), 1000):  # (one request each: MLflow takes 1000 metrics a batch)
        client.log_batch(run_id, metrics=new[start:start + 1000])


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
