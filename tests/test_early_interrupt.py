"""Interrupting a sweep at its edges: before its first trial starts, while its trials are pending or
have not reported yet, and while its comparison is built. Each ends with exit status 130, one line
on the terminal and no traceback, the comparison KILLED with ``outcome=interrupted``, no MLflow run
left RUNNING; and ``resume`` finishes it (every trial once, every epoch once). A finishing step
that fails on an internal error ends the comparison FAILED, exits 70 naming its log, and
``report`` rebuilds it. (The interruptions during a trial's epochs: tests/test_interrupt.py.)

The sweeps run here, in this process (``sweeps.cli.main``), on the session's Ray: SIGINT is sent to
this process at a known point, by a thread once trials wait at a gate (tests/gated_problems.py),
or by the print that marks the point (the handler runs in the main thread right after it).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest
import yaml
from gated_problems import open_gate
from mlflow.tracking import MlflowClient
from servers import wait_until

from sweeps.cli import main
from trainables import ERROR_TAG, OUTCOME, ROLE, SEARCH

EPOCHS = 2


class Signalling(io.StringIO):
    """A stdout that sends this process SIGINT as soon as a line holding ``text`` is printed."""

    def __init__(self, text: str | None) -> None:
        super().__init__()
        self.text, self.sent = text, False

    def write(self, value: str) -> int:
        written = super().write(value)
        if self.text is not None and not self.sent and self.text in value:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)
        return written


def write_spec(tmp_path: Path, name: str, searches: dict, gate: Path | None = None, max_concurrent: int = 2) -> Path:
    options = {"num_train": 128, "num_val": 64, "num_test": 64}
    if gate is not None:
        options |= {"gate": str(gate), "at": 1, "free": 0}  # every trial waits at its first step
    data = {"name": name, "experiment": f"edges/{name}",
            "problem": {"name": "gated_problems:GatedDigits", "options": options},
            "training": {"epochs": EPOCHS, "batch_size": 64, "lr": 0.002, "seed": 0, "device": "cpu"},
            "resources": {"cpu": 1, "max_concurrent": max_concurrent}, "searches": searches}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def command(capfd, *argv: str, signal_at: str | None = None) -> tuple[int, str, str]:
    """``gradnorm-tune ARGV`` here; its exit status, stdout and stderr (what reached the terminal)."""
    capfd.readouterr()
    out = Signalling(signal_at)
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    captured = capfd.readouterr()
    return code, out.getvalue() + captured.out, captured.err


def record(uri: str, name: str) -> dict[str, list]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"edges/{name}")
    grouped: dict[str, list] = {}
    for run in client.search_runs([experiment.experiment_id], max_results=100):
        grouped.setdefault(run.data.tags[ROLE], []).append(run)
    return grouped


def assert_interrupted(code: int, out: str, err: str, grouped: dict[str, list]) -> None:
    assert code == 130, out[-3000:] + err[-3000:]
    assert "Traceback" not in out + err, out + err
    lines = err.strip().splitlines()
    assert len(lines) <= 2 and "finish it with: gradnorm-tune resume " in lines[-1], err
    assert not [(role, run.info.run_name) for role, runs in grouped.items() for run in runs
                if run.info.status == "RUNNING"]
    (comparison,) = grouped["comparison"]
    assert comparison.info.status == "KILLED" and comparison.data.tags[OUTCOME] == "interrupted"


def assert_resumed_whole(capfd, uri: str, name: str, directory: Path, trials: int) -> None:
    code, out, err = command(capfd, "resume", str(directory), "--tracking-uri", uri)
    assert code == 0, out[-3000:] + err[-3000:]
    grouped = record(uri, name)
    assert Counter(run.info.status for runs in grouped.values() for run in runs) == {"FINISHED": len(
        grouped["search"]) + 1 + trials}
    client = MlflowClient(uri)
    for run in grouped["trial"]:  # each trial once, each epoch once
        assert [m.step for m in client.get_metric_history(run.info.run_id, "score")] == list(range(1, EPOCHS + 1))
    assert grouped["comparison"][0].data.tags[OUTCOME] == "complete"


def test_ctrl_c_before_the_first_trial_starts_then_resume(local_ray, tmp_path, capfd, new_store):
    """SIGINT as the sweep prints its plan: recorded, and the sweep stops where nothing is
    half-written (before Tune starts), its runs ended KILLED."""
    uri = new_store(tmp_path / "mlflow.db")
    path = write_spec(tmp_path, "before", {"equal": {"type": "equal"}})
    code, out, err = command(capfd, "sweep", str(path), "--storage", str(tmp_path / "runs"), "--tracking-uri", uri,
                             signal_at="all searches share the trial slots")
    grouped = record(uri, "before")
    assert_interrupted(code, out, err, grouped)
    assert "SIGINT received: stopping the sweep before its trials start" in out
    assert "trial" not in grouped and [run.info.status for run in grouped["search"]] == ["KILLED"]
    (directory,) = (tmp_path / "runs").iterdir()
    assert_resumed_whole(capfd, uri, "before", directory, trials=1)


def test_ctrl_c_with_trials_pending_and_none_reported_then_resume(local_ray, tmp_path, capfd, new_store):
    """Three trials at 3 at once on 2 CPUs: two start and wait at their first step (no report
    yet), one stays pending; SIGINT then. The two started end KILLED, the pending one gets no run."""
    uri = new_store(tmp_path / "mlflow.db")
    gate = tmp_path / "gate"
    gate.mkdir()
    searches = {"grid": {"type": "static_grid", "levels": [[1], [0.5, 2], [1]]}, "equal": {"type": "equal"}}
    path = write_spec(tmp_path, "pending", searches, gate=gate, max_concurrent=3)

    def interrupt() -> None:
        wait_until(lambda: len(list(gate.glob("ticket-*"))) == 2, 240, "two trials at the gate", interval=0.1)
        os.kill(os.getpid(), signal.SIGINT)

    signaller = threading.Thread(target=interrupt, daemon=True)
    signaller.start()
    try:
        code, out, err = command(capfd, "sweep", str(path), "--storage", str(tmp_path / "runs"), "--tracking-uri",
                                 uri)
    finally:
        signaller.join(1)
        open_gate(gate)  # (the held trials were ended by Tune; the resumed ones go on)
    grouped = record(uri, "pending")
    assert_interrupted(code, out, err, grouped)
    assert "sweep interrupted with 0 of 3 trials ended" in err
    trials = grouped["trial"]
    assert len(trials) == 2 and all(run.info.status == "KILLED" and run.data.tags[OUTCOME] == "killed"
                                    for run in trials)
    client = MlflowClient(uri)
    assert all(client.get_metric_history(run.info.run_id, "score") == [] for run in trials)  # none reported
    (directory,) = (tmp_path / "runs").iterdir()
    assert_resumed_whole(capfd, uri, "pending", directory, trials=3)


def test_ctrl_c_while_the_comparison_is_built_then_resume(local_ray, tmp_path, capfd, new_store, monkeypatch):
    """SIGINT once the trials have ended, as the comparison starts: it stops at once, the comparison
    run KILLED (its trials' record kept), and resume builds the comparison."""
    import sweeps.comparison

    build = sweeps.comparison.build_comparison

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, in the comparison
        return build(*args, **kwargs)

    monkeypatch.setattr(sweeps.comparison, "build_comparison", interrupted)
    uri = new_store(tmp_path / "mlflow.db")
    path = write_spec(tmp_path, "comparing", {"equal": {"type": "equal"}})
    code, out, err = command(capfd, "sweep", str(path), "--storage", str(tmp_path / "runs"), "--tracking-uri", uri)
    grouped = record(uri, "comparing")
    assert_interrupted(code, out, err, grouped)
    assert "SIGINT received while the comparison was built" in err
    assert [run.info.status for run in grouped["trial"]] == ["FINISHED"]
    monkeypatch.setattr(sweeps.comparison, "build_comparison", build)
    (directory,) = (tmp_path / "runs").iterdir()
    assert_resumed_whole(capfd, uri, "comparing", directory, trials=1)


def test_a_failing_comparison_ends_its_run_failed_exits_70_and_report_rebuilds_it(local_ray, tmp_path, capfd,
                                                                                new_store, monkeypatch):
    import sweeps.report

    def broken(summaries):
        raise RuntimeError("the plotting backend went away")

    figures = sweeps.report.comparison_figures
    monkeypatch.setattr(sweeps.report, "comparison_figures", broken)
    uri = new_store(tmp_path / "mlflow.db")
    path = write_spec(tmp_path, "finishing", {"equal": {"type": "equal"}})
    code, out, err = command(capfd, "sweep", str(path), "--storage", str(tmp_path / "runs"), "--tracking-uri", uri)
    assert code == 70, out[-3000:] + err[-3000:]
    (directory,) = (tmp_path / "runs").iterdir()
    log = directory / "logs" / "comparison.log"
    assert "Traceback" not in out + err and err.count("\n") == 1, err
    assert err.startswith("gradnorm-tune: error: the comparison failed on an internal error (RuntimeError: the "
                          "plotting backend went away); the trials' record is whole; its traceback is in "
                          f"{log}; rebuild it with: gradnorm-tune report {directory}"), err
    assert "Traceback (most recent call last)" in log.read_text() and "in broken" in log.read_text()
    grouped = record(uri, "finishing")
    assert not [run for runs in grouped.values() for run in runs if run.info.status == "RUNNING"]
    (comparison,) = grouped["comparison"]
    assert comparison.info.status == "FAILED" and comparison.data.tags[OUTCOME] == "complete"
    assert comparison.data.tags[ERROR_TAG].startswith("the comparison failed: RuntimeError: the plotting backend")
    assert [(run.data.tags[SEARCH], run.info.status) for run in grouped["search"]] == [("equal", "FINISHED")]

    # report hits the same bug: exit 70 and its log again, the comparison run left as it was
    code, out, err = command(capfd, "report", str(directory), "--tracking-uri", uri)
    assert code == 70 and err.count("\n") == 1 and f"its traceback is in {log};" in err, err
    assert log.read_text().count("Traceback (most recent call last)") == 2
    assert MlflowClient(uri).get_run(comparison.info.run_id).info.status == "FAILED"

    monkeypatch.setattr(sweeps.report, "comparison_figures", figures)  # the bug fixed: report rebuilds it
    code, out, err = command(capfd, "report", str(directory), "--tracking-uri", uri)
    assert code == 0, out[-3000:] + err[-3000:]
    comparison = MlflowClient(uri).get_run(comparison.info.run_id)
    assert comparison.info.status == "FINISHED" and comparison.data.tags[OUTCOME] == "complete"
    assert "cost_table.md" in {item.path for item in MlflowClient(uri).list_artifacts(comparison.info.run_id)}


def test_a_comparison_that_fails_with_the_tracking_store_away_is_ended_by_report(tmp_path, new_store, monkeypatch):
    """The comparison fails at the sweep's end and the tracking store cannot end its run either: the
    run stays RUNNING, the traceback is kept, exit 70's line; ``report`` then ends it as the
    trials' verdict says (no Ray: the finishing step alone, on a record made here)."""
    import sweeps.comparison
    from sweeps import rebuild
    from sweeps.state import FinishFailed, SweepState
    from trainables import create_comparison_run, ensure_experiment

    uri = new_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    experiment = ensure_experiment(client, "edges/away", uri)
    directory = tmp_path / "away"
    run_id = create_comparison_run(client, experiment, "away comparison", "s1", str(directory))
    state = SweepState(directory, {"name": "away"}, "away", uri, "s1", experiment, run_id,
                       outcome="trials_failed", counts={"failed": 1})

    def broken(*args) -> None:
        raise RuntimeError("a bug in the table")

    def away(*args, **kwargs) -> None:
        raise ConnectionError("the tracking server went away")

    monkeypatch.setattr(sweeps.comparison, "build_comparison", broken)
    monkeypatch.setattr(rebuild, "end_comparison_run", away)
    with pytest.raises(FinishFailed, match=r"^the comparison failed on an internal error \(RuntimeError: a bug in "
                                           r"the table\); .* rebuild it with: gradnorm-tune report ") as failed:
        rebuild.build(state, None, client, ending=True)
    assert "\n" not in str(failed.value) and "a bug in the table" in (directory / "logs" / "comparison.log").read_text()
    assert client.get_run(run_id).info.status == "RUNNING"

    monkeypatch.undo()  # the bug fixed, the server back: report ends the run the failure left
    monkeypatch.setattr(sweeps.comparison, "build_comparison", lambda *args: None)
    rebuild.build(state, None, client, ending=False)
    ended = client.get_run(run_id)
    assert ended.info.status == "FINISHED" and ended.data.tags[OUTCOME] == "trials_failed"
    assert ended.data.tags["gradnorm_tune.failed_trials"] == "1"


WHOLE = ('"spec": {"name": "s"}, "spec_source": "s", "tracking_uri": "sqlite:///m.db", "sweep_id": "1", '
         '"experiment_id": "1", "comparison_run_id": "r"')


@pytest.mark.parametrize("text", ["{}", "not json", "[1, 2]", '{"spec": {}, "spec_source": 3}',
                                  "{%s, %s}" % (WHOLE, '"searches": []'), "{%s, %s}" % (WHOLE, '"wall_seconds": true'),
                                  "{%s, %s}" % (WHOLE, '"outcome": 3'), "{%s, %s}" % (WHOLE, '"future": 1')])
def test_resume_and_report_on_a_malformed_sweep_json_say_so_in_one_line(text, tmp_path, capfd):
    (tmp_path / "sweep.json").write_text(text)
    for name in ("resume", "report"):
        code, out, err = command(capfd, name, str(tmp_path))
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"gradnorm-tune: error: {tmp_path / 'sweep.json'}"), err
        assert err.rstrip().endswith("a damaged state cannot be resumed or reported"), err


def test_a_whole_sweep_json_of_any_version_loads(tmp_path):
    """Every field as a sweep writes it (optional ones null, a whole number of seconds) loads: the
    check reads each field's type from SweepState itself."""
    from sweeps.state import SweepState

    state = SweepState(tmp_path, {"name": "s"}, "s", "sqlite:///m.db", "1", "1", "r", job={"runtime_env": {}},
                       searches={"equal": {"status": "done"}}, wall_seconds=3, counts={"failed": 1})
    state.save()
    assert SweepState.load(tmp_path) == state
    (tmp_path / "sweep.json").write_text("{%s}" % WHOLE)  # the optional fields left out
    assert SweepState.load(tmp_path).outcome is None


def test_a_tracking_server_gone_past_patience_exits_75_and_resume_writes_every_epoch_once(
        local_ray, tmp_path, capfd, monkeypatch):
    """On this machine (the cluster version: tests/test_cluster.py): a plain ``mlflow server`` on
    SQLite, stopped once the trial has logged its first epoch, the trial then let go to its end.
    The sweep waits --tracking-patience (2 s) for the server, exits 75 with one line, and resume,
    once it is back, writes what is missing (the second epoch) from the trial's checkpoint, which
    is the record, and nothing twice."""
    from servers import MlflowServer

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # each write fails at once: patience decides
    server = MlflowServer(f"sqlite:///{tmp_path / 'server.db'}", None, tmp_path / "server").start()
    try:
        gate = tmp_path / "gate"
        gate.mkdir()
        path = write_spec(tmp_path, "gone", {"equal": {"type": "equal"}})
        data = yaml.safe_load(path.read_text())
        data["problem"]["options"] |= {"gate": str(gate), "at": 3, "free": 0}  # held at epoch 2's first step
        path.write_text(yaml.safe_dump(data))
        client = MlflowClient(server.uri)

        def first_epoch_logged() -> bool:
            experiment = client.get_experiment_by_name("edges/gone")
            runs = client.search_runs([experiment.experiment_id], f"tags.`{ROLE}` = 'trial'") if experiment else []
            return bool(runs) and bool(client.get_metric_history(runs[0].info.run_id, "score"))

        def server_goes_away() -> None:
            wait_until(first_epoch_logged, 240, "the trial's first epoch in MLflow", interval=0.2)
            server.stop()
            open_gate(gate)

        stopper = threading.Thread(target=server_goes_away, daemon=True)
        stopper.start()
        code, out, err = command(capfd, "sweep", str(path), "--storage", str(tmp_path / "runs"), "--tracking-uri",
                                 server.uri, "--tracking-patience", "2")
        stopper.join(1)
        assert code == 75, out[-3000:] + err[-3000:]
        (directory,) = (tmp_path / "runs").iterdir()
        assert "Traceback" not in out + err and err.count("\n") <= 2, err
        assert err.strip().splitlines()[-1].startswith(f"gradnorm-tune: error: tracking server {server.uri} "
                                                       "unreachable for 2 s"), err
        assert err.rstrip().endswith(f"bring the server back and run: gradnorm-tune resume {directory}"), err
        server.start()
        code, out, err = command(capfd, "resume", str(directory))
        assert code == 0, out[-3000:] + err[-3000:]
        grouped = record(server.uri, "gone")
        assert not [run for runs in grouped.values() for run in runs if run.info.status != "FINISHED"]
        (trial,) = grouped["trial"]
        for key in ("score", "train/sum/loss", "compute_seconds"):
            assert [m.step for m in client.get_metric_history(trial.info.run_id, key)] == [1, 2], key
    finally:
        server.stop()
