"""A Ray cluster for the tests: a head and worker nodes started with ``ray start --block`` on
127.0.0.1, token authentication on, each node in its own session so that killing a node kills all
of its processes; optionally the head's job server (Ray Jobs), and nodes that each see the machine
through their own mount namespace, with private empty folders over given paths (as a second
machine would not see this one's files).

Run under ``scripts/on-loopback`` (``make test`` does) so that Ray, which advertises an interface
address rather than 127.0.0.1 for a cluster, has only loopback to advertise.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from servers import (
    BIN,
    HOST,
    answers,
    free_port,
    kill_session,
    session_alive,
    stop_groups,
    temporary_environment,
    wait_until,
)


def node_id_of(sid: int) -> str | None:
    """The Ray node id of the node whose processes are in this session (from its raylet's command line)."""
    for pid in session_alive(sid):
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for argument in arguments:
            if argument.startswith(b"--node_id="):
                return argument.split(b"=", 1)[1].decode()
    return None


@contextlib.contextmanager
def ray_credentials(env: dict[str, str]):
    """Ray clients in this process authenticate with ``env`` (a :class:`RayCluster`'s) inside the block.

    Ray reads its authentication mode and token once per process and keeps them: a process that
    started a local Ray before (without a token) would present none to the cluster, and
    ``ray.init`` would retry for about 20 s before failing. So both are read again on entering the
    block and after it, unless a Ray runs in this process (``ray.init`` is then not called, and
    what that Ray uses is left alone)."""
    import ray
    from ray._private.authentication_test_utils import reset_auth_token_state

    with temporary_environment(**env):
        if not ray.is_initialized():
            reset_auth_token_state()
        yield
    if not ray.is_initialized():
        reset_auth_token_state()


class RayCluster:
    """A Ray head and workers started with ``ray start --block`` on 127.0.0.1, token auth on.

    ``jobs``: the head runs the dashboard, whose job server takes Ray Jobs at :attr:`job_address`.
    ``hidden``: every node runs in its own mount namespace with an empty tmpfs over each of these
    folders and over Ray's temp folder (needs root: :func:`can_hide_folders`). ``env``: more
    environment for every node."""

    def __init__(self, head_cpus: int = 1, *, jobs: bool = False, hidden: tuple[Path, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.dashboard_port = free_port() if jobs else None
        self.token = secrets.token_hex(32)
        self.head_cpus = head_cpus
        self.hidden, self.node_env = tuple(hidden), dict(env or {})
        self.head: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.logs = Path(tempfile.mkdtemp(prefix="gradnorm-ray-"))

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def job_address(self) -> str:
        return f"http://{HOST}:{self.dashboard_port}"

    @property
    def env(self) -> dict[str, str]:
        """What every node and every driver needs: Ray refuses clients without the token."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    def _start_node(self, name: str, args: list[str]) -> subprocess.Popen:
        env = {**os.environ, **self.env, **self.node_env, "RAY_USAGE_STATS_ENABLED": "0",
               "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # a job's entrypoint finds gradnorm-tune
        env.pop("RAY_ADDRESS", None)
        command = [str(BIN / "ray"), "start", "--block", "--node-ip-address", HOST, "--disable-usage-stats",
                   f"--dashboard-agent-listen-port={free_port()}", *args]
        if self.hidden:
            # its own mount namespace (unshare execs: the same PID, the same process group)
            # and its own Ray temp folder (sockets, logs, unpacked runtime_envs), as on its own machine
            mounts = " && ".join([f"mount -t tmpfs -o size=1m,mode=0755 hidden {shlex.quote(str(path))}"
                                  for path in self.hidden] + ["mkdir -p /tmp/ray", "mount -t tmpfs ray /tmp/ray"])
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       f'{mounts} && exec "$@"', name, *command]
        with open(self.logs / f"{name}.log", "w") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)

    def start(self) -> RayCluster:
        dashboard = (["--include-dashboard=true", "--dashboard-host", HOST, f"--dashboard-port={self.dashboard_port}"]
                     if self.dashboard_port else ["--include-dashboard=false"])
        self.head = self._start_node("head", ["--head", f"--port={self.port}", f"--num-cpus={self.head_cpus}",
                                              *dashboard])
        self._wait_started(self.head, "head")
        self.head_node_id = node_id_of(self.head.pid)
        if self.dashboard_port:
            wait_until(self._jobs_ready, 60, "the Ray job server", interval=0.5)
        return self

    def _jobs_ready(self) -> bool:
        return answers("ray head", self.head, self.logs / "head.log", f"{self.job_address}/api/version",
                       {"Authorization": f"Bearer {self.token}"})

    def _wait_started(self, node: subprocess.Popen, name: str) -> None:
        """``ray start`` says "Ray runtime started." once its node is registered with the head
        (it waits for the node in the GCS's node table first): its log is read, no client is started."""
        def started() -> bool:
            text = (self.logs / f"{name}.log").read_text()
            if node.poll() is not None:
                raise RuntimeError(f"ray {name} exited: {text[-1500:]}")
            return "Ray runtime started." in text
        wait_until(started, 120, f"the Ray {name} to start", interval=0.1)

    def add_worker(self, cpus: int = 2) -> subprocess.Popen:
        """A worker node, once the head has registered it."""
        name = f"worker-{len(self.workers)}"
        worker = self._start_node(name, [f"--address={self.address}", f"--num-cpus={cpus}"])
        self.workers.append(worker)
        self._wait_started(worker, name)
        return worker

    def alive_nodes(self) -> int:
        return len(self.alive_node_ids())

    def alive_node_ids(self) -> set[str]:
        """Nodes the head lists as active (``ray status``)."""
        if self.head.poll() is not None:
            raise RuntimeError(f"ray head exited: {(self.logs / 'head.log').read_text()[-1500:]}")
        result = subprocess.run([BIN / "ray", "status", f"--address={self.address}"], capture_output=True,
                                text=True, env={**os.environ, **self.env}, timeout=60, check=False)
        if result.returncode != 0:
            return set()
        active = result.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return {line.split("node_", 1)[1].strip() for line in active.splitlines() if "node_" in line}

    def kill_worker(self, worker: subprocess.Popen) -> None:
        """SIGKILL every process of the worker node (raylet, its Ray workers, agents)."""
        kill_session(worker.pid)
        worker.wait(10)
        wait_until(lambda: not session_alive(worker.pid), 20, "the worker node's processes to die")

    def stop(self) -> None:
        """Every node killed at once: a test cluster's state is thrown away, and after SIGTERM the
        head's ``ray start --block`` had not ended in 30 s (a worker's ended in 0.5 s)."""
        stop_groups([process for process in [*self.workers, self.head] if process is not None], first=signal.SIGKILL)
        shutil.rmtree(self.logs, ignore_errors=True)


def can_hide_folders() -> bool:
    """Whether this process may give a child its own mount namespace with private mounts (root)."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--mount", "true"], capture_output=True, check=False).returncode == 0
