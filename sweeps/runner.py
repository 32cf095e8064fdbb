"""Run a sweep spec: every search at once, as one Ray Tune experiment sharing the cluster's trial
slots, under one MLflow comparison run (one run per search under it, one per trial under that),
then the comparison of what each search cost and found, and the sweep's verdict.

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
import time
import uuid
from pathlib import Path

import ray
from mlflow.tracking import MlflowClient

from trainables import (
    MlflowTrialLogger,
    create_comparison_run,
    create_search_run,
    default_tracking_uri,
    delete_orphan_trial_runs,
    end_comparison_run,
    end_search_run,
    ensure_experiment,
    epochs_of,
    outcome_of,
    redact,
    reopen_run,
    search_of,
)

from .comparison import build_comparison
from .events import SweepEvents
from .experiment import recommend_from, run_experiment, trial_totals
from .searcher import RECOMMENDED, RECOMMENDED_TYPE
from .session import check_cluster_fits, check_local_resources, check_ray_address, check_runtime_env, connect
from .session import quiet_logs
from .shipping import check_code_shipped, check_workers_import
from .signals import StopSignals
from .spec import SweepSpec, parse_spec
from .state import SweepError, SweepInterrupted, SweepState, SweepUnfinished
from .storage import check_nodes_see_storage, check_storage, storage_root
from .storage import new_directory
from .verdict import Verdict

__all__ = ["SweepState", "finish_sweep", "resume_sweep", "run_sweep"]


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


def run_sweep(spec: SweepSpec, *, storage: str | Path | None = None, tracking_uri: str | None = None,
              ray_address: str | None = None, max_failures: int = 2, quiet: bool = True,
              tracking_patience: float = 300.0, checkpoint_seconds: float = 10.0,
              job: dict | None = None) -> SweepState:
    """Start a sweep in a new directory under ``storage`` (a path or a URI; default: the spec's
    ``storage``, else ``gradnorm-runs``) and run it to the end; the returned state's ``outcome``
    says how it ended (:class:`~sweeps.verdict.Verdict`). Each trial is checkpointed at its end
    and, before it, at most every ``checkpoint_seconds`` (0: every epoch): a failed or
    interrupted trial redoes at most that much. ``job``: the sweep runs as a Ray job
    (``gradnorm-tune submit``): ``{"runtime_env": ...}``, the runtime_env the job was submitted
    with, which Ray applies (the spec's own is not). Raises :class:`SweepError` (bad input:
    nothing started), :class:`SweepInterrupted` or :class:`SweepUnfinished` (``resume`` finishes it)."""
    if quiet:
        quiet_logs()
    check_settings(max_failures, checkpoint_seconds, tracking_patience)
    root = check_storage(storage_root(storage and str(storage), spec.storage, shared=job is not None))
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    check_ray_address(address)
    check_runtime_env(spec.runtime_env)
    if not address:
        check_local_resources(spec.resources.cpu, spec.resources.gpu)
    elif job is None:
        check_code_shipped(spec)  # to a cluster: the problem's code goes with the sweep
    tracking_uri = tracking_uri or default_tracking_uri()
    client = connect(tracking_uri, ray_address, quiet, None if job is not None else spec.runtime_env)
    try:
        check_cluster_fits(spec.resources.cpu, spec.resources.gpu)
        if address:
            check_workers_import(spec)
            check_nodes_see_storage(root)
    except SweepError:
        ray.shutdown()
        raise
    with StopSignals() as stop:  # (after ray.init, which installs a SIGTERM handler of its own)
        directory = new_directory(root, spec.name)
        experiment_id = ensure_experiment(client, spec.experiment, tracking_uri)
        sweep_id = uuid.uuid4().hex[:12]
        comparison = create_comparison_run(client, experiment_id, f"{spec.name} comparison", sweep_id, str(directory))
        state = SweepState(directory, spec.raw, spec.source, tracking_uri, sweep_id, experiment_id, comparison, job=job)
        state.save()
        print(f"sweep {spec.name} in {directory}\n  (if interrupted: {state.resume_command})", flush=True)
        return finish_sweep(state, spec, client, stop, max_failures, tracking_patience, checkpoint_seconds)


def resume_sweep(directory: str | Path, *, ray_address: str | None = None, max_failures: int = 2,
                 quiet: bool = True, tracking_uri: str | None = None, tracking_patience: float = 300.0,
                 job: dict | None = None) -> SweepState:
    """Finish an interrupted sweep (a path or a storage URI): ended trials are kept, the others
    restored or started. ``job``: as for :func:`run_sweep`."""
    if quiet:
        quiet_logs()
    check_settings(max_failures, 0.0, tracking_patience)
    state = SweepState.load(directory)
    if tracking_uri:
        state.tracking_uri = tracking_uri
    if job is not None:
        state.job = job
    if tracking_uri or job is not None:
        state.save()
    spec = parse_spec(state.spec_data(in_job=job is not None), state.spec_source)
    check_runtime_env(spec.runtime_env)
    client = connect(state.tracking_uri, ray_address, quiet, None if job is not None else spec.runtime_env)
    if job is not None:
        check_workers_import(spec)
    with StopSignals() as stop:  # (after ray.init, which installs a SIGTERM handler of its own)
        print(f"resuming sweep {spec.name} in {state.directory}", flush=True)
        return finish_sweep(state, spec, client, stop, max_failures, tracking_patience)


def open_searches(state: SweepState, spec: SweepSpec, client: MlflowClient) -> None:
    """One MLflow run per search under the comparison run, created once, before any trial; on a
    resume, the comparison and the unfinished searches' runs go back to RUNNING."""
    seed = int(spec.training["seed"])
    plan = [(search.name, search.type, search.parent_params(spec.num_tasks, seed)) for search in spec.searches]
    if recommend_from(spec):
        plan.append((RECOMMENDED, RECOMMENDED_TYPE, {"weights_from": recommend_from(spec)}))
    reopen_run(client, state.comparison_run_id)
    for name, kind, params in plan:
        entry = state.searches.setdefault(name, {"status": "pending"})
        if "parent_run_id" not in entry:
            entry["parent_run_id"] = create_search_run(client, state.experiment_id, state.comparison_run_id,
                                                       state.sweep_id, name, kind, params)
            if "grid_size" in params:
                entry |= {"grid_size": params["grid_size"], "sampled": bool(params.get("grid_sampled"))}
            state.save()
        elif entry["status"] not in ("done", "skipped"):
            reopen_run(client, entry["parent_run_id"])


def print_plan(state: SweepState, spec: SweepSpec) -> None:
    for search in spec.searches:
        entry = state.searches[search.name]
        grid = ""
        if "grid_size" in entry:
            grid = f" of a {entry['grid_size']}-point grid" + (", sampled at random" if entry["sampled"] else "")
        stopping = f", {search.scheduler.describe(int(spec.training['epochs']))}" if search.scheduler else ""
        print(f"search {search.name} ({search.type}): {search.trial_count(spec.num_tasks)} trial(s){grid}{stopping}",
              flush=True)
    if recommend_from(spec):
        count = spec.recommending_search.repeats
        print(f"search {RECOMMENDED} ({RECOMMENDED_TYPE}): {count} trial(s), once {recommend_from(spec)} has ended",
              flush=True)
    at_once = spec.resources.max_concurrent or "as many as fit"
    print(f"all searches share the trial slots: {at_once} at once, "
          f"{spec.resources.cpu:g} CPU / {spec.resources.gpu:g} GPU each", flush=True)


def finish_sweep(state: SweepState, spec: SweepSpec, client: MlflowClient, stop: StopSignals, max_failures: int,
                 tracking_patience: float = 300.0, checkpoint_seconds: float = 10.0) -> SweepState:
    """Run the sweep's trials (a resumed sweep keeps the checkpoint interval it started with),
    settle the record, and end with the comparison and the verdict."""
    logger = MlflowTrialLogger(state.tracking_uri, state.experiment_id, {}, state.sweep_id,
                               patience_seconds=tracking_patience, logs=str(state.logs_dir))
    try:
        open_searches(state, spec, client)
        logger.parents.update({name: entry["parent_run_id"] for name, entry in state.searches.items()})
        print_plan(state, spec)
        totals = trial_totals(spec)
        with SweepEvents(state, logger, totals) as events:
            start = time.time()
            try:
                results = run_experiment(state, spec, stop, max_failures, checkpoint_seconds)
            finally:
                state.wall_seconds += time.time() - start
                state.save()
            verdict = settle(state, spec, client, logger, results, events, totals, stop.received)
        delete_orphans(client, state, set(events.trials))
        build_comparison(state, spec, client)
        state.outcome, state.counts = verdict.outcome, verdict.counts
        end_comparison_run(client, state.comparison_run_id, verdict.outcome, verdict.counts)
        state.save()
    except SweepInterrupted as interrupted:
        if state.outcome != "interrupted" and not interrupted.at_once:  # stopped outside Tune's run
            end_unfinished(state, client, Verdict().counts)
        raise
    finally:
        logger.close()
    weights = state.searches.get(RECOMMENDED, {}).get("weights")
    if weights is not None:
        print(f"recommended static weights (time-averaged GradNorm weights of the best alpha): {weights}")
    print(verdict.line(), flush=True)
    return state


def settle(state: SweepState, spec: SweepSpec, client: MlflowClient, logger: MlflowTrialLogger, results,
           events: SweepEvents, totals: dict[str, int], signum: int | None) -> Verdict:
    """After Tune's run (``results``, and the trials as the callbacks last saw them): every
    trial's run made to match its checkpoints and its outcome, each search's run ended; the
    verdict, or :class:`SweepInterrupted` / :class:`SweepUnfinished` when the sweep did not get
    to its end."""
    statuses = events.statuses
    logger.reconcile(results, statuses)  # the checkpoints are the record: whatever the tracking server missed
    if logger.pending:
        raise SweepUnfinished(
            f"tracking server {redact(state.tracking_uri)} unreachable for {logger.patience_seconds:.0f} s "
            f"({logger.last_error}); the trials are checkpointed: bring the server back and run: "
            f"{state.resume_command}")
    verdict = Verdict()
    ended = {name: 0 for name in totals}
    unfinished = 0
    for trial_id, trial in events.trials.items():
        config = trial.config or {}
        search = search_of(config)
        if search not in ended:
            continue
        if statuses.get(trial_id) not in ("TERMINATED", "ERROR"):
            unfinished += 1  # cut off by the interruption (or never started): resume continues it
            continue
        ended[search] += 1
        outcome = events.ended.get(trial_id) or outcome_of(epochs_of(config), trial.last_result,
                                                             errored=statuses[trial_id] == "ERROR", ended=True)
        verdict.add(search, outcome)
    source = recommend_from(spec)
    if source and ended[source] == totals[source] and source in verdict.without_result and ended[RECOMMENDED] == 0:
        totals[RECOMMENDED] = 0  # every trial of its source failed: there are no weights to recommend
        state.searches[RECOMMENDED]["status"] = "skipped"
    if signum is not None or unfinished or any(ended[name] < total for name, total in totals.items()):
        interrupt(state, client, verdict, ended, totals, unfinished, signum)
    for name, entry in state.searches.items():
        if totals.get(name, 0):
            verdict.expect(name)
        if entry["status"] == "skipped":
            end_search_run(client, entry["parent_run_id"], "KILLED")
            continue
        entry["result"] = name not in verdict.without_result
        entry["status"] = "done"
        entry.setdefault("ended_at", time.time())
        end_search_run(client, entry["parent_run_id"], "FINISHED" if entry["result"] else "FAILED",
                       entry["ended_at"])
    state.save()
    return verdict


def interrupt(state: SweepState, client: MlflowClient, verdict: Verdict, ended: dict[str, int],
              totals: dict[str, int], unfinished: int, signum: int | None) -> None:
    """The sweep stopped before its end: :class:`SweepInterrupted` says how to finish it, after
    :func:`end_unfinished` (the trials cut off already ended KILLED)."""
    end_unfinished(state, client, verdict.counts | {"killed": unfinished})
    done, total = sum(ended.values()), sum(totals.values())
    raise SweepInterrupted(f"sweep interrupted with {done} of {total} trials ended; finish it with: "
                           f"{state.resume_command}", signum)


def end_unfinished(state: SweepState, client: MlflowClient, counts: dict[str, int]) -> None:
    """An interrupted sweep's unfinished searches' runs and its comparison run end KILLED, the
    comparison tagged ``interrupted`` (``resume`` puts them back to RUNNING)."""
    for entry in state.searches.values():
        if entry["status"] not in ("done", "skipped") and "parent_run_id" in entry:
            end_search_run(client, entry["parent_run_id"], "KILLED")
    end_comparison_run(client, state.comparison_run_id, "interrupted", counts)
    state.outcome, state.counts = "interrupted", counts
    state.save()


def delete_orphans(client: MlflowClient, state: SweepState, known: set) -> None:
    """Delete the trial runs of trials the restored experiment never knew: a driver killed after
    a trial started but before Tune's next experiment checkpoint leaves that trial's run behind,
    and the searcher, restored from the same checkpoint, hands its configuration out again to a
    new trial that redoes it."""
    deleted = delete_orphan_trial_runs(client, state.experiment_id, state.sweep_id, {t for t in known if t})
    if deleted:
        print(f"  {deleted} trial run(s) of trials started after the killed driver's last experiment "
              "checkpoint were redone by new trials after the resume; their MLflow runs were deleted", flush=True)
