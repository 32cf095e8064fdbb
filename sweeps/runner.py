"""Run a sweep spec: every search at once, as one Ray Tune experiment sharing the cluster's trial
slots, under one MLflow comparison run (one run per search under it, one per trial under that),
then the comparison of what each search cost and found, and the sweep's verdict. This module
starts a sweep (or resumes one) and hands it to :mod:`sweeps.finish` once Ray runs; the MLflow
record's and Tune's modules are imported while Ray starts (see :data:`WHILE_RAY_STARTS`).

A sweep lives in one directory (``<storage>/<name>-<time>``) that holds ``sweep.json`` (see
:mod:`sweeps.state`), the Tune experiment ``trials/`` and the failed trials' ``logs/``.
``resume`` restores that experiment (unfinished and errored trials from their checkpoints, the
searcher's state, Optuna's studies included) and finishes it.

Everything that can be checked is checked before Ray starts and before any MLflow run exists
(the spec itself, the flags, the storage, the tracking store, what a trial asks of the machine
or the cluster). Then the sweep ends in one of the ways :mod:`sweeps.verdict` lists, and says so
in its exit status, its last line and its comparison run.
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path

import ray

from trainables import TrackingError, default_tracking_uri, reach_tracking_server

from . import session
from .session import check_cluster_fits, check_local_resources, check_ray_address, check_runtime_env, connect
from .session import quiet_logs
from .shipping import check_code_shipped, check_workers_import
from .signals import StopSignals
from .spec import SweepSpec, parse_spec
from .state import SweepError, SweepState
from .storage import check_nodes_see_storage, check_storage, storage_root
from .storage import new_directory

__all__ = ["SweepState", "resume_sweep", "run_sweep"]

#: What a sweep imports while Ray starts (see :func:`sweeps.session.connect`): the rest of its
#: run (MLflow's record, Ray Tune, the trainable and torch) and the Optuna searcher. Importing this
#: module imports none of them, so that bad input fails fast.
WHILE_RAY_STARTS = ("sweeps.finish", "trainables.tracking", "ray.tune.search.optuna")


def check_settings(max_failures: int, checkpoint_seconds: float, tracking_patience: float) -> None:
    """The run settings (the command line's flags) before anything starts."""
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
        raise SweepError(f"--max-failures is {max_failures!r}; give a whole number of retries >= 0 "
                         "(0: a trial whose worker is lost fails at once)")
    if not (isinstance(checkpoint_seconds, (int, float)) and math.isfinite(checkpoint_seconds)
            and checkpoint_seconds >= 0):
        raise SweepError(f"--checkpoint-seconds is {checkpoint_seconds:g}; give a number of seconds >= 0 "
                         "(0 checkpoints every epoch)")
    if not (isinstance(tracking_patience, (int, float)) and math.isfinite(tracking_patience)
            and tracking_patience >= 0):
        raise SweepError(f"--tracking-patience is {tracking_patience:g}; give a number of seconds >= 0")


def reach_tracking_store(uri: str) -> None:
    """Before Ray starts: a tracking server's port answers (:func:`trainables.reach_tracking_server`)."""
    try:
        reach_tracking_server(uri)
    except TrackingError as error:
        raise SweepError(str(error)) from None


def run_sweep(spec: SweepSpec, *, storage: str | Path | None = None, tracking_uri: str | None = None,
              ray_address: str | None = None, max_failures: int = 2, quiet: bool = True,
              tracking_patience: float = 300.0, checkpoint_seconds: float = 10.0,
              job: dict | None = None, release_ray: bool = False) -> SweepState:
    """Start a sweep in a new directory under ``storage`` (a path or a URI; default: the spec's
    ``storage``, else ``gradnorm-runs``) and run it to the end; the returned state's ``outcome``
    says how it ended (:class:`~sweeps.verdict.Verdict`). Each trial is checkpointed at its end
    and, before it, at most every ``checkpoint_seconds`` (0: every epoch): a failed or
    interrupted trial redoes at most that much. ``job``: the sweep runs as a Ray job
    (``gradnorm-tune submit``): ``{"runtime_env": ...}``, the runtime_env the job was submitted
    with, which Ray applies (the spec's own is not). ``release_ray``: a Ray the sweep started stops
    once the trials are settled (the command line's, which exits after). Raises :class:`SweepError` (bad input:
    nothing started), :class:`SweepInterrupted` or :class:`SweepUnfinished` (``resume`` finishes it)."""
    if quiet:
        quiet_logs()
    with StopSignals() as stop:  # a signal from here on stops the sweep where nothing is half-written
        return _run_sweep(spec, stop, storage, tracking_uri, ray_address, max_failures, quiet, tracking_patience,
                          checkpoint_seconds, job, release_ray)


def _run_sweep(spec: SweepSpec, stop: StopSignals, storage: str | Path | None, tracking_uri: str | None,
               ray_address: str | None, max_failures: int, quiet: bool, tracking_patience: float,
               checkpoint_seconds: float, job: dict | None, release_ray: bool) -> SweepState:
    check_settings(max_failures, checkpoint_seconds, tracking_patience)
    root = check_storage(storage_root(storage and str(storage), spec.storage, shared=job is not None))
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    check_ray_address(address)
    check_runtime_env(spec.runtime_env)
    if not address:
        check_local_resources(spec.resources.cpu, spec.resources.gpu, spec.training["device"])
    elif job is None:
        check_code_shipped(spec)  # to a cluster: the problem's code goes with the sweep
    tracking_uri = tracking_uri or default_tracking_uri()
    reach_tracking_store(tracking_uri)  # before Ray starts (the full check runs while it starts)
    stop.check()
    client = connect(tracking_uri, ray_address, quiet, None if job is not None else spec.runtime_env,
                     then=WHILE_RAY_STARTS)
    stop.install()  # (again: ray.init installs a SIGTERM handler of its own)
    try:
        check_cluster_fits(spec.resources.cpu, spec.resources.gpu)
        if address:
            check_workers_import(spec)
            check_nodes_see_storage(root)
        stop.check()
    except SweepError:
        ray.shutdown()
        raise
    except KeyboardInterrupt:  # a signal: the Ray this started stops (a caller's is left as it is)
        stopping = session.release_ray()
        if stopping is not None:
            stopping.join()
        raise
    from trainables import create_comparison_run, ensure_experiment  # (imported while Ray started)

    from .finish import finish_sweep

    directory = new_directory(root, spec.name)
    experiment_id = ensure_experiment(client, spec.experiment, tracking_uri)
    sweep_id = uuid.uuid4().hex[:12]
    comparison = create_comparison_run(client, experiment_id, f"{spec.name} comparison", sweep_id, str(directory))
    state = SweepState(directory, spec.raw, spec.source, tracking_uri, sweep_id, experiment_id, comparison, job=job)
    state.save()
    stop.resume_command = state.resume_command
    print(f"sweep {spec.name} in {directory}\n  (if interrupted: {state.resume_command})", flush=True)
    return finish_sweep(state, spec, client, stop, max_failures, tracking_patience, checkpoint_seconds, release_ray)


def resume_sweep(directory: str | Path, *, ray_address: str | None = None, max_failures: int = 2,
                 quiet: bool = True, tracking_uri: str | None = None, tracking_patience: float = 300.0,
                 job: dict | None = None, release_ray: bool = False) -> SweepState:
    """Finish an interrupted sweep (a path or a storage URI): ended trials are kept, the others
    restored or started. ``job``, ``release_ray``: as for :func:`run_sweep`."""
    if quiet:
        quiet_logs()
    with StopSignals() as stop:  # a signal from here on stops the sweep where nothing is half-written
        check_settings(max_failures, 0.0, tracking_patience)
        state = SweepState.load(directory)
        stop.resume_command = state.resume_command
        if tracking_uri:
            state.tracking_uri = tracking_uri
        if job is not None:
            state.job = job
        if tracking_uri or job is not None:
            state.save()
        spec = parse_spec(state.spec_data(in_job=job is not None), state.spec_source)
        check_runtime_env(spec.runtime_env)
        reach_tracking_store(state.tracking_uri)
        stop.check()
        client = connect(state.tracking_uri, ray_address, quiet, None if job is not None else spec.runtime_env,
                         then=WHILE_RAY_STARTS)
        stop.install()  # (again: ray.init installs a SIGTERM handler of its own)
        if job is not None:
            check_workers_import(spec)
        from .finish import finish_sweep  # (imported while Ray started)

        print(f"resuming sweep {spec.name} in {state.directory}", flush=True)
        return finish_sweep(state, spec, client, stop, max_failures, tracking_patience, release_ray=release_ray)
