"""The sweep's one Ray Tune experiment: built new, or restored from the sweep's directory after an
interruption, and run under the sweep's signal handling.

Tune holds the sweep's searcher (:mod:`sweeps.searcher`), its schedulers (:mod:`sweeps.scheduler`)
and a :class:`~sweeps.events.Relay` to the driver's live event handler; everything else the
runner keeps in memory. Only public Tune APIs: ``Tuner``, ``Tuner.restore``, ``ResultGrid``,
callbacks.
"""

from __future__ import annotations

from ray import tune

from trainables import storage, train_trial

from .events import Relay
from .scheduler import SchedulerState, SweepScheduler
from .searcher import RECOMMENDED, SweepSearcher
from .searches import PbtSearch
from .signals import StopSignals
from .spec import SweepSpec
from .state import TRIALS_DIR, SweepState

__all__ = ["recommend_from", "run_experiment", "trial_totals"]


def recommend_from(spec: SweepSpec) -> str | None:
    """The search whose best trial gives the recommended static weights, if the spec wants them."""
    search = spec.recommending_search if spec.recommended_static else None
    return None if search is None else search.name


def trial_totals(spec: SweepSpec) -> dict[str, int]:
    """How many trials each search runs, the recommended static search included."""
    totals = {search.name: search.trial_count(spec.num_tasks) for search in spec.searches}
    if recommend_from(spec):
        totals[RECOMMENDED] = spec.recommending_search.repeats
    return totals


def make_scheduler(spec: SweepSpec) -> SweepScheduler | None:
    """The early stopping of the searches that asked for it (one ASHA each) and the population based
    training of the ``pbt`` searches (one PBT each), or ``None`` (Tune's FIFO scheduler: every trial
    trains all its epochs)."""
    epochs = int(spec.training["epochs"])
    settings = {search.name: search.scheduler.resolved(epochs) for search in spec.searches if search.scheduler}
    populations = {search.name: search.settings(epochs, spec.num_tasks, int(spec.training["seed"]))
                   for search in spec.searches if isinstance(search, PbtSearch)}
    if not settings and not populations:
        return None
    from .population import SearchPBT

    return SweepScheduler(settings, {name: SearchPBT(found) for name, found in populations.items()})


def checkpoints_to_keep(spec: SweepSpec) -> int:
    """Each trial's newest checkpoints kept: 2, or with a ``pbt`` search two more than its longest
    perturbation interval, so that the checkpoint a member is copied from (its latest
    perturbation's: the member has trained less than an interval since) is still there when a
    lower member takes it over (Tune's PBT warns below 3)."""
    epochs = int(spec.training["epochs"])
    intervals = [search.interval(epochs) for search in spec.searches if isinstance(search, PbtSearch)]
    return max([2, *(interval + 2 for interval in intervals)])


def tune_storage(state: SweepState) -> tuple[str, object | None]:
    """Tune's ``storage_path`` and ``storage_filesystem`` for the sweep's directory: a local path
    as it is; a URI as a path in its pyarrow filesystem (an S3 endpoint included)."""
    if not storage.is_uri(state.directory):
        return str(state.directory), None
    filesystem, path = storage.filesystem(state.directory)
    return path, filesystem


def _tuner(state: SweepState, spec: SweepSpec, max_failures: int, checkpoint_seconds: float) -> tune.Tuner:
    trainable = tune.with_resources(train_trial, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
    storage_path, filesystem = tune_storage(state)
    if storage.exists(storage.join(state.trials_dir, "tuner.pkl")):
        # unfinished trials from their checkpoints; trials Tune gave up on get another chance
        return tune.Tuner.restore(f"{storage_path}/{TRIALS_DIR}", trainable, resume_unfinished=True,
                                  resume_errored=True, storage_filesystem=filesystem)
    totals = trial_totals(spec)
    searcher = SweepSearcher(spec.searches, spec.trial_base(checkpoint_seconds, logs=str(state.logs_dir)),
                             spec.task_names, int(spec.training["seed"]), recommend_from(spec))
    callbacks: list[tune.Callback] = [Relay(state.sweep_id)]
    scheduler = make_scheduler(spec)
    if scheduler is not None:
        callbacks.append(SchedulerState(scheduler))  # its ASHAs' rungs, saved with each experiment checkpoint
    return tune.Tuner(
        trainable,
        param_space={},
        tune_config=tune.TuneConfig(metric="best_score", mode="min", search_alg=searcher, scheduler=scheduler,
                                    num_samples=sum(totals.values()), reuse_actors=True,
                                    max_concurrent_trials=spec.resources.max_concurrent),
        run_config=tune.RunConfig(
            name=TRIALS_DIR, storage_path=storage_path, storage_filesystem=filesystem, verbose=0, callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=checkpoints_to_keep(spec)),
        ),
    )


def run_experiment(state: SweepState, spec: SweepSpec, stop: StopSignals, max_failures: int,
                   checkpoint_seconds: float) -> tune.ResultGrid:
    """Run (or restore and finish) the sweep's Tune experiment; its events go to the live handler
    registered for the sweep (:class:`~sweeps.events.SweepEvents`). A first SIGINT or SIGTERM
    ends it early (``stop.received`` says which): the result grid then holds unfinished trials."""
    tuner = _tuner(state, spec, max_failures, checkpoint_seconds)
    with stop.tune_running():
        return tuner.fit()
