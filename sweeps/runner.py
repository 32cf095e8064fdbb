"""Run a sweep spec: every search at once, as one Ray Tune experiment sharing the cluster's trial
slots, under one MLflow comparison run (one run per search under it, one per trial under that),
then the comparison of what each search cost and found.

A sweep lives in one directory (``<storage>/<name>-<time>``) that holds ``sweep.json`` (see
:mod:`sweeps.state`) and the Tune experiment ``trials/``. ``resume`` restores that experiment
(unfinished and errored trials from their checkpoints, the searcher's state, Optuna's studies
included) and finishes it.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from mlflow.tracking import MlflowClient
from ray import tune

from trainables import (
    ROLE,
    ROLE_TRIAL,
    SWEEP,
    TRIAL_ID,
    MlflowTrialLogger,
    create_comparison_run,
    create_search_run,
    default_tracking_uri,
    ensure_experiment,
    fail_fast,
    redact,
    temporary_environment,
    train_trial,
)

from .comparison import build_comparison
from .session import check_ray_address, check_runtime_env, connect, quiet_logs
from .progress import Progress, SearchTracker, end_search_run
from .scheduler import SchedulerState, SweepScheduler
from .searcher import RECOMMENDED, RECOMMENDED_TYPE, SweepSearcher
from .spec import SweepSpec, parse_spec
from .state import TRIALS_DIR, SweepError, SweepInterrupted, SweepState

ENDED = ("TERMINATED", "ERROR")


def recommend_from(spec: SweepSpec) -> str | None:
    """The search whose best trial gives the recommended static weights, if the spec wants them."""
    search = spec.recommending_search if spec.recommended_static else None
    return None if search is None else search.name


def trial_totals(spec: SweepSpec) -> dict[str, int]:
    totals = {search.name: search.trial_count(spec.num_tasks) for search in spec.searches}
    if recommend_from(spec):
        totals[RECOMMENDED] = spec.recommending_search.repeats
    return totals


def open_searches(state: SweepState, spec: SweepSpec, client: MlflowClient) -> None:
    """One MLflow run per search under the comparison run, created once, before any trial."""
    seed = int(spec.training["seed"])
    plan = [(search.name, search.type, search.parent_params(spec.num_tasks, seed)) for search in spec.searches]
    if recommend_from(spec):
        plan.append((RECOMMENDED, RECOMMENDED_TYPE, {"weights_from": recommend_from(spec)}))
    for name, kind, params in plan:
        entry = state.searches.setdefault(name, {"status": "pending"})
        if "parent_run_id" not in entry:
            entry["parent_run_id"] = create_search_run(client, state.experiment_id, state.comparison_run_id,
                                                       state.sweep_id, name, kind, params)
            if "grid_size" in params:
                entry |= {"grid_size": params["grid_size"], "sampled": bool(params.get("grid_sampled"))}
            state.save()


def trial_logger(state: SweepState, tracking_patience: float) -> MlflowTrialLogger:
    parents = {name: entry["parent_run_id"] for name, entry in state.searches.items()}
    return MlflowTrialLogger(state.tracking_uri, state.experiment_id, parents, state.sweep_id,
                             patience_seconds=tracking_patience)


def make_scheduler(spec: SweepSpec) -> SweepScheduler | None:
    """The early stopping of the searches that asked for it (one ASHA each), or ``None`` (Tune's
    FIFO scheduler: every trial trains all its epochs)."""
    epochs = int(spec.training["epochs"])
    settings = {search.name: search.scheduler.resolved(epochs) for search in spec.searches if search.scheduler}
    return SweepScheduler(settings) if settings else None


def make_tuner(state: SweepState, spec: SweepSpec, max_failures: int, tracking_patience: float,
               checkpoint_seconds: float) -> tuple[tune.Tuner, MlflowTrialLogger]:
    """The sweep's one Tuner, new or restored from its directory after an interruption, and the
    trial logger to reconcile its results with (the Tuner's own when new: it knows what it wrote)."""
    trainable = tune.with_resources(train_trial, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
    if (state.trials_dir / "tuner.pkl").exists():
        tuner = tune.Tuner.restore(str(state.trials_dir), trainable, resume_unfinished=True, resume_errored=True)
        return tuner, trial_logger(state, tracking_patience)
    totals = trial_totals(spec)
    logger = trial_logger(state, tracking_patience)
    searcher = SweepSearcher(spec.searches, spec.trial_base(checkpoint_seconds), spec.task_names,
                             int(spec.training["seed"]), recommend_from(spec))
    callbacks = [logger, Progress(totals), SearchTracker(state.directory, totals)]
    scheduler = make_scheduler(spec)
    if scheduler is not None:
        callbacks.append(SchedulerState(scheduler))  # its ASHAs' rungs, saved with each experiment checkpoint
    tuner = tune.Tuner(
        trainable,
        param_space={},
        tune_config=tune.TuneConfig(metric="best_score", mode="min", search_alg=searcher, scheduler=scheduler,
                                    num_samples=sum(totals.values()), reuse_actors=True,
                                    max_concurrent_trials=spec.resources.max_concurrent),
        run_config=tune.RunConfig(
            name=TRIALS_DIR, storage_path=str(state.directory), verbose=0,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )
    return tuner, logger


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


def run_trials(state: SweepState, spec: SweepSpec, client: MlflowClient, max_failures: int,
               tracking_patience: float, checkpoint_seconds: float) -> SweepState:
    """Run (or restore and finish) the sweep's Tune experiment; the record made whole after it."""
    start = time.time()
    # the record is MLflow's: Tune's own CSV, JSON and TensorBoard files per trial are not written
    # (they cost the driver about 20 ms a result, more than a small problem's epoch)
    tuner, logger = make_tuner(state, spec, max_failures, tracking_patience, checkpoint_seconds)
    with temporary_environment(TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1"):
        results = tuner.fit()
    state = SweepState.load(state.directory)  # the callbacks kept the searches' statuses in it
    state.wall_seconds += time.time() - start
    state.save()
    # the checkpoints are the record: whatever the tracking server missed is written now
    logger.reconcile(results)
    if logger.pending:
        raise SweepError(
            f"tracking server {redact(state.tracking_uri)} unreachable for {tracking_patience:.0f} s "
            f"({logger.last_error}); the trials are checkpointed: "
            f"bring the server back and run: gradnorm-tune resume {state.directory}"
        )
    ended = {name: 0 for name in state.searches}
    failed = dict(ended)
    for result in results:
        name = (result.config or {}).get("search")  # (a trial cut off mid-way is caught below)
        if name in ended:
            ended[name] += 1
            failed[name] += result.error is not None
    totals = trial_totals(spec)
    source = recommend_from(spec)
    if source and ended[source] == totals[source] == failed[source] and ended[RECOMMENDED] == 0:
        totals[RECOMMENDED] = 0  # every GradNorm trial failed: there are no weights to recommend
        state.searches[RECOMMENDED]["status"] = "skipped"
    cut_off = results.num_terminated + results.num_errors < len(results)  # trials cut off mid-way
    if cut_off or any(ended[name] < total for name, total in totals.items()):
        state.save()
        done, total = sum(ended.values()), sum(totals.values())
        raise SweepInterrupted(f"sweep stopped with {done} of {total} trials ended")
    drop_orphans(client, state, results)
    for name, entry in state.searches.items():
        if entry["status"] != "done":
            entry["status"] = "done" if totals[name] else entry["status"]
            entry.setdefault("ended_at", time.time())
        with fail_fast():
            if entry["status"] == "skipped":
                client.set_terminated(entry["parent_run_id"], "KILLED")
            else:
                end_search_run(client, entry)
    state.save()
    return state


def drop_orphans(client: MlflowClient, state: SweepState, results) -> None:
    """Delete the trial runs of trials the restored experiment never knew: a driver killed after
    a trial started but before Tune's next experiment checkpoint leaves that trial's run behind,
    and the searcher, restored from the same checkpoint, hands its configuration out again to a
    new trial that redoes it. Every trial Tune knows is in ``results`` (a ResultGrid)."""
    known = {trial.trial_id for trial in results._experiment_analysis.trials}  # noqa: SLF001 - no public list
    with fail_fast():
        runs = client.search_runs(
            [state.experiment_id], max_results=5000,
            filter_string=f"tags.`{SWEEP}` = '{state.sweep_id}' and tags.`{ROLE}` = '{ROLE_TRIAL}'")
        orphans = [run for run in runs if run.data.tags.get(TRIAL_ID) not in known]
        for run in orphans:
            client.delete_run(run.info.run_id)
    if orphans:
        print(f"  {len(orphans)} trial run(s) of trials started after the killed driver's last experiment "
              "checkpoint were redone by new trials after the resume; their MLflow runs were deleted", flush=True)


def run_sweep(spec: SweepSpec, *, storage: str | Path = "gradnorm-runs", tracking_uri: str | None = None,
              ray_address: str | None = None, max_failures: int = 2, quiet: bool = True,
              tracking_patience: float = 300.0, checkpoint_seconds: float = 10.0) -> SweepState:
    """Start a sweep in a new directory under ``storage`` and run it to the end. Each trial is
    checkpointed at its end and, before it, at most every ``checkpoint_seconds`` (0: every epoch):
    a failed or interrupted trial redoes at most that much."""
    if quiet:
        quiet_logs()
    if not checkpoint_seconds >= 0 or checkpoint_seconds == float("inf"):
        raise SweepError(f"--checkpoint-seconds is {checkpoint_seconds:g}; give a number of seconds >= 0 "
                         "(0 checkpoints every epoch)")
    check_ray_address(ray_address or os.environ.get("RAY_ADDRESS"))
    check_runtime_env(spec.runtime_env)
    tracking_uri = tracking_uri or default_tracking_uri()
    client = connect(tracking_uri, ray_address, quiet, spec.runtime_env)
    directory = Path(storage).resolve() / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    directory.mkdir(parents=True, exist_ok=False)
    experiment_id = ensure_experiment(client, spec.experiment, tracking_uri)
    sweep_id = uuid.uuid4().hex[:12]
    comparison = create_comparison_run(client, experiment_id, f"{spec.name} comparison", sweep_id, str(directory))
    state = SweepState(directory, spec.raw, spec.source, tracking_uri, sweep_id, experiment_id, comparison)
    state.save()
    print(f"sweep {spec.name} in {directory}\n  (if interrupted: gradnorm-tune resume {directory})", flush=True)
    return finish_sweep(state, spec, client, max_failures, tracking_patience, checkpoint_seconds)


def resume_sweep(directory: str | Path, *, ray_address: str | None = None, max_failures: int = 2,
                 quiet: bool = True, tracking_uri: str | None = None, tracking_patience: float = 300.0) -> SweepState:
    """Finish an interrupted sweep: ended trials are kept, the others restored or started."""
    state = SweepState.load(Path(directory).resolve())
    if tracking_uri:
        state.tracking_uri = tracking_uri
        state.save()
    spec = parse_spec(state.spec, state.spec_source)
    check_runtime_env(spec.runtime_env)
    client = connect(state.tracking_uri, ray_address, quiet, spec.runtime_env)
    print(f"resuming sweep {spec.name} in {state.directory}", flush=True)
    return finish_sweep(state, spec, client, max_failures, tracking_patience)


def finish_sweep(state: SweepState, spec: SweepSpec, client: MlflowClient, max_failures: int,
                 tracking_patience: float = 300.0, checkpoint_seconds: float = 10.0) -> SweepState:
    """Run the sweep's trials (a resumed sweep keeps the checkpoint interval it started with)."""
    open_searches(state, spec, client)
    print_plan(state, spec)
    state = run_trials(state, spec, client, max_failures, tracking_patience, checkpoint_seconds)
    weights = state.searches.get(RECOMMENDED, {}).get("weights")
    if weights is not None:
        print(f"recommended static weights (time-averaged GradNorm weights of the best alpha): {weights}")
    build_comparison(state, spec, client)
    return state
