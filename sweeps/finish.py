"""A sweep from its first trial to its verdict: one MLflow run per search under the comparison
run, the trials (:mod:`sweeps.experiment`), the record settled after them, the comparison and the
verdict. :mod:`sweeps.runner` starts a sweep or resumes one, then hands it here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from trainables import (
    MlflowTrialLogger,
    delete_orphan_trial_runs,
    end_comparison_run,
    end_search_run,
    epochs_of,
    outcome_of,
    redact,
    reopen_run,
    search_of,
    skip_search_run,
)

from . import session
from .events import SweepEvents
from .experiment import recommend_from, run_experiment, trial_totals
from .searcher import RECOMMENDED, RECOMMENDED_TYPE
from .signals import StopSignals
from .spec import SweepSpec
from .state import SweepInterrupted, SweepState, SweepUnfinished
from .verdict import Verdict

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["finish_sweep"]


def open_searches(state: SweepState, spec: SweepSpec, client: MlflowClient, logger: MlflowTrialLogger) -> None:
    """One MLflow run per search under the comparison run, each created by ``logger`` when the
    search's first trial starts (so that it spans its own trials); on a resume, the comparison and
    the unfinished searches' runs go back to RUNNING."""
    seed = int(spec.training["seed"])
    plan = [(search.name, search.type, search.parent_params(spec.num_tasks, seed)) for search in spec.searches]
    if recommend_from(spec):
        plan.append((RECOMMENDED, RECOMMENDED_TYPE, {"weights_from": recommend_from(spec)}))
    reopen_run(client, state.comparison_run_id)
    for name, kind, params in plan:
        entry = state.searches.setdefault(name, {"status": "pending"})
        if "grid_size" in params and "grid_size" not in entry:
            entry |= {"grid_size": params["grid_size"], "sampled": bool(params.get("grid_sampled")),
                      "levels": params.get("grid_levels")}
        if "parent_run_id" not in entry:
            logger.plans[name] = (kind, params)
            continue
        logger.parents[name] = entry["parent_run_id"]
        if entry["status"] not in ("done", "skipped"):
            reopen_run(client, entry["parent_run_id"])
    state.save()


def adopt_search_runs(state: SweepState, logger: MlflowTrialLogger) -> None:
    """The search runs ``logger`` created, kept in the state (``resume`` and ``report`` read them)."""
    for name, entry in state.searches.items():
        if name in logger.parents:
            entry["parent_run_id"] = logger.parents[name]


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
                 tracking_patience: float = 300.0, checkpoint_seconds: float = 10.0,
                 release_ray: bool = False) -> SweepState:
    """Run the sweep's trials (a resumed sweep keeps the checkpoint interval it started with),
    settle the record, and end with the comparison and the verdict. ``release_ray``: once the
    trials are settled, the Ray the sweep started stops while the comparison is built (for a
    command that exits after the sweep; see :func:`sweeps.session.release_ray`)."""
    logger = MlflowTrialLogger(state.tracking_uri, state.experiment_id, {}, state.sweep_id,
                               patience_seconds=tracking_patience, logs=str(state.logs_dir),
                               comparison_run_id=state.comparison_run_id)
    try:
        stop.check()  # a signal while the sweep was set up: its runs end KILLED below
        open_searches(state, spec, client, logger)
        print_plan(state, spec)
        totals = trial_totals(spec)
        with SweepEvents(state, logger, totals, stop) as events:
            start = time.time()
            try:
                results = run_experiment(state, spec, stop, max_failures, checkpoint_seconds)
            finally:
                state.wall_seconds += time.time() - start
                state.save()
            verdict = settle(state, spec, client, logger, results, events, totals, stop.received)
        state.outcome, state.counts = verdict.outcome, verdict.counts  # the trials' verdict, for `report` too
        state.save()
        delete_orphans(client, state, set(events.trials))
        releasing = session.release_ray() if release_ray else None
        from .rebuild import build  # (the report's modules: needed only now)

        try:
            with stop.finishing():
                build(state, spec, client, ending=True)
        finally:
            if releasing is not None:
                releasing.join()
        end_comparison_run(client, state.comparison_run_id, verdict.outcome, verdict.counts)
    except SweepInterrupted as interrupted:
        if state.outcome != "interrupted" and not interrupted.at_once:  # stopped outside Tune's run
            adopt_search_runs(state, logger)
            end_unfinished(state, client, state.counts or Verdict().counts)
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
    # the checkpoints are the record: whatever the tracking server missed
    logger.reconcile(results, statuses, {trial_id: trial.config for trial_id, trial in events.trials.items()})
    adopt_search_runs(state, logger)
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
        if "parent_run_id" not in entry:  # no trial of it started: its run starts and ends now
            entry["parent_run_id"] = logger.search_run(name)
        if entry["status"] == "skipped":
            skip_search_run(client, entry["parent_run_id"])
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
