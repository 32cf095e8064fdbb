"""A sweep's storage as a path or a URI (trainables.storage, sweeps.state, sweeps.storage), on
moto's S3-compatible server on 127.0.0.1; what a Ray job uploads of a working_dir; the checks
that a problem's code reaches the workers (sweeps.shipping)."""

from __future__ import annotations

import json
import shlex
import sys
import zipfile
from pathlib import Path

import pytest
from servers import temporary_environment
from user_problem_pkg import PACKAGE, write_package

from sweeps.state import SweepError, SweepState
from sweeps.storage import check_storage, new_directory, storage_root
from trainables import storage


@pytest.fixture(scope="module")
def bucket(s3_server):
    return s3_server.create_bucket("storage-tests")


def files(server, bucket: str, prefix: str) -> list[str]:
    """The objects under a prefix, without the empty folder markers pyarrow writes."""
    return [key for key in server.keys(bucket, prefix) if not key.endswith("/")]


@pytest.fixture
def s3_env(s3_server):
    with temporary_environment(**s3_server.env):
        yield s3_server


def test_resolve_puts_the_s3_endpoint_in_the_location_and_leaves_other_locations_as_they_are(tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert storage.resolve("runs") == str(tmp_path / "runs")
    assert storage.resolve("s3://b/p/") == "s3://b/p"  # no endpoint known: AWS itself
    given = storage.resolve("s3://b/p", "http://127.0.0.1:9000")
    assert given == "s3://b/p?endpoint_override=127.0.0.1:9000&scheme=http"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://minio.example:9000")
    assert storage.resolve("s3://b/p") == "s3://b/p?endpoint_override=minio.example:9000&scheme=https"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://ceph:80")  # the service's own variable first
    assert storage.resolve("s3://b/p") == "s3://b/p?endpoint_override=ceph:80&scheme=http"
    given = "s3://b/p?endpoint_override=other:1&scheme=http"
    assert storage.resolve(given) == given  # a location that names its endpoint keeps it
    assert storage.resolve("gs://b/p") == "gs://b/p" and storage.resolve("file:///x/y") == "file:///x/y"
    assert storage.join("s3://b/p?scheme=http", "d", "f.txt") == "s3://b/p/d/f.txt?scheme=http"
    for bad, message in (("ftp://b/p", "unknown scheme 'ftp'"), ("s3:///p", "names no bucket")):
        with pytest.raises(storage.StorageError, match=message):
            storage.resolve(bad)
    with pytest.raises(storage.StorageError, match="not http\\(s\\)://host"):
        storage.resolve("s3://b/p", "ftp://x")


def test_files_on_s3_round_trip_through_the_location_alone(s3_env, bucket, monkeypatch):
    root = storage.resolve(f"s3://{bucket}/round-trip", s3_env.endpoint)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # a worker that has no endpoint variable
    path = storage.join(root, "logs", "t1.log")
    assert storage.read_text(path) is None and not storage.exists(storage.join(root, "logs"))
    storage.write_text(path, "épisode 1\n")
    assert storage.read_text(path) == "épisode 1\n" and storage.exists(storage.join(root, "logs"))
    assert files(s3_env, bucket, "round-trip/") == ["round-trip/logs/t1.log"]


def test_sweep_state_lives_at_a_uri_and_loads_back(s3_env, bucket):
    with temporary_environment(AWS_ENDPOINT_URL=s3_env.endpoint):
        root = check_storage(storage_root(f"s3://{bucket}/runs"))
        assert files(s3_env, bucket, "runs/") == []  # the write check leaves nothing
        directory = new_directory(root, "demo")
    assert isinstance(directory, str) and directory.startswith(f"s3://{bucket}/runs/demo-")
    assert "endpoint_override" in directory
    state = SweepState(directory, {"name": "demo"}, "demo.yaml", "http://mlflow", "abc", "1", "run",
                       job={"runtime_env": {}})
    state.save()
    loaded = SweepState.load(directory)
    assert loaded.spec == {"name": "demo"} and loaded.job == {"runtime_env": {}} and loaded.directory == directory
    assert loaded.trials_dir == storage.join(directory, "trials") and str(loaded.logs_dir).startswith(f"s3://{bucket}/")
    # quoted for the shell: pasted into bash, the URI's "?...&..." stays one argument
    assert shlex.split(loaded.resume_command)[:4] == ["gradnorm-tune", "submit", "--resume", directory]
    assert "&" in directory and shlex.split(loaded.report_command) == ["gradnorm-tune", "report", directory]
    with pytest.raises(SweepError, match="is not a sweep directory"):
        SweepState.load(storage.join(root, "nothing-here"))


def test_storage_that_cannot_be_written_is_one_line_before_anything_starts(s3_env):
    with pytest.raises(SweepError) as error:
        check_storage(storage.resolve("s3://no-such-bucket/runs", s3_env.endpoint))
    assert "cannot write there" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(SweepError, match="a sweep run as a Ray job needs storage every node reaches"):
        storage_root("runs", None, shared=True)
    with pytest.raises(SweepError, match="unknown scheme 'hdfs'"):
        storage_root("hdfs://x/y")


def test_local_paths_stay_paths(tmp_path):
    root = check_storage(storage_root(str(tmp_path / "runs")))
    directory = new_directory(root, "demo")
    assert isinstance(directory, Path) and directory.is_dir() and directory.parent == tmp_path / "runs"
    state = SweepState(f"file://{directory}", {}, "", "", "", "", "")
    assert state.directory == directory and state.trials_dir == directory / "trials"
    assert state.resume_command == f"gradnorm-tune resume {directory}"


# ---------------------------------------------------------------- what a job uploads


def test_a_working_dir_upload_leaves_out_what_is_not_code(tmp_path):
    from ray._private.runtime_env.packaging import create_package  # what Ray's job client uploads

    from sweeps.jobs import job_runtime_env

    project = write_package(tmp_path / "project")
    heavy = {"mlflow.db": 4, "mlartifacts/1/a.png": 2, "gradnorm-runs/demo-1/trials/c.pkl": 2,
             "my-runs/demo-2/sweep.json": 1, ".venv/lib/x.py": 2, ".git/objects/pack": 2, "data-cache/mnist.npy": 3,
             f"{PACKAGE}/__pycache__/problems.cpython-311.pyc": 1}
    for name, megabytes in heavy.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_bytes(b"x" * megabytes * 2**20)
    env = job_runtime_env({"working_dir": str(project), "excludes": ["notes.txt"]},
                          [project / "my-runs", project / "data-cache", tmp_path / "elsewhere"])
    assert env["env_vars"]["RAY_JOB_STOP_WAIT_TIME_S"] == "120" and "notes.txt" in env["excludes"]
    assert "/my-runs/" in env["excludes"] and "/data-cache/" in env["excludes"]
    package = tmp_path / "package.zip"
    create_package(str(project), package, include_gitignore=True, excludes=env["excludes"])
    names = zipfile.ZipFile(package).namelist()
    files_in_it = sorted(name for name in names if not name.endswith("/"))
    assert files_in_it == [f"{PACKAGE}/__init__.py", f"{PACKAGE}/problems.py"]
    assert package.stat().st_size < 20_000, package.stat().st_size


def test_the_job_runs_gradnorm_tune_with_the_spec_inline():
    from sweeps.jobs import entrypoint

    command = entrypoint("sweep", json.dumps({"name": "it's"}), {"runtime_env": {}}, {"--storage": "s3://b/p",
                                                                                      "--verbose": True, "--x": None})
    assert command == ("""gradnorm-tune sweep '{"name": "it'"'"'s"}' --job '{"runtime_env":{}}' """
                       "--storage s3://b/p --verbose")


# ---------------------------------------------------------------- the problem's code reaches the workers


@pytest.fixture
def on_path(tmp_path):
    code = write_package(tmp_path / "code")
    sys.path.insert(0, str(code))
    yield code
    sys.path.remove(str(code))
    for name in [name for name in sys.modules if name.partition(".")[0] == PACKAGE]:
        del sys.modules[name]


def waves(runtime_env: dict | None = None):
    from sweeps.spec import parse_spec

    return parse_spec({"name": "w", "problem": f"{PACKAGE}:Waves", "runtime_env": runtime_env or {},
                       "searches": {"equal": {"type": "equal"}}}, "w.yaml")


def test_code_found_only_on_this_machines_path_is_refused_with_the_fix(on_path):
    from sweeps.shipping import check_code_shipped

    with pytest.raises(SweepError) as error:
        check_code_shipped(waves())
    message = str(error.value)
    assert message.startswith(f"w.yaml: problem.name: module '{PACKAGE}' is imported from {on_path} on this machine")
    assert "runtime_env.working_dir" in message and "--working-dir" in message and "\n" not in message
    check_code_shipped(waves({"working_dir": str(on_path)}))  # shipped: fine
    (on_path / "waves_problems-1.0.dist-info").mkdir()  # installed (a distribution provides it): fine
    (on_path / "waves_problems-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: waves-problems\n")
    (on_path / "waves_problems-1.0.dist-info" / "top_level.txt").write_text(f"{PACKAGE}\n")
    check_code_shipped(waves())


def test_a_problem_no_ray_worker_can_import_fails_before_any_trial(local_ray, on_path):
    from sweeps.shipping import check_workers_import

    spec = waves()  # this process imports it from its path; the workers of its Ray job cannot
    with pytest.raises(SweepError) as error:
        check_workers_import(spec)
    message = str(error.value)
    assert f"cannot import module '{PACKAGE}'" in message and "on Ray node(s)" in message
    assert "runtime_env" in message and "\n" not in message


# ---------------------------------------------------------------- Ray jobs: addresses and exit statuses


def test_ray_client_and_job_server_addresses_point_to_submit():
    from sweeps.session import check_ray_address

    for address, expected in (("ray://head:10001", "Ray Client is not supported"),
                              ("http://head:8265", "is a job server: use gradnorm-tune submit")):
        with pytest.raises(SweepError) as error:
            check_ray_address(address)
        assert expected in str(error.value) and "gradnorm-tune submit" in str(error.value)


def test_a_jobs_exit_status_is_the_sweeps():
    from ray.job_submission import JobDetails, JobStatus, JobType

    from sweeps.jobs import exit_status_of

    def job(status, code=None, message=None):
        return JobDetails(type=JobType.SUBMISSION, status=status, entrypoint="gradnorm-tune sweep",
                          submission_id="s1", driver_exit_code=code, message=message)

    assert exit_status_of(job(JobStatus.RUNNING)) is None and exit_status_of(job(JobStatus.PENDING)) is None
    assert exit_status_of(job(JobStatus.SUCCEEDED, 0)) == 0
    assert exit_status_of(job(JobStatus.FAILED, 3)) == 3  # some trials failed: the sweep's own status
    assert exit_status_of(job(JobStatus.STOPPED)) == 143  # stopped through Ray: SIGTERM
    with pytest.raises(SweepError, match=r"job s1 failed before the sweep started \(runtime_env setup failed\)"):
        exit_status_of(job(JobStatus.FAILED, None, "runtime_env setup failed\ntraceback..."))


def test_submit_refuses_bad_input_in_one_line_before_reaching_the_cluster(tmp_path, capsys, monkeypatch):
    from servers import free_port

    from sweeps.cli import main

    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nproblem: toy_t2\nsearches: {equal: {type: equal}}\n")
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for args, expected in (([str(spec), "--address", nowhere, "--storage", "runs"], "a relative path would be inside"),
                           ([str(spec)], "give the cluster's job server as http://HEAD:8265"),
                           ([str(spec), "--address", nowhere], f"cannot reach the Ray job server at {nowhere}"),
                           ([str(spec), "--address", nowhere, "--resume", "x"], "not both"),
                           (["--address", nowhere], "give a spec")):
        assert main(["submit", *args]) == 2, args
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, err
