"""Where a sweep runs: Ray (a local Ray of its own, or a cluster, as a job with the spec's
runtime environment) and the MLflow tracking store, both checked before any trial runs, and
whether a trial's resources fit where it runs (before a local Ray starts; on a cluster, its
largest node, before any MLflow run exists)."""

from __future__ import annotations

import glob
import importlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import ray

from trainables import TrackingError, check_tracking_server, first_line

from .ray_output import quiet_raylet_reports
from .state import SweepError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["check_cluster_fits", "check_local_resources", "check_ray_address", "check_runtime_env", "connect",
           "on_every_node", "quiet_logs", "release_ray", "start_ray", "tracking_client"]


def quiet_logs() -> None:
    """Only our progress lines and errors: Ray's, MLflow's and Optuna's loggers quiet (the
    environment is left alone: ``gradnorm-tune`` sets its few variables once at start-up).
    Optuna sets its own level when it is first imported: it is quieted here once imported (a
    sweep imports it while Ray starts, see :func:`connect`)."""
    logging.getLogger("ray").setLevel(logging.CRITICAL)
    quiet_raylet_reports()  # a dead node's raylet log tail: one line (sweeps.ray_output)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if "optuna" in sys.modules:
        optuna = sys.modules["optuna"]
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def check_ray_address(address: str | None) -> None:
    """Fail fast when a given Ray address does not answer: ray.init would wait minutes."""
    if not address or address == "auto" or address.startswith("local"):
        return
    if address.startswith("ray://"):
        raise SweepError(f"Ray address {address}: Ray Client is not supported (Ray Tune's driver does not work "
                         "reliably through it); from outside the cluster submit the sweep as a Ray job: "
                         "gradnorm-tune submit SPEC --address http://HEAD:8265")
    if address.startswith(("http://", "https://")):
        raise SweepError(f"Ray address {address} is a job server: use gradnorm-tune submit SPEC --address {address}; "
                         "--ray-address takes host:port of the cluster's GCS (from a node of the cluster)")
    target = address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"Ray address {address!r} is not host:port; fix --ray-address")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SweepError(
            f"cannot reach Ray at {address} ({reason}); start the cluster or fix --ray-address / RAY_ADDRESS"
        ) from None


# The Ray job this module started (ray.init), and the runtime_env it started it with.
_STARTED: dict[str, object] = {}


def _ray_job() -> tuple[str, str]:
    """Which Ray job this process is: its cluster session and job id."""
    context = ray.get_runtime_context()
    try:
        session = context.get_session_name()
    except Exception:  # noqa: BLE001 - not known to a Ray Client driver
        session = context.gcs_address or ""
    return session, context.get_job_id()


def check_runtime_env(runtime_env: dict | None) -> None:
    """A spec's ``runtime_env`` applies only to a Ray job the sweep starts: a job's runtime
    environment is fixed when ``ray.init`` starts it, and Tune starts its trials with the job's.
    Raises a one-line SweepError where the caller initialised Ray in this process already."""
    if not runtime_env or not ray.is_initialized() or _STARTED.get("job") == _ray_job():
        return
    keys = ", ".join(runtime_env)
    raise SweepError(
        f"runtime_env ({keys}) cannot be applied: Ray is already initialised in this process and a job's "
        "runtime_env is fixed when ray.init starts it; call ray.shutdown() first (the sweep then starts Ray "
        "with it), or pass it to your own ray.init(runtime_env=...) and leave it out of the spec"
    )


def start_ray(address: str | None, quiet: bool = True, runtime_env: dict | None = None) -> None:
    """Start a local Ray, or connect to ``address`` (``host:port``, ``ray://host:port``,
    ``auto``), as a job with ``runtime_env``. A Ray already initialised in this process is used
    as it is, unless this module started it with another runtime_env: that one is restarted
    (see :func:`check_runtime_env` for one the caller started)."""
    if quiet:
        quiet_logs()
    runtime_env = dict(runtime_env or {})
    if ray.is_initialized():
        ours = _STARTED.get("job") == _ray_job()
        if not runtime_env or ours and _STARTED.get("runtime_env") == runtime_env:
            return
        check_runtime_env(runtime_env)
        ray.shutdown()  # ours, with another runtime_env: a job's runtime_env is fixed at ray.init
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_ray_address(address)
    options = {"runtime_env": runtime_env} if runtime_env else {}
    # quiet: not even Tune's tracebacks of trials it retries (each trial's log keeps them)
    level = logging.CRITICAL if quiet else logging.ERROR
    try:
        if address:
            ray.init(address=address, log_to_driver=not quiet, logging_level=level, **options)
        else:
            # a new Ray of our own, even when `ray start` left a cluster on this machine
            # (plain ray.init() would join that one); --ray-address auto joins it on purpose. Ray
            # starts one idle worker per CPU for a new driver; Tune's trials never use them (Tune
            # gives each trial's actor a runtime_env of its own, so new workers start for it), and
            # on a small machine their start-up takes CPU from the sweep's own: not started.
            ray.init(address="local", include_dashboard=False, log_to_driver=not quiet,
                     logging_level=level, _system_config={"prestart_worker_first_driver": False}, **options)
    except Exception as error:  # noqa: BLE001
        if runtime_env:  # e.g. a working_dir over Ray's size limit: Ray packs and uploads it in ray.init
            if ray.is_initialized():
                ray.shutdown()
            where = f"Ray at {address!r}" if address else "a local Ray"
            raise SweepError(f"cannot start {where} with the spec's runtime_env ({first_line(error)}); "
                             "check runtime_env and --ray-address") from None
        if not address:  # (a loaded machine: Ray's processes did not start in time)
            raise SweepError(f"cannot start a local Ray ({first_line(error)}); run it again when the machine is "
                             "less busy, or pass --ray-address of a running cluster") from None
        raise SweepError(f"cannot connect to Ray at {address!r} ({first_line(error)}); check --ray-address") from None
    _STARTED.update(job=_ray_job(), runtime_env=runtime_env)


def release_ray() -> threading.Thread | None:
    """Stop the Ray that :func:`start_ray` started, on a thread of its own, for a command that
    needs it no more (a sweep whose trials are settled: only MLflow is written after). Stopping
    Ray's processes takes over a second, nearly all of it waiting for them to exit, so the caller
    goes on meanwhile and joins the returned thread before it exits. A Ray that the caller
    started is left as it is (``None``)."""
    if not ray.is_initialized() or _STARTED.get("job") != _ray_job():
        return None
    _STARTED.clear()
    thread = threading.Thread(target=ray.shutdown, name="ray-shutdown")
    thread.start()
    return thread


def local_gpus() -> int:
    """The GPUs a local Ray would find here: NVIDIA's devices, as ``CUDA_VISIBLE_DEVICES`` limits them."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([device for device in visible.split(",") if device.strip() and device.strip() != "-1"])
    return len(glob.glob("/proc/driver/nvidia/gpus/*"))


def local_cpus() -> int:
    """The CPUs this process may run on (a local Ray counts the same)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _too_big(cpu: float, gpu: float, node_cpus: float, node_gpus: float) -> str | None:
    if cpu > node_cpus:
        return f"a trial asks for {cpu:g} CPUs but {{where}} has {node_cpus:g}"
    if gpu > node_gpus:
        return f"a trial asks for {gpu:g} GPU but {{where}} has {node_gpus:g}"
    return None


def check_local_resources(cpu: float, gpu: float, device: str = "auto") -> None:
    """Before a local Ray starts: a trial's resources fit this machine (else every trial would
    wait for ever), and a trial's ``device`` (``training.device``) is here (a ``cuda`` device on a
    machine without a GPU: every trial would fail)."""
    if str(device).startswith("cuda") and local_gpus() == 0:
        raise SweepError(f"training.device is {device!r} but this machine has no GPU, so every trial would fail; "
                         "set training.device to auto (a GPU where there is one) or cpu, or pass --ray-address "
                         "of a cluster that has GPUs")
    problem = _too_big(cpu, gpu, local_cpus(), local_gpus())
    if problem:
        raise SweepError(f"resources: {problem.format(where='this machine')}, so no trial could start; "
                         "lower resources.cpu / resources.gpu (or --cpus-per-trial / --gpus-per-trial), "
                         "or pass --ray-address of a cluster that has them")


def check_cluster_fits(cpu: float, gpu: float) -> None:
    """On a cluster, once connected: a trial fits its largest node; with an autoscaler, say that
    trials will wait for a node instead."""
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    fits = [node for node in nodes if _too_big(cpu, gpu, node.get("CPU", 0), node.get("GPU", 0)) is None]
    if fits:
        return
    largest = max(nodes, key=lambda node: (node.get("GPU", 0), node.get("CPU", 0)), default={})
    problem = _too_big(cpu, gpu, largest.get("CPU", 0), largest.get("GPU", 0)).format(where="the largest node")
    if _autoscaling():
        print(f"resources: {problem}; the cluster's autoscaler may add a node that fits: trials wait for it",
              flush=True)
        return
    raise SweepError(f"resources: {problem}, so no trial could start; lower resources.cpu / resources.gpu "
                     "(or --cpus-per-trial / --gpus-per-trial), or add a node that has them")


def on_every_node(task: Any, *args: Any, timeout: float) -> list[tuple[dict, Any]]:
    """``task`` (a Ray remote function) run once on every alive node of the cluster, at once:
    ``(node, result)`` pairs. A node that leaves the cluster meanwhile (listed alive, then gone
    when its task is placed, or dead while it runs) is left out: no trial will run there either.
    A task whose worker crashed on a node still alive raises, as any other error does."""
    from ray.exceptions import NodeDiedError, TaskUnschedulableError, WorkerCrashedError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    pending = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
               .remote(*args) for node in nodes]
    deadline, results = time.monotonic() + timeout, []
    for node, reference in zip(nodes, pending):
        try:
            results.append((node, ray.get(reference, timeout=max(deadline - time.monotonic(), 0.0))))
        except (TaskUnschedulableError, NodeDiedError):
            continue  # the node left the cluster
        except WorkerCrashedError:
            alive = {other["NodeID"] for other in ray.nodes() if other.get("Alive")}
            if node["NodeID"] in alive:
                raise
    return results


def _autoscaling() -> bool:
    """Whether an autoscaler watches this cluster: it keeps its status in the cluster's key-value
    store (what ``ray status`` reads)."""
    try:
        from ray.experimental.internal_kv import _internal_kv_get

        return _internal_kv_get("__autoscaling_status") is not None
    except Exception:  # noqa: BLE001 - no way to tell: assume none
        return False


def tracking_client(uri: str) -> MlflowClient:
    try:
        return check_tracking_server(uri)
    except TrackingError as error:
        raise SweepError(str(error)) from None


#: Modules that ``ray.init`` imports on its first call (Ray 2.60) and that MLflow and Ray Tune import
#: too: imported before :func:`connect` starts its two threads, so that they never import one
#: package at once (two threads importing a package and one of its modules at once can deadlock
#: on Python's import locks).
SHARED_WITH_RAY_INIT = ("click", "socketserver", "opentelemetry.metrics", "opentelemetry.sdk.resources",
                        "opentelemetry.trace", "ray._common.usage.usage_lib", "ray.dashboard")


def connect(tracking_uri: str, ray_address: str | None, quiet: bool, runtime_env: dict | None = None,
            then: Sequence[str] = ()) -> MlflowClient:
    """The tracking store checked and Ray started (as a job with ``runtime_env``), side by side:
    Ray on this thread (``ray.init`` ties the lives of the processes it starts to the thread that
    starts them, and sets its SIGTERM handler on the main thread only), and on another the store
    (a fresh SQLite store takes seconds to create its tables) and then the modules ``then`` that
    the sweep needs next (MLflow's and Tune's imports take seconds too), while Ray's processes
    start. Either failing stops the sweep before any trial runs."""
    for name in SHARED_WITH_RAY_INIT:
        try:
            importlib.import_module(name)
        except ImportError:  # another version of Ray or MLflow: the list is a precaution only
            pass
    with ThreadPoolExecutor(max_workers=1) as pool:
        checking = pool.submit(_check_and_import, tracking_uri, then, quiet)
        started_here = not ray.is_initialized() or bool(runtime_env)
        try:
            start_ray(ray_address, quiet, runtime_env)
        except SweepError:
            checking.result()  # the store's error first, if both fail
            raise
        try:
            return checking.result()
        except SweepError:
            if started_here:
                ray.shutdown()  # nothing of the sweep ran: no Ray of ours is left behind
            raise


def _check_and_import(tracking_uri: str, modules: Sequence[str], quiet: bool) -> MlflowClient:
    importlib.import_module("mlflow")  # (which sets its loggers' levels as it is imported: quieted after)
    if quiet:
        quiet_logs()
    client = tracking_client(tracking_uri)
    for name in modules:
        importlib.import_module(name)
    if quiet:
        quiet_logs()  # (Optuna's level, once it is imported)
    return client
