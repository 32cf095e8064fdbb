"""What the driver does while the sweep's one Tune experiment runs, besides logging trials: one
line per ended trial, and each search marked done (in ``sweep.json`` and on its MLflow run) as
soon as its last trial ends, while the other searches go on.

Both callbacks are pickled with the experiment and restored by ``resume``; they keep nothing
in memory that they cannot rebuild from Tune's trial list and ``sweep.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from ray import tune

from trainables import encode_params, fail_fast, first_line, trial_error_message

from .searcher import RECOMMENDED
from .state import SweepState

ENDED = ("TERMINATED", "ERROR")


def _search(trial) -> str:
    return (trial.config or {}).get("search", "?")


def _ended(trials, trial) -> int:
    """How many trials of ``trial``'s search have ended, ``trial`` (ending now) included."""
    search = _search(trial)
    return sum(1 for t in trials if _search(t) == search and (t is trial or t.status in ENDED))


class Progress(tune.Callback):
    """One line per finished or failed trial: ``[search] trial k/N label: score, seconds``."""

    def __init__(self, totals: dict[str, int]) -> None:
        self.totals = dict(totals)

    def _line(self, trials, trial, text: str) -> None:
        search = _search(trial)
        done = _ended(trials, trial)
        total = self.totals.get(search)
        of = f"/{total}" if total else ""
        print(f"  [{search}] trial {done}{of} {(trial.config or {}).get('label', '-')}: {text}", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        self._line(trials, trial, f"best val score {result.get('best_score', float('nan')):.4f}, "
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
            entry["weights"], changed = list(trial.config["weights"]), True
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
