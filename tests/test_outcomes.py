"""The fault matrix: whatever goes wrong, the exit status, the terminal and the MLflow record say
exactly what happened (issue: truthful outcomes). Real Ray, real MLflow (SQLite), real faults in
a user's problem (tests/fault_problems.py).

Every case checks the exit status, the one-line message, a bound on stderr's lines, and the
MLflow store: no run left RUNNING; failed, diverged and killed runs carry their status and
outcome tag; finished trials untouched. The interruption tests (SIGINT, SIGTERM, a second
Ctrl-C) are in tests/test_interrupt.py.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from mlflow.tracking import MlflowClient

from sweeps.cli import main
from sweeps.runner import run_sweep
from sweeps.spec import parse_spec
from trainables import ERROR_LOG, ERROR_TAG, OUTCOME, ROLE, SEARCH, TRIAL_ID


def spec(name: str, fault: str, at: int = 1, searches: dict | None = None, **options) -> dict:
    return {
        "name": name,
        "experiment": f"faults/{name}",
        "problem": {"name": "fault_problems:Faulty", "options": {"fault": fault, "at": at, **options}},
        "training": {"epochs": 3, "batch_size": 32, "lr": 0.01, "seed": 0, "device": "cpu"},
        "resources": {"cpu": 1, "max_concurrent": 2},
        "searches": searches or {"gn": {"type": "gradnorm", "search": "grid", "alpha": [0.5, 1.0]},
                                 "equal": {"type": "equal"}},
    }


def runs(uri: str, name: str) -> dict[str, list]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"faults/{name}")
    grouped: dict[str, list] = {}
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        grouped.setdefault(run.data.tags.get(ROLE), []).append(run)
    return grouped


def assert_nothing_running(grouped: dict[str, list]) -> None:
    running = [(role, run.data.tags.get(SEARCH)) for role, items in grouped.items() for run in items
               if run.info.status == "RUNNING"]
    assert not running, running


def test_every_trial_failing_exits_4_with_one_line_per_trial_and_failed_runs(local_ray, tmp_path, capfd,
                                                                           new_store):
    """An exception in the user's loss on the first batch: not retried (it is deterministic),
    one line per trial with its log, no traceback on the terminal, exit 4 (no search has a result)."""
    path = tmp_path / "fail.yaml"
    path.write_text(yaml.safe_dump(spec("all-fail", "raise", at=1)))
    uri = new_store(tmp_path / "mlflow.db")
    capfd.readouterr()
    code = main(["sweep", str(path), "--storage", str(tmp_path / "runs"), "--tracking-uri", uri,
                 "--max-failures", "2"])
    out, err = capfd.readouterr()  # what reached the terminal: this process's file descriptors 1 and 2
    assert code == 4, out[-3000:] + err[-3000:]
    assert err.count("\n") <= 2, err  # no tracebacks: at most a warning of Ray's
    failed = [line for line in out.splitlines() if "FAILED" in line]
    assert len(failed) == 3, out
    for line in failed:
        assert "ValueError: faulty: bad targets at step 1 (log: " in line, line
        log = Path(line.rsplit("(log: ", 1)[1].rstrip(")"))
        text = log.read_text()
        # tried once: a deterministic error is not retried
        assert text.count("Traceback") == 1 and "deterministic, not retried" in text, text
    last = out.strip().splitlines()
    assert any(line.startswith("sweep ended with failures: 3 failed of 3 trials; no result for gn, equal (exit 4")
               for line in last), last
    grouped = runs(uri, "all-fail")
    assert_nothing_running(grouped)
    assert len(grouped["trial"]) == 3
    client = MlflowClient(uri)
    for run in grouped["trial"]:
        assert run.info.status == "FAILED" and run.data.tags[OUTCOME] == "failed"
        assert run.data.tags[ERROR_TAG] == "ValueError: faulty: bad targets at step 1"
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [ERROR_LOG]
    searches = {run.data.tags[SEARCH]: run.info.status for run in grouped["search"]}
    assert searches == {"gn": "FAILED", "equal": "FAILED", "recommended_static": "FINISHED"}
    skipped = next(run for run in grouped["search"] if run.data.tags[SEARCH] == "recommended_static")
    assert skipped.data.tags[OUTCOME] == "skipped"  # nothing to recommend: skipped, not interrupted
    (comparison,) = grouped["comparison"]
    assert comparison.info.status == "FINISHED" and comparison.data.tags[OUTCOME] == "no_result"
    assert comparison.data.tags["gradnorm_tune.failed_trials"] == "3"


#: One sweep, one trial per fault (``faults[seed]``, tests/fault_problems.py), each after the
#: trial's first report (4 steps an epoch: step 6 is in epoch 2), checkpointed every epoch.
FAULTS = ["raise", "raise_once", "nan_score", "exit"]


@pytest.fixture(scope="module")
def faults_sweep(local_ray, empty_store, tmp_path_factory) -> SimpleNamespace:
    """The sweep of :data:`FAULTS`, run once through the library (``run_sweep``) for the tests
    below; with the environment before and after it, and the MLflow trial run of each seed."""
    tmp_path = tmp_path_factory.mktemp("faults")
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")  # a new store, its tables made
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    marker = tmp_path / "markers"
    marker.mkdir()
    searches = {"equal": {"type": "equal", "repeats": len(FAULTS)}}
    data = spec("faults", "none", at=6, faults=FAULTS, marker_dir=str(marker), searches=searches)
    before = dict(os.environ)
    state = run_sweep(parse_spec(data, "faults"), storage=tmp_path / "runs", tracking_uri=uri, max_failures=5,
                      checkpoint_seconds=0)
    after = dict(os.environ)
    threads = [t.name for t in threading.enumerate() if t.is_alive()]
    grouped = runs(uri, "faults")
    trials = {int(run.data.params["training.seed"]): run for run in grouped["trial"]}
    return SimpleNamespace(state=state, uri=uri, grouped=grouped, trials=trials, before=before, after=after,
                           threads=threads)


def score_steps(uri: str, run) -> list[int]:
    return [m.step for m in MlflowClient(uri).get_metric_history(run.info.run_id, "val/score")]


def test_a_repeated_error_is_retried_once_and_a_passing_one_finishes(faults_sweep):
    """An exception after the first report is retried from the last checkpoint; the same exception
    at the same point again ends the trial (not --max-failures times); one that does not recur
    (a dropped connection) finishes on the retry."""
    state, trials = faults_sweep.state, faults_sweep.trials
    assert sorted(trials) == list(range(len(FAULTS)))  # every trial once
    # one finished (the passing error), the others failed or diverged: a result, with failures
    assert state.outcome == "trials_failed"
    assert {key: value for key, value in state.counts.items() if value} == {"finished": 1, "failed": 2,
                                                                             "diverged": 1}
    again = trials[FAULTS.index("raise")]
    assert again.info.status == "FAILED" and again.data.tags[OUTCOME] == "failed"
    assert again.data.tags[ERROR_TAG] == "ValueError: faulty: bad targets at step 6"
    text = (state.directory / "logs" / f"{again.data.tags[TRIAL_ID]}.log").read_text()
    assert text.count("Traceback") == 2, text  # the first try and one retry, not 6
    assert "retried from the last checkpoint" in text and "deterministic, not retried" in text
    once = trials[FAULTS.index("raise_once")]
    assert once.info.status == "FINISHED" and once.data.tags["gradnorm_tune.restarts"] == "1"
    assert score_steps(faults_sweep.uri, once) == [1, 2, 3]  # every epoch once, across the retry


@pytest.mark.parametrize("fault", ["nan_score", "exit"])
def test_a_nan_score_diverges_and_sys_exit_fails(fault, faults_sweep):
    assert_nothing_running(faults_sweep.grouped)
    trial = faults_sweep.trials[FAULTS.index(fault)]
    expected = "diverged" if fault == "nan_score" else "failed"
    assert trial.info.status == "FAILED" and trial.data.tags[OUTCOME] == expected
    message = "the validation score is nan at epoch 2" if fault == "nan_score" else "SystemExit: 3"
    assert message in trial.data.tags[ERROR_TAG]
    # what it logged before is kept: epoch 1
    assert score_steps(faults_sweep.uri, trial) == [1]
    # its log, here and as the run's error.log: what turned non-finite, and the last finite values
    text = (faults_sweep.state.directory / "logs" / f"{trial.data.tags[TRIAL_ID]}.log").read_text()
    assert [a.path for a in MlflowClient(faults_sweep.uri).list_artifacts(trial.info.run_id)] == [ERROR_LOG]
    if fault == "nan_score":
        assert text.count("diverged, not retried: the validation score is nan at epoch 2") == 1, text
        first = MlflowClient(faults_sweep.uri).get_metric_history(trial.info.run_id, "score")[0].value
        assert "the last reported epoch (1): train/low/loss " in text and f"score {first:.6g}" in text, text


def test_diverged_seeds_are_counted_and_never_selected(local_ray, tmp_path, capsys, new_store):
    """NaN losses for one seed of three: those trials end as diverged (FAILED, tagged), the sweep
    exits 3 (every search still has a result), and the recommended static weights do not come
    from them."""
    uri = new_store(tmp_path / "mlflow.db")
    searches = {"gn": {"type": "gradnorm", "search": "grid", "alpha": [0.5, 1.0], "repeats": 3},
                "equal": {"type": "equal", "repeats": 3}}
    path = tmp_path / "nan.yaml"
    path.write_text(yaml.safe_dump(spec("diverged", "nan_loss", at=6, seeds=[1], searches=searches)))
    code = main(["sweep", str(path), "--storage", str(tmp_path / "runs"), "--tracking-uri", uri])
    out = capsys.readouterr().out
    assert code == 3, out[-3000:]
    diverged = [line for line in out.splitlines() if "DIVERGED: " in line]
    assert len(diverged) == 4, out
    for line in diverged:  # which loss, which epoch and step (4 steps an epoch: step 6 is epoch 2's 2nd)
        assert ("DIVERGED: task 'low': its training loss is nan at epoch 2, step 2 of the epoch; lower training.lr"
                in line and "(log: " in line), line
        text = Path(line.rsplit("(log: ", 1)[1].rstrip(")")).read_text()
        assert "the last finite values: the step before: low " in text and "the last reported epoch (1): " in text
        assert "NonFiniteLossError" in text, text
    grouped = runs(uri, "diverged")
    assert_nothing_running(grouped)
    outcomes = Counter((run.data.tags[SEARCH], run.data.tags[OUTCOME], run.info.status) for run in grouped["trial"])
    assert outcomes == {("gn", "finished", "FINISHED"): 4, ("gn", "diverged", "FAILED"): 2,
                        ("equal", "finished", "FINISHED"): 2, ("equal", "diverged", "FAILED"): 1,
                        ("recommended_static", "finished", "FINISHED"): 2,
                        ("recommended_static", "diverged", "FAILED"): 1}
    client = MlflowClient(uri)
    for run in grouped["trial"]:
        assert (run.data.tags[OUTCOME] == "diverged") == (run.data.params["training.seed"] == "1")
        if run.data.tags[OUTCOME] == "diverged":  # every diverged trial has its error.log
            assert [a.path for a in client.list_artifacts(run.info.run_id)] == [ERROR_LOG]
    (comparison,) = grouped["comparison"]
    assert comparison.data.tags[OUTCOME] == "trials_failed" and comparison.data.tags["gradnorm_tune.diverged_trials"] == "4"


def test_a_library_call_changes_no_environment_and_leaves_no_thread(faults_sweep):
    assert faults_sweep.after == faults_sweep.before
    assert "mlflow-trial-logger" not in faults_sweep.threads


# ------------------------------------------------------------------ refused before anything starts


def refused(tmp_path: Path, capsys, *flags: str, change: dict | None = None) -> str:
    """Run ``gradnorm-tune sweep`` on a good spec with ``change`` and ``flags``: exit 2, one line
    on stderr, no sweep directory and no MLflow store; returns the line."""
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec("refused", "none", searches={"equal": {"type": "equal"}}) | (change or {})))
    code = main(["sweep", str(path), "--storage", str(tmp_path / "runs"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("gradnorm-tune: error: "), err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert not (tmp_path / "mlflow.db").exists()
    return err


def test_a_trial_bigger_than_the_machine_is_refused(tmp_path, capsys):
    err = refused(tmp_path, capsys, change={"resources": {"cpu": 64}})
    assert "resources: a trial asks for 64 CPUs but this machine has" in err
    if not (Path("/proc/driver/nvidia/gpus").exists() or os.environ.get("CUDA_VISIBLE_DEVICES")):
        training = spec("refused", "none")["training"] | {"device": "auto"}
        err = refused(tmp_path, capsys, change={"resources": {"cpu": 1, "gpu": 1}, "training": training})
        assert "a trial asks for 1 GPU but this machine has 0" in err
        err = refused(tmp_path, capsys, change={"training": training | {"device": "cuda"}})
        assert "training.device is 'cuda' but this machine has no GPU, so every trial would fail" in err


@pytest.mark.parametrize("flags, expected", [
    (("--max-failures", "-1"), "argument --max-failures: '-1' is not a whole number >= 0"),
    (("--checkpoint-seconds", "inf"), "--checkpoint-seconds is inf"),
    (("--storage", "/proc/forbidden"), "--storage /proc/forbidden: cannot write there"),
])
def test_bad_flags_are_refused(flags, expected, tmp_path, capsys):
    assert expected in refused(tmp_path, capsys, *flags)


def test_an_unreachable_server_on_a_port_with_401_in_it_is_unreachable_not_refusing(tmp_path, capsys):
    """The error is classified by its type and status code, never by a substring of its message."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 40113))
        except OSError:
            pytest.skip("port 40113 is taken here")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec("port", "none", searches={"equal": {"type": "equal"}})))
    code = main(["sweep", str(path), "--storage", str(tmp_path / "runs"), "--tracking-uri", "http://127.0.0.1:40113"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "is unreachable" in err and "refused" not in err
