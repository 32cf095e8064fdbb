"""How a trial ended, in one place: the five outcomes, the marker result a trial reports when it
ends without finishing, and how an ended trial's outcome is read back.

- ``finished``: trained all its epochs.
- ``stopped``: an early-stopping scheduler (ASHA) ended it before its last epoch; its epochs are
  valid results.
- ``failed``: an exception ended it (its error kept; a deterministic error in user code is not
  retried, see :mod:`trainables.failures`), or Tune gave up retrying it (a lost worker or node).
- ``diverged``: a task loss or the validation score turned NaN or infinite.
- ``killed``: the sweep was interrupted while it ran; ``gradnorm-tune resume`` finishes it.

Only ``finished`` and ``stopped`` trials feed selection, Optuna and the recommended static
weights; the cost table counts the others beside each search's result.

A trial that ends as failed or diverged inside the trainable does not raise: it reports one last
*marker* result (:func:`marker`) and returns, so that Tune does not retry what would fail again.
The marker carries :data:`OUTCOME` and the error, and no ``score``: schedulers and searchers pass
over it (:func:`is_marker`).
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

__all__ = [
    "ERROR",
    "ERROR_TYPE",
    "LOG",
    "OUTCOME",
    "Outcome",
    "is_marker",
    "marker",
    "outcome_of",
    "stopped_early",
]

OUTCOME = "outcome"  # the marker result's key, and (prefixed) the MLflow tag
ERROR = "error"  # the marker's one-line message
ERROR_TYPE = "error_type"  # the exception's type name
LOG = "log"  # where the trial's full traceback is (a path or URI)


class Outcome(str, Enum):
    """How a trial ended (see the module docstring)."""

    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"
    DIVERGED = "diverged"
    KILLED = "killed"

    @property
    def run_status(self) -> str:
        """The MLflow run status of a trial that ended so."""
        return {"finished": "FINISHED", "stopped": "FINISHED", "failed": "FAILED", "diverged": "FAILED",
                "killed": "KILLED"}[self.value]

    @property
    def selectable(self) -> bool:
        """Whether its results count (selection, means, Optuna, the recommended weights)."""
        return self in (Outcome.FINISHED, Outcome.STOPPED)

    def __str__(self) -> str:
        return self.value


def marker(outcome: Outcome, last: dict[str, Any] | None, error: str, error_type: str,
           log: str | None) -> dict[str, Any]:
    """The last result of a trial that failed or diverged: its last epoch's ``epoch`` and
    ``best_score`` (the sweep's metric, which Tune wants in every result; inf before any
    validation), the outcome, the one-line error, its type and where the traceback is."""
    last = last or {}
    best = last.get("best_score", math.inf)
    return {"epoch": int(last.get("epoch", 0)), "best_score": best if isinstance(best, (int, float)) else math.inf,
            OUTCOME: outcome.value, ERROR: error, ERROR_TYPE: error_type, **({LOG: log} if log else {})}


def is_marker(result: dict[str, Any] | None) -> bool:
    """Whether a result is a trial's failed/diverged marker rather than an epoch."""
    return bool(result) and OUTCOME in result


def stopped_early(epochs: int | None, result: dict[str, Any] | None) -> bool:
    """Whether a trial that ended (not in error) was stopped before its last epoch by a scheduler:
    its last result is an epoch below the trial's ``epochs`` (a trainable left alone reports its
    last epoch; one that failed or diverged reports a marker)."""
    result = result or {}
    epoch = result.get("epoch")
    return (not is_marker(result) and isinstance(epoch, (int, float)) and isinstance(epochs, int)
            and 0 < epoch < epochs)


def outcome_of(epochs: int | None, last_result: dict[str, Any] | None, *, errored: bool, ended: bool) -> Outcome:
    """The outcome of a trial from what Tune knows of it: its last result, whether Tune ended it
    in error (retries used up), and whether it ended at all (Tune's status ``TERMINATED`` or
    ``ERROR``; a trial the sweep's interruption cut off did not). ``epochs``: what it trains."""
    if is_marker(last_result):
        return Outcome(last_result[OUTCOME])
    if errored:
        return Outcome.FAILED
    if not ended:
        return Outcome.KILLED
    return Outcome.STOPPED if stopped_early(epochs, last_result) else Outcome.FINISHED
