"""Interrupting a sweep: SIGINT or SIGTERM stops it cleanly (exit 130 or 143), the trials cut off
end KILLED with their last checkpoint, the comparison says it was interrupted, and ``resume``
finishes it to the same record as an uninterrupted sweep's. A second signal stops it at once, and
``resume`` repairs what that left. Real Ray, real MLflow (SQLite), the real command line.

The trial a signal is meant for waits at a gate (tests/fault_gate.py) after its first epoch, so
that the signal lands while it runs, however fast the machine; once the sweep has said it is
stopping, the trial goes on (Tune then stops it after at most a result or two, where it would
wait 10 s for a trial that does not answer before killing it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml
from fault_gate import Gate
from mlflow.tracking import MlflowClient
from servers import wait_until

from sweeps.runner import run_sweep
from sweeps.spec import parse_spec
from trainables import OUTCOME, ROLE, SEARCH, TRIAL_ID

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
EPOCHS = 6  # a trial let go after its 1st epoch is stopped long before its last
STEPS = 2048 // 64  # an epoch's training steps


def spec(experiment: str, gate: Gate, hold: list[int] | None) -> dict:
    # one trial at a time; those in ``hold`` (the n-th to start) wait at the gate after their first epoch
    return {
        "name": "stop",
        "experiment": experiment,
        "problem": gate.problem("fault_problems:Faulty", after=STEPS, hold=hold, num_train=2048),
        "training": {"epochs": EPOCHS, "batch_size": 64, "lr": 0.01, "seed": 0, "device": "cpu"},
        "resources": {"cpu": 1, "max_concurrent": 1},
        "searches": {"grid": {"type": "static_grid", "levels": [[1], [0.5, 2]]}, "equal": {"type": "equal"}},
    }


TRIALS = 3


class Command:
    """``gradnorm-tune sweep|resume`` in a process of its own, its output in files (read while it runs)."""

    def __init__(self, tmp_path: Path, command: str, target: str, uri: str, *flags: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]))
        env.pop("RAY_ADDRESS", None)
        count = len(list(tmp_path.glob("*.out")))
        self.out_path, self.err_path = tmp_path / f"{command}-{count}.out", tmp_path / f"{command}-{count}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sweeps.cli", command, target, "--tracking-uri", uri,
                 *(["--storage", str(tmp_path / "runs")] if command == "sweep" else []), *flags],
                cwd=tmp_path, env=env, stdout=out, stderr=err)

    @property
    def out(self) -> str:
        return self.out_path.read_text()

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stopping(self, name: str) -> None:
        """Waits until the sweep says that it handles signal ``name`` (or has ended)."""
        wait_until(lambda: f"{name} received" in self.out or self.process.poll() is not None, 60,
                   f"the sweep to handle {name}", interval=0.05)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        """Killed, if it still runs (a test that failed half-way leaves nothing behind)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


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
                    and len(client.get_metric_history(run.info.run_id, "val/score")) >= epochs):
                return run
        return None
    return wait_until(found, 240, f"trial {count} running with {epochs} epoch(s) logged", interval=0.2)


def records(client: MlflowClient, experiment: str) -> dict[tuple[str, str], dict]:
    """Every trial run by (search, label): its status and every metric's (epoch, value) points
    but the clocks (wall-clock and CPU time)."""
    found = {}
    for run in trial_runs(client, experiment):
        key = (run.data.tags[SEARCH], run.data.params["label"])
        assert key not in found, f"trial {key} logged twice"
        found[key] = {"status": run.info.status, "outcome": run.data.tags.get(OUTCOME)} | {
            metric: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric))
            for metric in run.data.metrics if metric not in ("compute_seconds", "cpu_seconds")}
    return found


def everything(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=100)


def interrupted(tmp_path: Path, experiment: str, uri: str, hold: list[int], signum: int, *flags: str):
    """``gradnorm-tune sweep FLAGS`` whose trials in ``hold`` wait at a gate, and ``signum`` sent while
    the first of them waits there (it goes on once the sweep says it stops): the command, ended,
    its exit status and that trial's run."""
    gate = Gate(tmp_path / "gate")
    path = tmp_path / "stop.yaml"
    path.write_text(yaml.safe_dump(spec(experiment, gate, hold)))
    driver = Command(tmp_path, "sweep", str(path), uri, *flags)
    try:
        caught = running_with_epochs(MlflowClient(uri), experiment, hold[0])
        driver.signal(signum)
        driver.stopping(signal.Signals(signum).name)
        gate.open(hold[0])
        return driver, driver.wait(120), caught
    finally:
        driver.kill()


def test_sigint_during_the_last_trial_then_resume_gives_the_uninterrupted_record(local_ray, tmp_path):
    """At the default --checkpoint-seconds (10): the trial caught after its first epoch has reported
    that epoch but not checkpointed it, so resume redoes it, and must not log it twice."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    driver, code, caught = interrupted(tmp_path, "stopped", uri, [TRIALS], signal.SIGINT)  # the last trial
    out, err = driver.out, driver.err
    assert code == 130, out[-2000:] + err[-2000:]
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
    resumed = Command(tmp_path, "resume", str(directory), uri)
    try:
        # meanwhile, here, the same sweep uninterrupted (its own store: one writer to each SQLite file)
        whole_uri = f"sqlite:///{tmp_path / 'whole.db'}"
        whole = Gate(tmp_path / "open-gate")
        whole.open()
        run_sweep(parse_spec(spec("whole", whole, hold=None), "whole"), storage=tmp_path / "whole",
                  tracking_uri=whole_uri, checkpoint_seconds=0)
        expected = records(MlflowClient(whole_uri), "whole")
        assert len(expected) == TRIALS and all(r["status"] == "FINISHED" for r in expected.values())
        code = resumed.wait(240)
    finally:
        resumed.kill()
    out, err = resumed.out, resumed.err
    assert code == 0, out[-2000:] + err[-2000:]
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
    # held: the first trial, and the second (which starts after the first resume)
    driver, code, caught = interrupted(tmp_path, "terminated", uri, [1, 2], signal.SIGTERM,
                                       "--checkpoint-seconds", "0")
    assert code == 143, driver.out[-2000:] + driver.err[-2000:]
    assert client.get_run(caught.info.run_id).info.status == "KILLED"
    assert not [run for run in everything(client, "terminated") if run.info.status == "RUNNING"]

    # resumed, then stopped twice in a row: the second signal, sent once the first is being
    # handled, ends it at once
    (directory,) = (tmp_path / "runs").iterdir()
    resumed = Command(tmp_path, "resume", str(directory), uri)
    try:
        running_with_epochs(client, "terminated", 2, epochs=1)
        resumed.signal(signal.SIGINT)
        resumed.stopping("SIGINT")
        resumed.signal(signal.SIGINT)
        code = resumed.wait(60)
    finally:
        resumed.kill()
    assert code == 130, resumed.out[-2000:] + resumed.err[-2000:]
    assert "gradnorm-tune: stopped at once" in resumed.err, resumed.err

    finished = Command(tmp_path, "resume", str(directory), uri)
    try:
        code = finished.wait(240)
    finally:
        finished.kill()
    assert code == 0, finished.out[-2000:] + finished.err[-2000:]
    runs = everything(client, "terminated")
    assert not [run for run in runs if run.info.status != "FINISHED"], [
        (run.data.tags[ROLE], run.info.status) for run in runs]
    trials = [run for run in runs if run.data.tags[ROLE] == "trial"]
    assert len(trials) == TRIALS and len({run.data.tags[TRIAL_ID] for run in trials}) == TRIALS
    for run in trials:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/score")]
        assert steps == list(range(1, EPOCHS + 1)), steps
