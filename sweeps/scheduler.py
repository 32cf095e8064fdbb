"""Early stopping per search, and population based training of a ``pbt`` search, in the sweep's
one Tune experiment.

A Tune experiment has one trial scheduler; a sweep runs every search in one experiment. So
:class:`SweepScheduler` keeps one :class:`ray.tune.schedulers.ASHAScheduler` for each search
that asked for early stopping (``scheduler: {type: asha, ...}`` in the spec), and routes each
trial by its ``config["search"]`` to its own search's ASHA: trials are only ever compared with
the trials of their own search. Trials of the other searches always continue (FIFO, as without
a scheduler). Each ASHA judges the epoch's validation ``score`` (lower is better) at the rungs
of ``epoch`` (the trainable's report counter); with ``val_every`` > 1 a rung takes the first
validated epoch at or after it.

A trial that ASHA stops ends ``TERMINATED`` in Tune; Tune tells the sweep's searcher and the
callbacks ``on_trial_complete`` as for any ended trial. The MLflow run of a trial stopped before
its last epoch is FINISHED and tagged ``gradnorm_tune.stopped_early`` (see
:func:`trainables.stopped_early`).

A ``pbt`` search's trials go to its own :class:`sweeps.population.SearchPBT` (Tune's PBT), which
sees that search's trials only; its waiting members start before any other trial
(:meth:`SweepScheduler.choose_trial_to_run`), so that a population trains together.

Restore: Tune pickles the scheduler into the experiment's ``tuner.pkl`` when the Tuner is
created, and never saves it again, so a resumed sweep would start with empty rungs (and could
let a trial that was already stopped run on). :class:`SchedulerState`, a Tune callback holding
the same scheduler object (one pickle: the reference survives), returns the ASHAs' rungs, the
stop decisions and the PBT members' states from :meth:`get_state`, which Tune saves with every
experiment checkpoint, beside the trial states it matches; on resume Tune hands them back
through :meth:`set_state` before re-adding the trials.
"""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from trainables import is_marker

__all__ = ["SCORE", "TIME_ATTR", "SchedulerState", "SweepScheduler"]

SCORE = "score"  # the epoch's validation score the trainable reports (lower is better)
TIME_ATTR = "epoch"  # the trainable's epoch counter, 1, 2, ...


def _search(trial) -> str | None:
    return (trial.config or {}).get("search")


class SweepScheduler(FIFOScheduler):
    """One ASHA per search that asked for one (``settings``: search name -> ``grace_period``,
    ``reduction_factor``, ``max_t``), one PBT per ``pbt`` search (``populations``: search name ->
    its :class:`sweeps.population.SearchPBT`), FIFO for every other trial. See the module docstring."""

    def __init__(self, settings: dict[str, dict[str, Any]], populations: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.populations = dict(populations or {})
        self._members: dict[str, dict[str, Any]] = {}  # trial id -> its PBT state, saved before a restore
        self.settings = {name: dict(options) for name, options in settings.items()}
        # what Tune checks every result for: the sweep's metric, which every result has; an epoch
        # that did not validate (val_every) has no "score", and each ASHA passes over it
        self._metric = "best_score"
        self.ashas = {
            name: ASHAScheduler(time_attr=TIME_ATTR, metric=SCORE, mode="min", **options)
            for name, options in self.settings.items()
        }
        self.stopped: dict[str, int] = {}  # trial id -> the epoch its ASHA stopped it at

    def _asha(self, trial) -> ASHAScheduler | None:
        return self.ashas.get(_search(trial))

    def _population(self, trial, controller) -> tuple[Any, Any] | None:
        """The trial's search's PBT and the controller as that search sees it, or ``None``."""
        from .population import SearchView

        name = _search(trial)
        return (self.populations[name], SearchView(controller, name)) if name in self.populations else None

    # -- Tune's scheduler interface ----------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        return True  # the sweep's metric (best_score) is the searcher's; each ASHA judges the score

    def on_trial_add(self, tune_controller, trial) -> None:
        asha = self._asha(trial)
        if asha is not None:
            asha.on_trial_add(tune_controller, trial)
        population = self._population(trial, tune_controller)
        if population is not None:
            pbt, view = population
            pbt.on_trial_add(view, trial)
            if trial.trial_id in self._members:  # re-added on restore: it goes on with its state
                pbt.restore_member(trial, self._members.pop(trial.trial_id))

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        population = self._population(trial, tune_controller)
        if population is not None:
            pbt, view = population
            return TrialScheduler.CONTINUE if is_marker(result) else pbt.on_trial_result(view, trial, result)
        asha = self._asha(trial)
        if asha is None or is_marker(result):  # a failed or diverged trial's last word: no epoch
            return TrialScheduler.CONTINUE
        if trial.trial_id in self.stopped:
            # stopped before the driver died, restored from an earlier experiment checkpoint
            return TrialScheduler.STOP
        decision = asha.on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:
            self.stopped[trial.trial_id] = int(result.get(TIME_ATTR, 0))
        return decision

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        asha = self._asha(trial)
        if asha is not None:
            try:
                asha.on_trial_complete(tune_controller, trial, result)
            except KeyError:  # not added to this ASHA (restored without its state): nothing to record
                pass

    def on_trial_remove(self, tune_controller, trial) -> None:
        asha = self._asha(trial)
        if asha is not None:
            try:
                asha.on_trial_remove(tune_controller, trial)
            except KeyError:
                pass

    def on_trial_error(self, tune_controller, trial) -> None:
        asha = self._asha(trial)
        if asha is not None:
            asha.on_trial_error(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller):
        """A population's waiting member first, the one that trained least (its PBT's choice), so
        that a population trains together; else Tune's FIFO order."""
        from .population import SearchView

        for name, pbt in self.populations.items():
            trial = pbt.choose_trial_to_run(SearchView(tune_controller, name))
            if trial is not None:
                return trial
        return super().choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return "\n".join([f"[{name}] {asha.debug_string()}" for name, asha in self.ashas.items()]
                         + [f"[{name}] {pbt.debug_string()}" for name, pbt in self.populations.items()])

    # -- state (see SchedulerState) ------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The rungs each ASHA has recorded, the trials stopped so far, and each PBT member's state
        (its last score, perturbation epoch and checkpoint; picklable)."""
        members = {trial_id: saved for pbt in self.populations.values()
                   for trial_id, saved in pbt.member_states().items()}
        return {"ashas": {name: dict(vars(asha)) for name, asha in self.ashas.items()},
                "stopped": dict(self.stopped), "members": members}

    def load(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (the searches' ASHAs as they were then; each PBT member's
        state as it is re-added)."""
        for name, saved in state.get("ashas", {}).items():
            if name in self.ashas:
                vars(self.ashas[name]).update(saved)
        self.stopped.update(state.get("stopped", {}))
        self._members.update(state.get("members", {}))


class SchedulerState(tune.Callback):
    """Saves :class:`SweepScheduler`'s state with every experiment checkpoint and gives it back on
    restore (see the module docstring). Pass it in the same ``RunConfig.callbacks`` as the
    scheduler in ``TuneConfig.scheduler``."""

    def __init__(self, scheduler: SweepScheduler) -> None:
        self.scheduler = scheduler

    def get_state(self) -> dict | None:
        return {"scheduler": self.scheduler.state()}

    def set_state(self, state: dict) -> None:
        self.scheduler.load(state["scheduler"])
