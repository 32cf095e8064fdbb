"""Past one machine, the way Ray users launch: ``gradnorm-tune submit`` to a real Ray cluster's job
server, the storage on an S3-compatible server, nothing taken from the submitting machine's disk.

On loopback (``scripts/on-loopback``), as root: moto's S3 server, PostgreSQL and ``mlflow server``
with basic auth, a Ray head (no CPUs: trials run on workers) with its job server and token
authentication, and a worker node. The head and every worker see the machine through their own
mount namespace with a private empty folder over the user's project (its code and spec) and over
a local storage folder, as a second machine would: a trial can only import what the job's
runtime_env ships, and only checkpoints in S3 survive a node. The trials wait at a gate
(tests/fault_gate.py, shipped in the user's package) after their 2nd epoch, and again 2 epochs
after a restore, until the sweep has said it is stopping: the node dies, and the stop comes,
mid-trial (let go, a trial is stopped after a result or two: Tune would wait 10 s for a trial that
does not answer before killing it).

Why moto: it is the S3-compatible server that installs from PyPI (``moto[server]``) and runs
offline in-process-free as ``python -m moto.server``; MinIO and Ceph come as binaries or
images that cannot be fetched here.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from fault_gate import Gate
from mlflow.tracking import MlflowClient
from ray_cluster import RayCluster, can_hide_folders, node_id_of
from servers import finish, mlflow_credentials, wait_until
from user_problem_pkg import PACKAGE, write_package

from trainables import RESTARTS, ROLE, SEARCH, TRIAL_ID

pytestmark = pytest.mark.skipif(not can_hide_folders(), reason="needs root and unshare: each Ray node gets its own "
                                                               "mount namespace (make test runs as root)")

BIN = Path(sys.executable).parent
EPOCHS = 8  # held at the start of the 5th after a restore, it is stopped long before its last
STEPS = 1024 // 64  # an epoch's training steps
ALPHAS = [0.5, 1.5]
TRIALS = len(ALPHAS) + 1
EXPERIMENT = "submit/waves"


def spec(endpoint: str, gate: Gate | None = None, **change) -> dict:
    """The sweep; with a ``gate``, its trials wait there after 2 epochs (see above)."""
    options = {"num_train": STEPS * 64, "num_val": 500, "num_test": 500}
    return {
        "name": "waves-s3",
        "experiment": EXPERIMENT,
        "problem": {"name": f"{PACKAGE}:Waves", "options": options} if gate is None else
        gate.problem(f"{PACKAGE}:Waves", after=2 * STEPS, module=f"{PACKAGE}.fault_gate", **options),
        "runtime_env": {"working_dir": "."},  # the project folder: the spec's own
        "storage": {"uri": "s3://sweeps/runs", "endpoint": endpoint},
        "training": {"epochs": EPOCHS, "batch_size": 64, "lr": 0.01, "seed": 0, "device": "cpu"},
        "resources": {"cpu": 1, "max_concurrent": 2},
        "searches": {"gradnorm": {"type": "gradnorm", "search": "grid", "alpha": ALPHAS}, "equal": {"type": "equal"}},
        "recommended_static": False,
        **change,
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory, s3_server, mlflow_server):
    """The user's project (on this machine only), the bucket, an MLflow account, the cluster."""
    root = tmp_path_factory.mktemp("submit")
    project = write_package(root / "project")
    Gate.ship(project / PACKAGE)
    gate = Gate(root / "gate")  # beside the project: every node sees it
    (project / "sweep.yaml").write_text(yaml.safe_dump(spec(s3_server.endpoint, gate), sort_keys=False))
    runs = root / "runs"  # a local storage folder: no node sees what is written here
    runs.mkdir()
    s3_server.create_bucket("sweeps")
    user = mlflow_server.create_user("submitter")
    # every node: S3 credentials (no endpoint: the storage location carries it), and the
    # MLflow account the job's driver logs with
    node_env = {**s3_server.env, "MLFLOW_TRACKING_USERNAME": user[0], "MLFLOW_TRACKING_PASSWORD": user[1]}
    cluster = RayCluster(head_cpus=0, jobs=True, hidden=(project, runs), env=node_env).start()
    try:
        cluster.add_worker(cpus=2)
        yield {"root": root, "project": project, "runs": runs, "cluster": cluster, "user": user, "gate": gate}
    finally:
        cluster.stop()


@pytest.fixture
def client(world, mlflow_server):
    with mlflow_credentials(*world["user"]):
        yield MlflowClient(mlflow_server.uri)


class Laptop:
    """``gradnorm-tune`` as a user runs it on their own machine, in the project folder: the
    cluster's token in the environment, no S3 credentials unless asked for."""

    def __init__(self, world, mlflow_server, s3_server) -> None:
        self.world, self.logs = world, []
        cluster = world["cluster"]
        self.env = {**os.environ, **cluster.env, "RAY_ADDRESS": ""}
        for key in ("AWS_ENDPOINT_URL", *s3_server.env):
            self.env.pop(key, None)
        self.s3_env = s3_server.env
        self.flags = ["--address", cluster.job_address, "--tracking-uri", mlflow_server.uri]

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        log = self.world["root"] / f"laptop-{len(list(self.world['root'].glob('laptop-*.log')))}.log"
        self.logs.append(log)
        with open(log, "w") as handle:
            return subprocess.Popen([BIN / "gradnorm-tune", *args, *self.flags], cwd=self.world["project"],
                                    env={**self.env, **(env or {})}, stdout=handle, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def output(self, index: int = -1) -> str:
        return self.logs[index].read_text()


def trial_runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`{ROLE}` = 'trial'", max_results=100)


def epochs(client: MlflowClient, run) -> list[int]:
    return [metric.step for metric in client.get_metric_history(run.info.run_id, "val/score")]


def running_on(client: MlflowClient, node: str, at_least: int):
    """A trial RUNNING on ``node`` with at least ``at_least`` epochs logged, or None."""
    for run in trial_runs(client):
        if run.info.status == "RUNNING" and run.data.tags.get("gradnorm_tune.node") == node \
                and len(epochs(client, run)) >= at_least:
            return run
    return None


def test_a_submitted_sweep_survives_a_worker_node_and_a_stop_with_its_state_in_s3(world, client, mlflow_server,
                                                                                  s3_server):
    cluster, laptop = world["cluster"], Laptop(world, mlflow_server, s3_server)
    worker = cluster.workers[-1]
    killed_node = node_id_of(worker.pid)
    submit = laptop.start("submit", "sweep.yaml", "--max-failures", "3", "--checkpoint-seconds", "0")

    caught = wait_until(lambda: running_on(client, killed_node, 2), 180, "a trial with 2 epochs on the worker")
    cluster.kill_worker(worker)
    killed_at = len(epochs(client, caught))
    new_worker = cluster.add_worker(cpus=2)  # a new machine joins; it has never seen the project or a checkpoint
    new_node = node_id_of(new_worker.pid)

    def caught_goes_on():
        run = client.get_run(caught.info.run_id)
        return run.data.tags.get("gradnorm_tune.node") == new_node and len(epochs(client, run)) > killed_at

    wait_until(caught_goes_on, 180, "the caught trial to go on from its checkpoint on the new worker")
    os.killpg(submit.pid, signal.SIGINT)  # Ctrl-C: the cluster stops the job, the sweep ends resumable
    wait_until(lambda: "SIGTERM received" in laptop.output() or submit.poll() is not None, 120,
               "the job's sweep to say that it stops")
    world["gate"].open()
    code = finish(submit, laptop.output)
    output = laptop.output()
    assert code == 143, output[-3000:]
    job_id = re.search(r"submitted job (\S+)", output).group(1)
    directory = re.search(r"sweep waves-s3 in (s3://\S+)", output).group(1)  # streamed from the head
    # quoted for the shell: the URI's "?...&..." pasted into bash is kept whole
    assert "stopping job" in output and f"gradnorm-tune submit --resume {shlex.quote(directory)} " in output
    stopped = trial_runs(client)
    assert stopped and all(run.info.status != "RUNNING" for run in stopped), [r.info.status for r in stopped]

    # the stopped job's status (in a process of its own: Ray keeps the first token a process reads,
    # for good), asked while the sweep's directory is read back from S3 (the laptop needs the
    # bucket's credentials for that) and the sweep resumed as a new job
    status = subprocess.Popen([BIN / "gradnorm-tune", "job", "status", job_id, "--address", cluster.job_address],
                              env=laptop.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    resumed = laptop.start("submit", "--resume", directory, env=laptop.s3_env)
    status_out, status_err = status.communicate(timeout=120)
    assert status.returncode == 143, status_out + status_err  # the sweep's, after a stop
    assert status_out == f"job {job_id}: STOPPED (exit status 143)\n", status_out
    code = finish(resumed, laptop.output)
    assert code == 0, laptop.output()[-3000:]

    runs = trial_runs(client)
    trial_ids = Counter(run.data.tags[TRIAL_ID] for run in runs)
    assert len(runs) == TRIALS and max(trial_ids.values()) == 1, trial_ids
    assert Counter(run.data.tags[SEARCH] for run in runs) == {"gradnorm": len(ALPHAS), "equal": 1}
    for run in runs:
        assert run.info.status == "FINISHED", (run.data.tags[TRIAL_ID], run.info.status)
        assert sorted(epochs(client, run)) == list(range(1, EPOCHS + 1)), (run.data.tags[TRIAL_ID], epochs(client, run))
        assert run.data.tags["gradnorm_tune.node"] != cluster.head_node_id  # the head has no CPU for trials
    final = next(run for run in runs if run.info.run_id == caught.info.run_id)
    assert int(final.data.tags[RESTARTS]) >= 1 and final.data.tags["gradnorm_tune.node"] != killed_node

    prefix = directory.removeprefix("s3://sweeps/").partition("?")[0] + "/"
    keys = s3_server.keys("sweeps", prefix)
    assert f"{prefix}sweep.json" in keys, keys
    assert any(key.startswith(f"{prefix}trials/") and "/checkpoint_" in key for key in keys), keys
    assert not any(world["runs"].iterdir())
    assert {path.name for path in world["project"].iterdir()} == {PACKAGE, "sweep.yaml"}  # nothing left there


def test_the_same_sweep_without_working_dir_fails_at_once_with_the_fix(world, mlflow_server, s3_server):
    from ray.job_submission import JobSubmissionClient

    project, laptop = world["project"], Laptop(world, mlflow_server, s3_server)
    bare = spec(s3_server.endpoint)
    del bare["runtime_env"]
    (world["root"] / "bare.yaml").write_text(yaml.safe_dump(bare, sort_keys=False))
    cluster = world["cluster"]
    jobs = JobSubmissionClient(cluster.job_address, headers={"Authorization": f"Bearer {cluster.token}"})
    before = len(jobs.list_jobs())
    # the package imports here (the user put their project on PYTHONPATH, as one does), and would on
    # a worker of this machine (Ray adds the driver's folder to their path): never on another one
    done = laptop.start("submit", str(world["root"] / "bare.yaml"),
                        env={"PYTHONPATH": os.pathsep.join([str(project), os.environ.get("PYTHONPATH", "")])})
    code = finish(done, laptop.output, timeout=120)
    output = laptop.output().strip()
    assert code == 2, output
    assert output.count("\n") == 0 and output.startswith("gradnorm-tune: error: "), output
    assert f"module '{PACKAGE}' is imported from {project}" in output and "runtime_env.working_dir" in output
    assert len(jobs.list_jobs()) == before  # nothing reached the cluster


def test_a_refused_token_is_one_line_that_says_how_to_give_it(world):
    # a wrong token (the job server answers 403; Ray's client raises AuthenticationError)
    env = {**os.environ, **world["cluster"].env, "RAY_AUTH_TOKEN": "0" * 64, "RAY_ADDRESS": ""}
    done = subprocess.run([BIN / "gradnorm-tune", "job", "status", "raysubmit_none", "--address",
                           world["cluster"].job_address], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("gradnorm-tune: error: "), done.stderr
    assert "asks for its token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN" in done.stderr
    assert "cannot reach" not in done.stderr  # it was reached: only the token is wrong
    assert world["cluster"].token not in done.stderr + done.stdout
