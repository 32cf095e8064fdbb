"""Past one machine: sweeps on a real multi-node Ray cluster (``ray start``) tracked in a real
``mlflow server`` with basic auth on PostgreSQL, all on 127.0.0.1, driven through the CLI flags a
user passes; then the faults: a worker node killed, the driver killed, the tracking server down.

Every fault test ends with the same check: each trial appears exactly once in MLflow, FINISHED,
with every epoch of its metric history logged exactly once. The trials of a fault test wait at a
gate (tests/fault_gate.py, shipped with the sweep) after a given epoch until the fault has
struck: it lands mid-trial however fast or slow the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from fault_gate import Gate
from mlflow.tracking import MlflowClient
from ray_cluster import node_id_of, ray_credentials
from servers import finish, is_loopback, listening_addresses, mlflow_credentials, wait_until

from trainables import PARENT, RESTARTS, ROLE, SEARCH, TRIAL_ID

BIN = Path(sys.executable).parent
EPOCHS = 4
STEPS = 2048 // 64  # an epoch's training steps
ALPHAS = [0.5, 1.5]
TRIALS = len(ALPHAS) + 1  # the alpha grid and one equal-weights run: one trial per slot of the cluster
FIGURES: dict[str, dict] = {}  # what each fault did, printed at the end of the module
DRIVER_LOGS: list[Path] = []  # everything the sweeps printed, searched for secrets at the end


def spec(experiment: str, gate: Gate | None = None, after: int = 1, code: Path | None = None) -> dict:
    """The sweep; with a ``gate``, every trial waits at it after ``after`` epochs (the gate's
    module shipped from ``code``)."""
    options = {"num_train": STEPS * 64, "num_val": 500, "num_test": 500, "seed": 0}
    return {
        "name": experiment,
        "experiment": f"cluster/{experiment}",
        "problem": {"name": "toy_t2", "options": options} if gate is None else
        gate.problem("toy_t2", after=after * STEPS, **options),
        **({} if code is None else {"runtime_env": {"working_dir": str(code)}}),
        "training": {"epochs": EPOCHS, "batch_size": 64, "lr": 0.001, "seed": 0, "device": "cpu"},
        "resources": {"cpu": 1, "max_concurrent": 3},
        "searches": {"gradnorm": {"type": "gradnorm", "search": "grid", "alpha": ALPHAS},
                     "equal": {"type": "equal"}},
        "recommended_static": False,
    }


@pytest.fixture(scope="module", autouse=True)
def fault_figures():
    """The figures of the fault tests, printed at the end (``pytest -s`` shows them)."""
    yield FIGURES
    for fault, figures in FIGURES.items():
        print(f"\n{fault}: " + ", ".join(f"{key} {value}" for key, value in figures.items()))


@pytest.fixture(scope="module")
def sweeper(mlflow_server):
    """A non-admin MLflow account: what the sweeps authenticate as, from the environment."""
    return mlflow_server.create_user("sweeper")


@pytest.fixture(scope="module")
def client(mlflow_server, sweeper):
    with mlflow_credentials(*sweeper):
        yield MlflowClient(mlflow_server.uri)


class Sweep:
    """``gradnorm-tune sweep|resume`` as a user runs it, in its own process group."""

    def __init__(self, tmp_path: Path, ray_cluster, mlflow_server, sweeper) -> None:
        self.tmp_path, self.logs = tmp_path, []
        self.gate, self.code = Gate(tmp_path / "gate"), Gate.ship(tmp_path / "code")
        self.env = {**os.environ, **ray_cluster.env, "MLFLOW_TRACKING_USERNAME": sweeper[0],
                    "MLFLOW_TRACKING_PASSWORD": sweeper[1], "RAY_ADDRESS": ""}
        self.flags = ["--ray-address", ray_cluster.address, "--tracking-uri", mlflow_server.uri]

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self.tmp_path / f"driver-{len(self.logs)}.log"
        self.logs.append(log)
        DRIVER_LOGS.append(log)
        with open(log, "w") as handle:
            return subprocess.Popen([BIN / "gradnorm-tune", *args, *self.flags], cwd=self.tmp_path,
                                    env={**self.env, **(env or {})}, stdout=handle, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def sweep(self, name: str, *extra: str, after: int, env: dict[str, str] | None = None) -> subprocess.Popen:
        """The sweep, its trials held at the gate after ``after`` epochs."""
        path = self.tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec(name, self.gate, after, self.code), sort_keys=False))
        return self.start("sweep", str(path), "--storage", str(self.tmp_path / "runs"), "--max-failures", "3", *extra,
                          env=env)

    def output(self) -> str:
        return "".join(log.read_text() for log in self.logs)

    def directory(self) -> Path:
        (directory,) = (self.tmp_path / "runs").iterdir()
        return directory


@pytest.fixture
def sweep(tmp_path, ray_cluster, mlflow_server, sweeper):
    return Sweep(tmp_path, ray_cluster, mlflow_server, sweeper)


def trial_runs(client: MlflowClient, name: str) -> list:
    experiment = client.get_experiment_by_name(f"cluster/{name}")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`{ROLE}` = 'trial'", max_results=1000)


def epochs_logged(client: MlflowClient, run) -> list[int]:
    return [metric.step for metric in client.get_metric_history(run.info.run_id, "val/score")]


def wait_for_epochs(client: MlflowClient, name: str, epochs: int, timeout: float = 120, where=None):
    """A running trial with at least ``epochs`` epochs logged (optionally on a given node)."""
    def found():
        for run in trial_runs(client, name):
            on_node = where is None or run.data.tags.get("gradnorm_tune.node") == where
            if run.info.status == "RUNNING" and on_node and len(epochs_logged(client, run)) >= epochs:
                return run
        return None
    return wait_until(found, timeout, f"a trial of {name} with {epochs} epochs logged", interval=0.5)


def assert_every_trial_once_and_complete(client: MlflowClient, name: str) -> list:
    runs = trial_runs(client, name)
    trial_ids = Counter(run.data.tags[TRIAL_ID] for run in runs)
    assert len(runs) == TRIALS and max(trial_ids.values()) == 1, trial_ids
    assert Counter(run.data.tags[SEARCH] for run in runs) == {"gradnorm": len(ALPHAS), "equal": 1}
    assert sorted(float(run.data.params["balancer.alpha"]) for run in runs
                  if "balancer.alpha" in run.data.params) == ALPHAS
    for run in runs:
        assert run.info.status == "FINISHED", (run.data.tags[TRIAL_ID], run.info.status)
        for key in ("val/score", "compute_seconds", "samples", "weight/task1"):
            steps = [metric.step for metric in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(1, EPOCHS + 1)), (run.data.tags[TRIAL_ID], key, steps)
        # the test split is evaluated when validation improves and at the last epoch: once each
        steps = [metric.step for metric in client.get_metric_history(run.info.run_id, "test/score")]
        assert len(steps) == len(set(steps)) and EPOCHS in steps and set(steps) <= set(range(1, EPOCHS + 1)), steps
    return runs


def test_cluster_has_two_nodes_listening_on_loopback_only(ray_cluster):
    # (the head's autoscaler lists a node a moment after the node has registered)
    assert wait_until(lambda: ray_cluster.alive_nodes() == 2, 60, "ray status to list both nodes", interval=1)
    if os.environ.get("GRADNORM_TUNE_LOOPBACK_ONLY") != "1":
        pytest.skip("not inside scripts/on-loopback's namespace (it needs root): Ray nodes of a cluster "
                    "then listen on the host's address too")
    addresses = listening_addresses({ray_cluster.head.pid, *(w.pid for w in ray_cluster.workers)})
    assert addresses and all(is_loopback(address) for address in addresses), addresses


def test_sweep_on_the_cluster_with_a_worker_node_killed_mid_trial(sweep, ray_cluster, client):
    worker = ray_cluster.workers[-1]
    worker_node = node_id_of(worker.pid)
    driver = sweep.sweep("worker-killed", after=2)
    caught = wait_for_epochs(client, "worker-killed", 2, where=worker_node)
    ray_cluster.kill_worker(worker)
    killed_at = len(epochs_logged(client, caught))
    sweep.gate.open()
    # a new machine joins while the sweep goes on (and the next tests get their two nodes back)
    ray_cluster.add_worker(cpus=2)
    assert finish(driver, sweep.output) == 0, sweep.output()[-3000:]
    assert "[state-dump]" not in sweep.output()  # Ray's report of the dead raylet: one line at most
    runs = assert_every_trial_once_and_complete(client, "worker-killed")
    restarted = [run for run in runs if int(run.data.tags.get(RESTARTS, 0)) > 0]
    assert all(int(run.data.tags[RESTARTS]) <= 3 for run in restarted)  # --max-failures 3
    # the trial caught on the dying node was retried from its checkpoint, elsewhere
    assert caught.data.tags[TRIAL_ID] in {run.data.tags[TRIAL_ID] for run in restarted}
    assert all(run.data.tags["gradnorm_tune.node"] != worker_node for run in restarted)
    FIGURES["worker node killed"] = {
        "trials": len(runs), "trials on the killed node": len(restarted),
        "retries": sum(int(run.data.tags[RESTARTS]) for run in restarted),
        "finished": sum(run.info.status == "FINISHED" for run in runs), "mlflow trial runs": len(runs),
        "epochs logged by the caught trial before the kill": killed_at,
    }


def test_driver_killed_then_resume_finishes_without_duplicates(sweep, client):
    driver = sweep.sweep("driver-killed", after=2)
    wait_for_epochs(client, "driver-killed", 2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(10)
    sweep.gate.open()
    before = trial_runs(client, "driver-killed")
    resumed = sweep.start("resume", str(sweep.directory()))
    assert finish(resumed, sweep.output) == 0, sweep.output()[-3000:]
    runs = assert_every_trial_once_and_complete(client, "driver-killed")
    assert {run.info.run_id for run in before} <= {run.info.run_id for run in runs}  # continued, not redone
    FIGURES["driver killed"] = {
        "trial runs when killed": len(before),
        "running when killed": sum(run.info.status == "RUNNING" for run in before),
        "finished after resume": sum(run.info.status == "FINISHED" for run in runs), "mlflow trial runs": len(runs),
    }


def test_tracking_server_down_mid_sweep_loses_nothing(sweep, mlflow_server, client):
    driver = sweep.sweep("server-down", after=1)
    wait_for_epochs(client, "server-down", 1)
    mlflow_server.stop()
    down = time.monotonic()
    sweep.gate.open()  # the trials' next epochs come while it is away
    # away until the driver has found it gone (its next write failed: the updates wait in its buffer)
    wait_until(lambda: "tracking server unreachable" in sweep.output() or driver.poll() is not None, 120,
               "the driver to find the tracking server unreachable")
    mlflow_server.start()  # the trials go on meanwhile
    outage = time.monotonic() - down
    assert finish(driver, sweep.output) == 0, sweep.output()[-3000:]
    output = sweep.output()
    assert "tracking server unreachable" in output and "tracking server back" in output
    runs = assert_every_trial_once_and_complete(client, "server-down")
    FIGURES["tracking server down"] = {"outage s": round(outage, 1), "mlflow trial runs": len(runs),
                                       "finished": sum(run.info.status == "FINISHED" for run in runs)}


def test_tracking_server_down_past_patience_stops_cleanly_and_resume_writes_it_all(sweep, mlflow_server, client):
    # no retries inside MLflow's client (about 3 s a request otherwise): each of the driver's own
    # tries fails at once, and its 2 s of patience are what end the sweep
    driver = sweep.sweep("server-gone", "--tracking-patience", "2", after=1,
                         env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    wait_for_epochs(client, "server-gone", 1)
    mlflow_server.stop()
    sweep.gate.open()  # the trials end while it is away
    try:
        code = finish(driver, sweep.output)
    finally:
        mlflow_server.start()
    output = sweep.output()
    assert code == 75, output[-3000:]  # stopped for a passing reason: resume finishes it
    last = output.strip().splitlines()[-1]
    assert last.startswith("gradnorm-tune: error: tracking server") and "gradnorm-tune resume" in last
    resumed = sweep.start("resume", str(sweep.directory()))
    assert finish(resumed, sweep.output) == 0, sweep.output()[-3000:]
    runs = assert_every_trial_once_and_complete(client, "server-gone")
    FIGURES["tracking server gone past patience"] = {"exit code": code, "mlflow trial runs after resume": len(runs)}


def test_comparison_hierarchy_on_the_server(client):
    """The resumed sweeps still build one comparison run with one run per search under it."""
    experiment = client.get_experiment_by_name("cluster/driver-killed")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    roles = Counter(run.data.tags.get(ROLE) for run in runs)
    assert roles == {"comparison": 1, "search": 2, "trial": TRIALS}
    comparison = next(run for run in runs if run.data.tags.get(ROLE) == "comparison")
    assert comparison.info.status == "FINISHED"
    assert all(run.data.tags[PARENT] == comparison.info.run_id for run in runs if run.data.tags.get(ROLE) == "search")
    artifacts = {item.path for item in client.list_artifacts(comparison.info.run_id)}
    assert {"cost_table.md", "cost_table.csv", "best_so_far.png"} <= artifacts


# ---------------------------------------------------------------- a user's problem, its code shipped

PROBE = """
import json, sys
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

@ray.remote(num_cpus=1)
def import_it():
    import waves_problems
    return waves_problems.__file__

def probe(**options):
    \"\"\"On every node, where a task of a job started with these options imports the package from.\"\"\"
    ray.init(address=sys.argv[1], log_to_driver=False, **options)
    found = {}
    for node in (n["NodeID"] for n in ray.nodes() if n["Alive"]):
        try:
            found[node] = ray.get(import_it.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote())
        except ModuleNotFoundError as error:
            found[node] = str(error).strip().splitlines()[-1]  # the remote task's ImportError
    ray.shutdown()
    return found

# a job without a runtime_env, then one that ships the code
print(json.dumps([probe(), probe(runtime_env={"working_dir": sys.argv[2]})]))
"""


def test_user_problem_code_shipped_to_every_node_with_working_dir(ray_cluster, tmp_path):
    """A module:attribute problem in a directory on no node's path: no Ray worker imports it
    without a runtime_env; ``--working-dir`` ships it and every trial finishes, once, in MLflow."""
    from test_user_problems import run_cli
    from test_user_problems import spec as waves_spec
    from test_user_problems import trial_runs as waves_trials
    from user_problem_pkg import write_package

    code = write_package(tmp_path / "code")
    (tmp_path / "probe.py").write_text(PROBE)
    env = {**os.environ, **ray_cluster.env, "RAY_ADDRESS": ""}

    done = subprocess.run([sys.executable, "probe.py", ray_cluster.address, str(code)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    without, shipped = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(without) == 2 and set(without.values()) == {"ModuleNotFoundError: No module named 'waves_problems'"}
    assert len(shipped) == 2 and all("_ray_pkg_" in location for location in shipped.values()), shipped

    path = tmp_path / "waves.yaml"
    # 2 CPUs a trial: only the worker node (the head has 1) runs them, one at a time; one trial a search
    searches = {"gradnorm": {"type": "gradnorm", "search": "grid", "alpha": [1.0]}, "equal": {"type": "equal"}}
    path.write_text(yaml.safe_dump(dict(waves_spec("cluster/user-problem"), resources={"cpu": 2}, searches=searches),
                                   sort_keys=False))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run_cli("sweep", str(path), "--ray-address", ray_cluster.address, "--working-dir", str(code),
                   "--storage", str(tmp_path / "runs"), "--tracking-uri", uri, cwd=tmp_path, env=ray_cluster.env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = waves_trials(MlflowClient(uri), "cluster/user-problem")
    assert len(runs) == 2 and max(Counter(run.data.tags[TRIAL_ID] for run in runs).values()) == 1
    assert all(run.info.status == "FINISHED" for run in runs), [run.info.status for run in runs]
    assert Counter(run.data.tags[SEARCH] for run in runs) == {"gradnorm": 1, "equal": 1}
    nodes = {run.data.tags["gradnorm_tune.node"] for run in runs}
    assert len(nodes) == 1 and ray_cluster.head_node_id not in nodes, nodes  # on the worker node, from the copy


# ---------------------------------------------------------------- bad input, against the real servers

BAD_SPECS = {
    "malformed": ("name: [unclosed\n", "YAML syntax error"),
    "unknown-problem": ({"problem": {"name": "imagenet"}}, "problem.name: unknown problem 'imagenet'"),
    "unknown-method": ({"searches": {"gradnorm": {"type": "gradnrom"}}}, "unknown search type 'gradnrom'"),
    "grid-weights": ({"searches": {"grid": {"type": "static_grid", "levels": [[1], [1, 2], [1]]}}},
                     "searches.grid.levels: expected 2 lists"),
    "static-weights": ({"searches": {"fixed": {"type": "static", "weights": [1, 2, 3]}}},
                       "searches.fixed.weights: expected 2 weights"),
}


def server_contents(mlflow_server) -> tuple[int, int]:
    """(experiments, runs) on the tracking server, as its admin sees them."""
    with mlflow_credentials(*mlflow_server.admin):
        admin = MlflowClient(mlflow_server.uri)
        ids = [e.experiment_id for e in admin.search_experiments(view_type=3)]
        return len(ids), len(admin.search_runs(ids, run_view_type=3, max_results=10000))


def bad_spec(tmp_path: Path, case: str) -> Path:
    change, _ = BAD_SPECS[case]
    path = tmp_path / f"{case}.yaml"
    if isinstance(change, str):
        path.write_text(change)
        return path
    path.write_text(yaml.safe_dump(merged(spec(case), change), sort_keys=False))
    return path


def merged(base: dict, change: dict) -> dict:
    """``base`` with ``change`` written over it, nested dicts merged key by key."""
    return base | {key: merged(base.get(key, {}), value) if isinstance(value, dict) else value
                   for key, value in change.items()}


@pytest.mark.parametrize("case", [*BAD_SPECS, "tracking-unreachable", "ray-unreachable", "no-credentials"])
def test_bad_input_is_one_line_exit_2_and_nothing_reaches_mlflow(case, tmp_path, ray_cluster, mlflow_server,
                                                                 sweeper, capsys, monkeypatch):
    import ray
    from servers import free_port

    from sweeps.cli import main

    path = bad_spec(tmp_path, case) if case in BAD_SPECS else tmp_path / "good.yaml"
    if case not in BAD_SPECS:
        path.write_text(yaml.safe_dump(spec(case), sort_keys=False))
    tracking, address = mlflow_server.uri, ray_cluster.address
    expected = BAD_SPECS.get(case, (None, None))[1]
    if case == "tracking-unreachable":
        tracking, expected = f"http://127.0.0.1:{free_port()}", "is unreachable"
    elif case == "ray-unreachable":
        address, expected = f"127.0.0.1:{free_port()}", "cannot reach Ray at"
    elif case == "no-credentials":
        expected = "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    for key, value in (("MLFLOW_TRACKING_USERNAME", sweeper[0]), ("MLFLOW_TRACKING_PASSWORD", sweeper[1])):
        if case == "no-credentials":
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    before, ray_before = server_contents(mlflow_server), ray.is_initialized()
    with ray_credentials(ray_cluster.env):
        code = main(["sweep", str(path), "--storage", str(tmp_path / "runs"), "--ray-address", address,
                     "--tracking-uri", tracking])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and err.count("\n") == 1, err
    # before any trial: no sweep directory, and no Ray of the sweep's left behind (the tracking
    # store is checked while Ray starts; when it fails, that Ray is stopped again)
    assert not (tmp_path / "runs").exists() and ray.is_initialized() == ray_before
    assert server_contents(mlflow_server) == before
    for secret in (sweeper[1], mlflow_server.admin[1], ray_cluster.token):
        assert secret not in err


# ---------------------------------------------------------------- security


def test_servers_listen_on_loopback_only(mlflow_server, postgres):
    addresses = listening_addresses({mlflow_server.process.pid, postgres.process.pid})
    assert addresses and all(is_loopback(address) for address in addresses), addresses


def test_tracking_server_refuses_requests_without_valid_credentials(mlflow_server, sweeper):
    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert mlflow_server.request("GET", path)[0] == 401
    assert mlflow_server.request("GET", path, auth=(sweeper[0], "wrong-password"))[0] == 401
    assert mlflow_server.request("GET", path, auth=sweeper)[0] == 200


def test_sweeps_ran_as_the_environment_user_and_no_secret_was_logged_or_printed(mlflow_server, postgres,
                                                                                 ray_cluster, sweeper):
    if not DRIVER_LOGS:
        pytest.skip("no sweep ran in this session (run the whole module)")
    secrets_ = {"MLflow admin password": mlflow_server.admin[1], "sweeper password": sweeper[1],
                "PostgreSQL password": postgres.password, "Ray token": ray_cluster.token}
    with mlflow_credentials(*mlflow_server.admin):
        admin = MlflowClient(mlflow_server.uri)
        experiments = [e for e in admin.search_experiments() if e.name.startswith("cluster/")]
        assert experiments
        status, body = mlflow_server.request("GET", f"/api/3.0/mlflow/users/permissions/list?username={sweeper[0]}",
                                             auth=mlflow_server.admin)
        assert status == 200, body
        managed = {p["resource_pattern"] for p in body["permissions"]
                   if p["resource_type"] == "experiment" and p["permission"] == "MANAGE"}
        for experiment in experiments:
            # the sweep created it with the credentials from its environment: that user manages it
            assert experiment.experiment_id in managed, (experiment.name, body)
            for run in admin.search_runs([experiment.experiment_id], max_results=10000):
                logged = " ".join([*run.data.params.values(), *run.data.tags.values()])
                for name, secret in secrets_.items():
                    assert secret not in logged, f"{name} logged in run {run.info.run_id}"
    printed = "".join(log.read_text() for log in DRIVER_LOGS)
    for name, secret in secrets_.items():
        assert secret not in printed, f"{name} printed by a sweep"
