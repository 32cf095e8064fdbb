"""What the driver does while the sweep's one Tune experiment runs, besides logging trials: one
line per ended trial, a progress line at least every :data:`PROGRESS_SECONDS` (trials running,
pending and ended, best validation score so far, elapsed time), and each search marked done (in
``sweep.json`` and on its MLflow run) as soon as its last trial ends, while the other searches
go on.

Both callbacks are pickled with the experiment and restored by ``resume``; they keep nothing
in memory that they cannot rebuild from Tune's trial list and ``sweep.json``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from ray import tune

from trainables import encode_params, epochs_of, fail_fast, first_line, stopped_early, trial_error_message, weights_of

from .searcher import RECOMMENDED
from .state import SweepState

ENDED = ("TERMINATED", "ERROR")
#: Seconds between two progress lines while the sweep runs (read when a :class:`Progress` is made).
PROGRESS_SECONDS = 30.0


def _search(trial) -> str:
    return (trial.config or {}).get("search", "?")


def _ended(trials, trial) -> int:
    """How many trials of ``trial``'s search have ended, ``trial`` (ending now) included."""
    search = _search(trial)
    return sum(1 for t in trials if _search(t) == search and (t is trial or t.status in ENDED))


def _stopped(trial) -> bool:
    """Whether an ended trial was stopped early (by its search's ASHA)."""
    return trial.status == "TERMINATED" and stopped_early(trial.config or {}, trial.last_result)


def _elapsed(seconds: float) -> str:
    """``42 s``, ``3m05s``, ``1h02m``."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress(tune.Callback):
    """One line per finished, stopped or failed trial: ``[search] trial k/N label: score,
    seconds``; and every ``period`` seconds (default :data:`PROGRESS_SECONDS`) while the sweep
    runs, one line for the whole sweep::

        progress 1m30s: 2 running, 14 pending, 11/27 ended (3 stopped early); best val score: gn 0.1234, grid 0.2345

    ``pending`` counts the trials not started yet, whether Tune has asked the searcher for them
    or not; a search without a score yet is left out of the best scores.
    """

    def __init__(self, totals: dict[str, int], period: float | None = None) -> None:
        self.totals = dict(totals)
        self.period = PROGRESS_SECONDS if period is None else float(period)
        self._started: float | None = None  # this driver's first step (a resumed sweep counts anew)
        self._printed: float | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_started": None, "_printed": None}

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if self._started is None:
            self._started = self._printed = now
        if now - self._printed >= self.period:
            self._printed = now
            print(self.status_line(trials, now - self._started), flush=True)

    def status_line(self, trials, elapsed: float) -> str:
        """The periodic line (see the class docstring) for Tune's trial list."""
        running = sum(t.status == "RUNNING" for t in trials)
        ended = [t for t in trials if t.status in ENDED]
        stopped = sum(_stopped(t) for t in ended)
        failed = sum(t.status == "ERROR" for t in ended)
        total = max(sum(self.totals.values()), len(trials))
        pending = max(0, total - running - len(ended))
        best: dict[str, float] = {}
        for trial in trials:
            score = (trial.last_result or {}).get("best_score")
            if isinstance(score, (int, float)) and math.isfinite(score):  # inf: not validated yet
                search = _search(trial)
                best[search] = min(best.get(search, score), score)
        notes = [f"{stopped} stopped early"] * bool(stopped) + [f"{failed} failed"] * bool(failed)
        note = f" ({', '.join(notes)})" if notes else ""
        order = [name for name in self.totals if name in best] + sorted(set(best) - set(self.totals))
        scores = ", ".join(f"{name} {best[name]:.4f}" for name in order) or "none yet"
        return (f"  progress {_elapsed(elapsed)}: {running} running, {pending} pending, "
                f"{len(ended)}/{total} ended{note}; best val score: {scores}")

    def _line(self, trials, trial, text: str) -> None:
        search = _search(trial)
        done = _ended(trials, trial)
        total = self.totals.get(search)
        of = f"/{total}" if total else ""
        print(f"  [{search}] trial {done}{of} {(trial.config or {}).get('label', '-')}: {text}", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        stopped = ""
        if stopped_early(trial.config or {}, result):
            stopped = f"stopped early at epoch {result['epoch']}/{epochs_of(trial.config)}, "
        self._line(trials, trial, f"{stopped}best val score {result.get('best_score', float('nan')):.4f}, "
                                  f"{result.get('compute_seconds', 0.0):.1f} s")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trials, trial, f"FAILED: {trial_error_message(trial)}")


class SearchTracker(tune.Callback):
    """Keeps each search's status in ``sweep.json`` (``running`` from its first trial, ``done``
    after its last) and ends the search's MLflow run at that moment. A write the tracking server
    misses is made again by the runner at the sweep's end (setting a run's end is idempotent)."""

    def __init__(self, directory: Path, totals: dict[str, int]) -> None:
        self.directory = Path(directory)
        self.totals = dict(totals)

    def on_trial_start(self, iteration, trials, trial, **info):
        search = _search(trial)
        state = SweepState.load(self.directory)
        entry = state.searches.get(search)
        if entry is None:
            return
        changed = False
        if entry.get("status") == "pending":
            entry["status"], changed = "running", True
        if search == RECOMMENDED and "weights" not in entry:
            entry["weights"], changed = weights_of(trial.config), True
            params = encode_params({"weights": entry["weights"]})
            self._write(state, lambda client: client.log_param(entry["parent_run_id"], "weights", params["weights"]))
        if changed:
            state.save()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._check_done(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._check_done(trials, trial)

    def _check_done(self, trials, trial) -> None:
        search = _search(trial)
        ended = _ended(trials, trial)
        state = SweepState.load(self.directory)
        entry = state.searches.get(search)
        if entry is None or entry.get("status") == "done" or ended < self.totals.get(search, 0):
            return
        entry["status"], entry["ended_at"] = "done", time.time()
        state.save()
        self._write(state, lambda client: end_search_run(client, entry))

    @staticmethod
    def _write(state: SweepState, write) -> None:
        try:
            with fail_fast():
                write(MlflowClient(state.tracking_uri))
        except Exception as error:  # noqa: BLE001 - written again at the sweep's end
            print(f"  tracking server: {first_line(error)}; written at the sweep's end", flush=True)


def end_search_run(client: MlflowClient, entry: dict) -> None:
    """Mark a done search's MLflow run FINISHED at the time its last trial ended."""
    client.set_terminated(entry["parent_run_id"], "FINISHED", end_time=int(entry["ended_at"] * 1000))
