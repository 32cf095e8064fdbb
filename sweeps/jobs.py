"""A sweep as a Ray job, the way Ray's own users launch on a cluster: ``gradnorm-tune submit``
sends the spec to the cluster's job server (Ray's Job Submission API) with the spec's
runtime_env, and ``gradnorm-tune sweep`` runs on the head as the job's entrypoint; ``gradnorm-tune
job status|logs|stop`` follow a job later.

- The job's runtime_env is the spec's (``working_dir`` and ``py_modules`` are uploaded from this
  machine), with :data:`DEFAULT_EXCLUDES` left out of the upload, and
  ``RAY_JOB_STOP_WAIT_TIME_S`` (:data:`STOP_GRACE_SECONDS`) so that a stopped sweep has time to
  end its trials KILLED and resumable before Ray kills it.
- The exit status of ``submit`` (and ``job logs --follow``, ``job status``) is the sweep's: the
  job's ``driver_exit_code`` (Ray records the entrypoint's exit code when it ends by itself);
  a job stopped through Ray ended on SIGTERM, as the sweep does then: 143. A job still running
  is 75 for ``job status``. A job that failed before its entrypoint ran (its runtime_env could not
  be set up) is bad input: 2.
- Token authentication is Ray's: ``RAY_AUTH_MODE=token`` with ``RAY_AUTH_TOKEN`` (or
  ``RAY_AUTH_TOKEN_PATH``) on this machine, as for any Ray client.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from .state import SweepError

__all__ = ["DEFAULT_EXCLUDES", "STOP_GRACE_SECONDS", "entrypoint", "exit_status_of", "follow", "job_client",
           "job_runtime_env", "submit_sweep"]

#: left out of every working_dir upload (Ray's gitignore-style patterns): what a sweep or a
#: checkout leaves beside the code, never code itself
DEFAULT_EXCLUDES = ("mlflow.db", "mlflow.db-journal", "mlartifacts/", "mlruns/", "gradnorm-runs/", ".venv/",
                    "venv/", ".git/", "__pycache__/", "*.pyc", ".pytest_cache/", ".cache/", ".ipynb_checkpoints/")
#: how long Ray waits for a stopped sweep to end its trials before it kills it (Ray's default: 3 s)
STOP_GRACE_SECONDS = 120
#: the exit status of a job stopped through Ray: it ended on SIGTERM (sweeps.verdict)
STOPPED_STATUS = 143
STILL_RUNNING_STATUS = 75


def _inside(path: Path, folder: Path) -> str | None:
    """``path`` as an exclude pattern of ``folder``'s upload, if it lies inside it."""
    try:
        relative = path.resolve().relative_to(folder.resolve())
    except ValueError:
        return None
    return f"/{relative.as_posix()}/" if relative.parts else None


def job_runtime_env(runtime_env: dict[str, Any], local_folders: list[Path] = ()) -> dict[str, Any]:
    """The job's runtime_env: the spec's, its upload without :data:`DEFAULT_EXCLUDES` and without
    ``local_folders`` (the sweep's storage, the data cache) where they lie inside its working_dir,
    plus the stop grace period. The spec's own ``excludes`` are kept."""
    env = json.loads(json.dumps(runtime_env))  # a deep copy
    working_dir = env.get("working_dir")
    if isinstance(working_dir, str) and "://" not in working_dir and Path(working_dir).is_dir():
        extra = [pattern for folder in local_folders if (pattern := _inside(folder, Path(working_dir)))]
        env["excludes"] = list(dict.fromkeys([*DEFAULT_EXCLUDES, *extra, *(env.get("excludes") or [])]))
    env["env_vars"] = {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_SECONDS), **(env.get("env_vars") or {})}
    return env


def entrypoint(command: str, target: str, job: dict[str, Any], flags: dict[str, Any]) -> str:
    """The shell command the job runs on the head: ``gradnorm-tune sweep SPEC-JSON --job ...``
    or ``gradnorm-tune resume DIRECTORY --job ...``; ``flags`` without ``None`` values."""
    words = ["gradnorm-tune", command, target, "--job", json.dumps(job, separators=(",", ":"))]
    for flag, value in flags.items():
        if value is True:
            words.append(flag)
        elif value is not None and value is not False:
            words += [flag, str(value)]
    return shlex.join(words)


def job_client(address: str | None):
    """Ray's job client for ``address`` (``http://HEAD:8265``), or a one-line SweepError."""
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS") or ""
    if not address.startswith(("http://", "https://")):
        raise SweepError(f"--address {address or '(none)'}: give the cluster's job server as http://HEAD:8265 "
                         "(or set RAY_API_SERVER_ADDRESS)")
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as error:
        raise SweepError(f"Ray's job client does not import here ({error}); install it: "
                         "pip install 'gradnorm-tune[cluster]' (ray[default])") from None
    from ray.exceptions import AuthenticationError

    try:
        return JobSubmissionClient(address)
    except AuthenticationError as error:  # reached: it refuses this machine's token
        raise SweepError(f"Ray job server at {address}: {_reason(error)}") from None
    except Exception as error:  # noqa: BLE001 - ConnectionError, RuntimeError, ...
        raise SweepError(f"cannot reach the Ray job server at {address} ({_reason(error)}); start the head with "
                         "its dashboard (ray start --head --dashboard-host ...) or fix --address") from None


def _reason(error: BaseException) -> str:
    """A job-client failure in a line. Ray's job client raises ``AuthenticationError`` for every
    answer with status 401 or 403 (a token missing or refused), whatever the request."""
    from ray.exceptions import AuthenticationError

    if isinstance(error, AuthenticationError):
        return ("the cluster asks for its token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
                "(or RAY_AUTH_TOKEN_PATH) to the head's token")
    return " ".join(str(error).split())[:300] or type(error).__name__


def call(action, *args):
    """A job-client call, its failure as a one-line SweepError."""
    try:
        return action(*args)
    except Exception as error:  # noqa: BLE001 - RuntimeError with the server's answer
        raise SweepError(f"Ray job server: {_reason(error)}") from None


def submit_sweep(client, spec_data: dict[str, Any], source: str, runtime_env: dict[str, Any],
                 local_folders: list[Path], flags: dict[str, Any], name: str) -> str:
    """Submit ``gradnorm-tune sweep`` of ``spec_data`` (the spec without its runtime_env) as a
    job with ``runtime_env``; its submission id."""
    job = {"runtime_env": runtime_env, "spec_source": source}
    command = entrypoint("sweep", json.dumps(spec_data, separators=(",", ":")), job, flags)
    submission_id = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    return call(lambda: client.submit_job(entrypoint=command, runtime_env=job_runtime_env(runtime_env, local_folders),
                                          submission_id=submission_id, metadata={"gradnorm_tune_sweep": name}))


def exit_status_of(info) -> int | None:
    """The sweep's exit status from Ray's job details (see the module docstring); ``None``
    while the job has not ended."""
    status = str(info.status)
    if status in ("PENDING", "RUNNING"):
        return None
    if info.driver_exit_code is not None:
        return int(info.driver_exit_code)
    if status == "STOPPED":
        return STOPPED_STATUS
    if status == "SUCCEEDED":
        return 0
    first = next((line for line in (info.message or "").splitlines() if line.strip()), "no message")
    raise SweepError(f"job {info.submission_id} failed before the sweep started ({first.strip()[:300]}); "
                     "check the spec's runtime_env and the cluster")


async def _stream(client, job_id: str) -> None:
    async for text in client.tail_job_logs(job_id):
        print(text, end="", flush=True)


def follow(client, job_id: str) -> int:
    """Print the job's output as it comes until the job ends; its exit status. Ctrl-C (or
    SIGTERM) asks the cluster to stop the job and goes on printing while the sweep winds down
    (it ends KILLED and resumable: 143); a second one leaves at once (130), the job stopping."""
    signals = {"count": 0}

    async def run() -> int | None:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(_stream(client, job_id))

        def interrupted() -> None:
            signals["count"] += 1
            if signals["count"] > 1:
                task.cancel()
                return
            print(f"\nstopping job {job_id} on the cluster (Ctrl-C again to leave it stopping)", flush=True)
            loop.run_in_executor(None, call, client.stop_job, job_id)

        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, interrupted)
        try:
            await task
        except asyncio.CancelledError:
            return None
        finally:
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(number)
        return 0

    if asyncio.run(run()) is None:
        print(f"gradnorm-tune: left job {job_id} stopping; see: gradnorm-tune job status {job_id}", flush=True)
        return 130
    info = call(client.get_job_info, job_id)
    while str(info.status) in ("PENDING", "RUNNING"):  # the log stream closed a moment before the status
        time.sleep(0.5)
        info = call(client.get_job_info, job_id)
    return exit_status_of(info)
