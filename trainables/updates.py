"""What the trial logger writes, one update at a time: :class:`TrialUpdate` and
:class:`SearchUpdate`, and the error text Tune keeps for a trial it gave up on."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .outcome import Outcome

__all__ = ["SearchUpdate", "TrialUpdate", "last_line", "tune_error_text"]


@dataclass
class TrialUpdate:
    """What one trial's run needs next: epochs to log, then possibly its end."""

    trial_id: str
    config: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Any = None  # where epochs missing before ``records`` can be read back
    outcome: Outcome | None = None  # how the trial ended, if this update ends it
    error: str | None = None
    log: str | None = None  # where its traceback(s) are: uploaded as the run's error.log
    tags: dict[str, str] = field(default_factory=dict)
    started: float | None = None  # when the trial started / ended (unix seconds), however late written
    ended: float | None = None

    def start_time(self) -> float:
        """When the trial started: as seen, else its first epoch's end less its compute, else now."""
        if self.started is not None:
            return self.started
        for record in self.records[:1]:
            if "reported_at" in record:
                return float(record["reported_at"]) - float(record.get("compute_seconds", 0.0))
        return time.time()


@dataclass
class SearchUpdate:
    """What one search's run needs next: the weights it trains (the recommended static's), or
    its end (``status`` at ``ended``, unix seconds)."""

    search: str
    weights: list[float] | None = None
    status: str | None = None
    ended: float | None = None


def tune_error_text(trial) -> str:
    """The error Tune recorded for a trial it gave up on (its error file), or ``""``."""
    error_file = getattr(trial, "error_file", None)
    if not error_file:
        return ""
    try:
        with open(error_file) as handle:
            return handle.read()
    except OSError:
        return ""


def last_line(text: str) -> str:
    """The last non-empty line of a traceback: the exception and its message."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "trial failed (no error file)"
