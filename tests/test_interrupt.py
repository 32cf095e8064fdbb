"""Interrupting a sweep: SIGINT or SIGTERM stops it cleanly (exit 130 or 143), the trials cut off
end KILLED with their last checkpoint, the comparison says it was interrupted, and ``resume``
finishes it to the same record as an uninterrupted sweep's. A second signal stops it at once, and
``resume`` repairs what that left. Real Ray, real MLflow (SQLite), the real command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient
from servers import wait_until

from sweeps.runner import run_sweep
from sweeps.spec import parse_spec
from trainables import OUTCOME, ROLE, SEARCH, TRIAL_ID

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
EPOCHS = 5


def spec(experiment: str) -> dict:
    # one trial at a time, about 0.4 s an epoch: the last trial can be caught mid-way
    return {
        "name": "stop",
        "experiment": experiment,
        "problem": {"name": "fault_problems:Faulty", "options": {"num_train": 16000}},
        "training": {"epochs": EPOCHS, "batch_size": 64, "lr": 0.01, "seed": 0, "device": "cpu"},
        "resources": {"cpu": 1, "max_concurrent": 1},
        "searches": {"grid": {"type": "static_grid", "levels": [[1], [0.5, 2]]}, "equal": {"type": "equal"}},
    }


TRIALS = 3


def start(tmp_path: Path, command: str, target: str, uri: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]))
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "sweeps.cli", command, target, "--tracking-uri", uri,
                             *(["--storage", str(tmp_path / "runs"), "--checkpoint-seconds", "0"]
                               if command == "sweep" else [])],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def trial_runs(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], filter_string=f"tags.`{ROLE}` = 'trial'", max_results=100)


def running_with_epochs(client: MlflowClient, experiment: str, count: int, epochs: int = 1):
    """The running trial once ``count`` trial runs exist and it has ``epochs`` epochs logged."""
    def found():
        try:
            runs = trial_runs(client, experiment)
        except Exception:  # noqa: BLE001 - the database is being created
            return None
        for run in runs:
            if (len(runs) >= count and run.info.status == "RUNNING"
                    and len(client.get_metric_history(run.info.run_id, "score")) >= epochs):
                return run
        return None
    return wait_until(found, 240, f"trial {count} running with {epochs} epoch(s) logged", interval=0.2)


def records(client: MlflowClient, experiment: str) -> dict[tuple[str, str], dict]:
    """Every trial run by (search, label): its status and every metric's (epoch, value) points
    but the compute time (a wall-clock)."""
    found = {}
    for run in trial_runs(client, experiment):
        key = (run.data.tags[SEARCH], run.data.params["label"])
        assert key not in found, f"trial {key} logged twice"
        found[key] = {"status": run.info.status, "outcome": run.data.tags.get(OUTCOME)} | {
            metric: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric))
            for metric in run.data.metrics if metric != "compute_seconds"}
    return found


def everything(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=100)


def test_sigint_during_the_last_trial_then_resume_gives_the_uninterrupted_record(local_ray, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_sweep(parse_spec(spec("whole"), "whole"), storage=tmp_path / "whole", tracking_uri=uri, checkpoint_seconds=0)
    expected = records(client, "whole")
    assert len(expected) == TRIALS and all(r["status"] == "FINISHED" for r in expected.values())

    path = tmp_path / "stop.yaml"
    path.write_text(yaml.safe_dump(spec("stopped")))
    driver = start(tmp_path, "sweep", str(path), uri)
    try:
        caught = running_with_epochs(client, "stopped", TRIALS)
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, out[-2000:] + err[-2000:]
    assert "SIGINT received: stopping the sweep cleanly" in out
    # the sweep's one line last; at most a warning of Ray's own before it (Ray's core logs, not ours)
    lines = err.strip().splitlines()
    assert len(lines) <= 2 and lines[-1].startswith("gradnorm-tune: sweep interrupted with 2 of 3 trials ended; "
                                                    "finish it with: gradnorm-tune resume "), err
    runs = {run.info.run_id: run for run in everything(client, "stopped")}
    assert not [run for run in runs.values() if run.info.status == "RUNNING"]
    killed = runs[caught.info.run_id]
    assert killed.info.status == "KILLED" and killed.data.tags[OUTCOME] == "killed"
    statuses = Counter((run.data.tags[ROLE], run.info.status) for run in runs.values())
    assert statuses == {("trial", "FINISHED"): 2, ("trial", "KILLED"): 1, ("search", "FINISHED"): 1,
                        ("search", "KILLED"): 1, ("comparison", "KILLED"): 1}
    comparison = next(run for run in runs.values() if run.data.tags[ROLE] == "comparison")
    assert comparison.data.tags[OUTCOME] == "interrupted" and comparison.data.tags["gradnorm_tune.killed_trials"] == "1"

    (directory,) = (tmp_path / "runs").iterdir()
    resumed = start(tmp_path, "resume", str(directory), uri)
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out[-2000:] + err[-2000:]
    assert "sweep complete: 3 of 3 trials ended as planned (exit 0)" in out
    # each trial once, all its epochs, the same numbers: the record of an uninterrupted sweep
    assert {key: {k: v for k, v in r.items() if k != "status"} for key, r in records(client, "stopped").items()} == \
        {key: {k: v for k, v in r.items() if k != "status"} for key, r in expected.items()}
    assert all(r["status"] == "FINISHED" for r in records(client, "stopped").values())
    comparison = client.get_run(comparison.info.run_id)
    assert comparison.info.status == "FINISHED" and comparison.data.tags[OUTCOME] == "complete"


def test_sigterm_stops_cleanly_and_a_second_signal_at_once_and_resume_repairs_both(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    path = tmp_path / "stop.yaml"
    path.write_text(yaml.safe_dump(spec("terminated")))
    driver = start(tmp_path, "sweep", str(path), uri)
    try:
        caught = running_with_epochs(client, "terminated", 1)
        driver.send_signal(signal.SIGTERM)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 143, out[-2000:] + err[-2000:]
    assert client.get_run(caught.info.run_id).info.status == "KILLED"
    assert not [run for run in everything(client, "terminated") if run.info.status == "RUNNING"]

    # resumed, then stopped twice in a row: the second signal ends it at once
    (directory,) = (tmp_path / "runs").iterdir()
    resumed = start(tmp_path, "resume", str(directory), uri)
    try:
        running_with_epochs(client, "terminated", 2, epochs=1)
        resumed.send_signal(signal.SIGINT)
        time.sleep(0.05)
        resumed.send_signal(signal.SIGINT)
        out, err = resumed.communicate(timeout=60)
    finally:
        if resumed.poll() is None:
            resumed.kill()
    assert resumed.returncode == 130, out[-2000:] + err[-2000:]

    finished = start(tmp_path, "resume", str(directory), uri)
    out, err = finished.communicate(timeout=240)
    assert finished.returncode == 0, out[-2000:] + err[-2000:]
    runs = everything(client, "terminated")
    assert not [run for run in runs if run.info.status != "FINISHED"], [
        (run.data.tags[ROLE], run.info.status) for run in runs]
    trials = [run for run in runs if run.data.tags[ROLE] == "trial"]
    assert len(trials) == TRIALS and len({run.data.tags[TRIAL_ID] for run in trials}) == TRIALS
    for run in trials:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "score")]
        assert steps == list(range(1, EPOCHS + 1)), steps
