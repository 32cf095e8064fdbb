"""Real servers for the tests, each bound to 127.0.0.1 and stopped by its PID.

- :class:`Postgres`: Debian's PostgreSQL in a throwaway data directory.
- :class:`MlflowServer`: ``mlflow server`` with MLflow's basic-auth app, on PostgreSQL, serving
  artifacts from a local folder (clients upload through the server, as in ``docker/``).
- :class:`S3Server`: moto's standalone S3-compatible server, with a bucket.

Also what the tests that start processes share: waiting on polled state, stopping a process and
everything it started, the addresses they listen on. A Ray cluster is :mod:`ray_cluster`'s.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


HOST = "127.0.0.1"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def temporary_environment(**values: str):
    """These environment variables inside the block, their old values (or absence) after it."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(interval)


def answers(what: str, process: subprocess.Popen, log: Path, url: str, headers: dict[str, str] | None = None) -> bool:
    """Whether ``url`` answers 200; raises with the end of ``log`` if ``what`` (its process) has exited."""
    if process.poll() is not None:
        raise RuntimeError(f"{what} exited: {Path(log).read_text()[-1500:]}")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def finish(process: subprocess.Popen, output: Callable[[], str], timeout: float = 300) -> int:
    """The exit status of a command the test started in its own session; past ``timeout``, the
    command and everything it started are killed and the test fails with the end of its ``output()``."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        import pytest

        pytest.fail(f"{Path(str(process.args[0])).name} did not end in {timeout:g} s:\n{output()[-3000:]}")


def stop_groups(processes: list[subprocess.Popen], grace: float = 15.0, first: int = signal.SIGTERM) -> None:
    """Stop processes started each in its own session, and everything they started, by their
    PIDs: all asked at once (their process groups), then all waited for, at most ``grace``
    seconds together; then whatever is left of their sessions is killed."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, first)
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
    for process in processes:
        kill_session(process.pid)  # a leader may be gone while its children linger
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


def stop_group(process: subprocess.Popen, grace: float = 15.0, first: int = signal.SIGTERM) -> None:
    """Stop a process started in its own session, and everything it started, by its PID."""
    stop_groups([process], grace, first)


def session_alive(sid: int) -> list[int]:
    """PIDs still in the session that process ``sid`` started (``start_new_session``): its
    process groups too (a Ray node's workers each lead a group of their own)."""
    alive = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(stat.split("/")[2]))
    return alive


def kill_session(sid: int) -> None:
    """SIGKILL every process of a session, until none is left (a process may fork meanwhile)."""
    for _ in range(100):
        alive = session_alive(sid)
        if not alive:
            return
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def listening_addresses(pids: set[int]) -> set[str]:
    """``host:port`` of the TCP sockets these processes, or the sessions they lead, listen on."""
    output = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    pids = {pid for sid in pids for pid in session_alive(sid)} | set(pids)
    found = set()
    for line in output.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            found.add(line.split()[3])
    return found


def is_loopback(address: str) -> bool:
    """Whether an ``ss`` local address (``127.0.0.1:5000``, ``[::ffff:127.0.0.1]:80``) is loopback only."""
    host = address.rsplit(":", 1)[0].strip("[]").split("%")[0]
    if host == "*":
        return False
    ip = ipaddress.ip_address(host)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class Postgres:
    """A PostgreSQL server on 127.0.0.1 in a temporary data directory."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        self.bindir = Path(found[-1]).parent if found else None
        self.port = free_port()
        self.user = "gradnorm"
        self.password = secrets.token_urlsafe(16)
        self.process: subprocess.Popen | None = None
        self.root: Path | None = None

    @property
    def available(self) -> bool:
        return self.bindir is not None

    def _as_owner(self) -> dict:
        # PostgreSQL refuses to run as root; Debian's package makes a postgres user for it
        return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}

    def start(self) -> Postgres:
        self.root = Path(tempfile.mkdtemp(prefix="gradnorm-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        pwfile.chmod(0o600)
        subprocess.run(
            [self.bindir / "initdb", "-D", data, "-U", self.user, f"--pwfile={pwfile}", "--auth=scram-sha-256",
             "--encoding=UTF8", "--no-sync"],
            check=True, capture_output=True, **self._as_owner(),
        )
        pwfile.unlink()
        self.log = open(self.root / "postgres.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [self.bindir / "postgres", "-D", data, "-h", HOST, "-p", str(self.port), "-k", self.root,
             "-c", "fsync=off"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, **self._as_owner(),
        )
        wait_until(self._ready, 30, "PostgreSQL to accept connections")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited: {(self.root / 'postgres.log').read_text()[-500:]}")
        result = subprocess.run([self.bindir / "pg_isready", "-h", HOST, "-p", str(self.port)], capture_output=True,
                                check=False)
        return result.returncode == 0

    def create_database(self, name: str) -> str:
        subprocess.run(
            [self.bindir / "createdb", "-h", HOST, "-p", str(self.port), "-U", self.user, name],
            check=True, capture_output=True, env={**os.environ, "PGPASSWORD": self.password},
        )
        return self.uri(name)

    def uri(self, database: str) -> str:
        # SQLAlchemy 2.1 picks psycopg 3 for a bare postgresql://; psycopg2 is what is installed
        return f"postgresql+psycopg2://{self.user}:{self.password}@{HOST}:{self.port}/{database}"

    def stop(self) -> None:
        if self.process is not None:
            # SIGQUIT: PostgreSQL's immediate shutdown (no checkpoint: the data folder goes next)
            stop_group(self.process, first=signal.SIGQUIT)
            self.log.close()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


class MlflowServer:
    """``mlflow server --app-name basic-auth`` on PostgreSQL, on 127.0.0.1; without ``auth_uri``, a
    plain ``mlflow server`` (no accounts) on whatever ``backend_uri`` says (a SQLite file)."""

    def __init__(self, backend_uri: str, auth_uri: str | None, root: Path) -> None:
        self.backend_uri, self.auth_uri, self.root = backend_uri, auth_uri, Path(root)
        self.port = free_port()
        self.admin = ("admin", secrets.token_urlsafe(16))
        self.secret_key = secrets.token_hex(32)  # the auth app's CSRF key, the same across restarts
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "basic_auth.ini"
        # the admin password goes through the environment, not the file
        config.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = {self.auth_uri}\nadmin_username = {self.admin[0]}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # a password check is a PBKDF2 hash, about 0.8 s on these cores: without the cache
            # every request of a sweep pays it
            "auth_cache_ttl_seconds = 60\n"
        )
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin[1],
               "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secret_key,
               # no job runner (a second MLflow process, for MLflow's GenAI jobs, which nothing here
               # uses): the server starts in about half the time
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            env.pop(key, None)
        auth = ["--app-name", "basic-auth"] if self.auth_uri is not None else []
        self.starts += 1
        self.log_path = self.root / f"server-{self.starts}.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [BIN / "mlflow", "server", *auth, "--host", HOST, "--port", str(self.port),
                 "--backend-store-uri", self.backend_uri, "--artifacts-destination", str(self.root / "artifacts"),
                 "--workers", "1"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
            )
        wait_until(self._healthy, 120, "the MLflow server's /health", interval=0.5)
        return self

    def _healthy(self) -> bool:
        return answers("mlflow server", self.process, self.log_path, f"{self.uri}/health")

    def stop(self) -> None:
        """Killed at once, as a crash would: its data is in PostgreSQL already, and nothing is
        gained by waiting for it (with its job runner on, SIGTERM waited 5 s in vain)."""
        if self.process is not None:
            stop_group(self.process, first=signal.SIGKILL)

    def request(self, method: str, path: str, body: dict | None = None,
                auth: tuple[str, str] | None = None) -> tuple[int, dict]:
        """One REST call; returns (HTTP status, JSON body)."""
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.uri + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, {}

    def create_user(self, username: str) -> tuple[str, str]:
        password = secrets.token_urlsafe(16)
        status, _ = self.request("POST", "/api/2.0/mlflow/users/create",
                                 {"username": username, "password": password}, auth=self.admin)
        if status != 200:
            raise RuntimeError(f"could not create MLflow user {username}: HTTP {status}")
        return username, password


def mlflow_credentials(username: str, password: str):
    """MLflow clients in this process authenticate as this user inside the block."""
    return temporary_environment(MLFLOW_TRACKING_USERNAME=username, MLFLOW_TRACKING_PASSWORD=password)


class S3Server:
    """moto's standalone S3-compatible server (``moto[server]``) on 127.0.0.1, in its own session."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = Path(root), free_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What an S3 client needs besides the endpoint: moto takes any credentials; no instance
        metadata lookup (it would wait for a cloud that is not there)."""
        return {"AWS_ACCESS_KEY_ID": "moto", "AWS_SECRET_ACCESS_KEY": "moto", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true"}

    def start(self) -> S3Server:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = open(self.root / "moto.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._ready, 60, "moto's S3 server", interval=0.2)
        return self

    def _ready(self) -> bool:
        return answers("moto server", self.process, self.root / "moto.log", f"{self.endpoint}/moto-api/")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="moto", aws_secret_access_key="moto",
                            region_name="us-east-1")

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, grace=5)
            self.log.close()
