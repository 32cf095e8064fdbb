"""Shared fixtures: one local Ray for the whole session (it takes ~10 s to start)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from servers import temporary_environment

# what `gradnorm-tune` sets once at start-up (sweeps.cli.set_up_process): the tests run the
# library as the command does (MLflow's HTTP retries bounded, Tune's per-trial files off)
from sweeps.cli import set_up_process

set_up_process()


@pytest.fixture(scope="session")
def local_ray():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not ray.is_initialized():
        # workers must be able to import helpers defined in test modules: the tests' folder on
        # the path of the Ray processes started here only (never of the commands other tests
        # start, which would then find these helpers without shipping them)
        tests = os.path.dirname(os.path.abspath(__file__))
        with temporary_environment(PYTHONPATH=os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))):
            # "local": never the `ray start` cluster of the cluster tests
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made and nothing in it, made once: MLflow's
    migrations take seconds for every new store (see :func:`new_store`)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def new_store(empty_store):
    """``new_store(path)``: a new, empty MLflow SQLite store at ``path`` (a copy of
    :func:`empty_store`, as MLflow would make it, in milliseconds); returns its tracking URI."""

    def make(path: Path) -> str:
        shutil.copyfile(empty_store, path)
        return f"sqlite:///{path}"

    return make


@pytest.fixture(scope="session")
def small_sweep(local_ray, empty_store, tmp_path_factory):
    """tests/small_sweep.py's sweep, run once for every test that reads it."""
    import small_sweep as small

    directory = tmp_path_factory.mktemp("small-sweep")
    shutil.copyfile(empty_store, directory / "mlflow.db")
    return small.run(directory)


# Real servers for the cluster, fault, security and dashboard tests (tests/servers.py): each is
# started once, bound to 127.0.0.1 and stopped by its PID at the end of the session.


@pytest.fixture(scope="session")
def postgres():
    from servers import Postgres

    server = Postgres()
    if not server.available:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres); apt-get install postgresql")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(postgres, tmp_path_factory):
    """``mlflow server`` with basic auth, its runs on PostgreSQL, its artifacts in a local folder."""
    from servers import MlflowServer

    server = MlflowServer(postgres.create_database("mlflow"), postgres.create_database("mlflow_auth"),
                          tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ray_cluster():
    """A Ray head with 1 CPU and a worker node with 2, started with ``ray start``."""
    from ray_cluster import RayCluster

    cluster = RayCluster(head_cpus=1).start()
    try:
        cluster.add_worker(cpus=2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3-compatible server on 127.0.0.1 (an offline stand-in for S3, MinIO or Ceph)."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (the dev extra has it)")
    from servers import S3Server

    server = S3Server(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()
