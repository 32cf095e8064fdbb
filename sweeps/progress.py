"""What the sweep prints while its trials run: one line per ended trial, and a progress line at
least every :data:`PROGRESS_SECONDS` (trials running, pending and ended, best validation score so
far, elapsed time). Printing only: :mod:`sweeps.events` decides what happened."""

from __future__ import annotations

import math
import time

from trainables import Outcome, epochs_of, label_of, outcome_of, search_of

__all__ = ["PROGRESS_SECONDS", "Progress", "trial_outcome"]

ENDED = ("TERMINATED", "ERROR")
#: Seconds between two progress lines while the sweep runs (read when a :class:`Progress` is made).
PROGRESS_SECONDS = 30.0


def trial_outcome(trial) -> Outcome | None:
    """How a Tune trial ended, or ``None`` while it has not."""
    if trial.status not in ENDED:
        return None
    return outcome_of(epochs_of(trial.config or {}), trial.last_result, errored=trial.status == "ERROR", ended=True)


def _search(trial) -> str:
    return search_of(trial.config or {}) or "?"


def _elapsed(seconds: float) -> str:
    """``42 s``, ``3m05s``, ``1h02m``."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """One line per ended trial: ``[search] trial k/N label: score, seconds`` (or why it failed,
    and where its log is); and every ``period`` seconds (default :data:`PROGRESS_SECONDS`) while
    the sweep runs, one line for the whole sweep::

        progress 1m30s: 2 running, 14 pending, 11/27 ended (3 stopped early, 1 failed); best val score: gn 0.1234

    ``pending`` counts the trials not started yet, whether Tune has asked the searcher for them
    or not; a search without a score yet is left out of the best scores.
    """

    def __init__(self, totals: dict[str, int], period: float | None = None) -> None:
        self.totals = dict(totals)
        self.period = PROGRESS_SECONDS if period is None else float(period)
        self._started: float | None = None
        self._printed: float | None = None

    def step(self, trials) -> None:
        """Called after each step of Tune's loop: the progress line when it is due."""
        now = time.monotonic()
        if self._started is None:
            self._started = self._printed = now
        if now - self._printed >= self.period:
            self._printed = now
            print(self.status_line(trials, now - self._started), flush=True)

    def status_line(self, trials, elapsed: float) -> str:
        """The periodic line (see the class docstring) for Tune's trial list."""
        running = sum(t.status == "RUNNING" for t in trials)
        outcomes = [trial_outcome(t) for t in trials]
        ended = [o for o in outcomes if o is not None]
        total = max(sum(self.totals.values()), len(trials))
        pending = max(0, total - running - len(ended))
        best: dict[str, float] = {}
        for trial in trials:
            score = (trial.last_result or {}).get("best_score")
            if isinstance(score, (int, float)) and math.isfinite(score):  # inf: not validated yet
                search = _search(trial)
                best[search] = min(best.get(search, score), score)
        notes = [f"{ended.count(outcome)} {'stopped early' if outcome == Outcome.STOPPED else outcome.value}"
                 for outcome in (Outcome.STOPPED, Outcome.FAILED, Outcome.DIVERGED) if outcome in ended]
        note = f" ({', '.join(notes)})" if notes else ""
        order = [name for name in self.totals if name in best] + sorted(set(best) - set(self.totals))
        scores = ", ".join(f"{name} {best[name]:.4f}" for name in order) or "none yet"
        return (f"  progress {_elapsed(elapsed)}: {running} running, {pending} pending, "
                f"{len(ended)}/{total} ended{note}; best val score: {scores}")

    def ended(self, trials, trial, outcome: Outcome, error: str | None, log: str | None) -> None:
        """The line of a trial that just ended."""
        search = _search(trial)
        done = sum(1 for t in trials if _search(t) == search and (t is trial or t.status in ENDED))
        total = self.totals.get(search)
        of = f"/{total}" if total else ""
        result = trial.last_result or {}
        if outcome in (Outcome.FAILED, Outcome.DIVERGED):
            where = f" (log: {log})" if log else ""
            text = f"{outcome.value.upper()}: {error or 'no error recorded'}{where}"
        else:
            stopped = ""
            if outcome == Outcome.STOPPED:
                stopped = f"stopped early at epoch {result['epoch']}/{epochs_of(trial.config)}, "
            text = (f"{stopped}best val score {result.get('best_score', float('nan')):.4f}, "
                    f"{result.get('compute_seconds', 0.0):.1f} s")
        print(f"  [{search}] trial {done}{of} {label_of(trial.config or {})}: {text}", flush=True)
