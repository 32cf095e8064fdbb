"""Population based training for a ``pbt`` search (:class:`sweeps.searches.PbtSearch`), inside the
sweep's one Tune experiment.

:class:`SearchPBT` is Ray Tune's :class:`~ray.tune.schedulers.PopulationBasedTraining`
(asynchronous) with what a sweep needs around it, nothing re-implemented. Every
``perturbation_interval`` epochs of its own, a member's validation ``score`` of that epoch is
ranked among the population's latest scores (an epoch that did not validate is passed over:
``require_attrs=False``); a member in the bottom ``quantile_fraction`` takes over the checkpoint a
member of the top fraction saved at its own latest perturbation, and the new config is Tune's
perturbation of that member's config: the network's ``training.lr`` by Tune's own
``hyperparam_mutations`` (resampled log-uniform from its range with ``resample_probability``, else
times 1.2 or 0.8), the task weights by :class:`WeightExplorer` (Tune's ``custom_explore_fn``).

A member keeps its own name (``label``), and carries its own epochs and compute into the new config
(``run.carried_epochs``, ``run.carried_seconds``): the trainable adopts the other member's model
with the new weights and rate (:meth:`trainables.TrialConfig.start`) and goes on from the member's
own epoch, so every member trains exactly the sweep's epochs of its own compute, its record has
each epoch once, in order, and the search's compute is the population's. (Tune's own restore would
continue from the other member's epoch: a member that lags would skip epochs, one ahead would
train some twice.) A member's last epoch is never a perturbation.

The sweep's scheduler (:class:`sweeps.scheduler.SweepScheduler`) hands it its own search's trials
only, through :class:`SearchView`: the controller as one search sees it (its members alone; no
search algorithm, as the sweep's searcher hands out whole configurations and is told nothing of
the perturbed ones). Tune's PBT would otherwise refuse any searcher, and pause its members
whenever a trial of another search waits.
"""

from __future__ import annotations

import random
from typing import Any

from ray import tune
from ray.tune.schedulers import PopulationBasedTraining

from trainables import search_of

from .scheduler import SCORE, TIME_ATTR
from .searches import normalised_weights
from .searches.pbt import log_uniform

__all__ = ["FACTORS", "SearchPBT", "SearchView", "WeightExplorer"]

FACTORS = (1.2, 0.8)  # Tune's default perturbation factors, for the weights and the learning rate alike


class WeightExplorer:
    """Tune's ``custom_explore_fn`` for the task weights (``config["balancer"]["weights"]``): with
    probability ``resample_probability`` drawn afresh, log-uniform per task in ``[low, high]``;
    else each weight times 1.2 or 0.8, drawn independently, again until the factors are not all
    the same (one factor for all would cancel); then normalised to sum to T. Its draws
    follow ``seed`` (pickled with the scheduler, so a restored sweep goes on with them)."""

    def __init__(self, low: float, high: float, resample_probability: float, seed: int) -> None:
        self.low, self.high, self.resample_probability = low, high, resample_probability
        self.rng = random.Random(seed)

    def perturb(self, weights: list[float]) -> list[float]:
        """The weights perturbed (see the class docstring), normalised to sum to ``len(weights)``."""
        if self.rng.random() < self.resample_probability:
            return normalised_weights([log_uniform(self.rng, self.low, self.high) for _ in weights])
        factors = [self.rng.choice(FACTORS) for _ in weights]
        while len(weights) > 1 and len(set(factors)) == 1:  # one factor for all cancels in the normalisation
            factors = [self.rng.choice(FACTORS) for _ in weights]
        return normalised_weights([weight * factor for weight, factor in zip(weights, factors)])

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        balancer = dict(config["balancer"])
        balancer["weights"] = self.perturb([float(w) for w in balancer["weights"]])
        return {**config, "balancer": balancer}


class SearchPBT(PopulationBasedTraining):
    """PBT over one ``pbt`` search's members (see the module docstring). ``settings`` are
    :meth:`sweeps.searches.PbtSearch.settings`."""

    def __init__(self, settings: dict[str, Any]) -> None:
        weights, rate = settings["weights"], settings["lr"]
        explorer = None if weights is None else WeightExplorer(*weights, settings["resample_probability"],
                                                               settings["seed"])
        super().__init__(
            time_attr=TIME_ATTR, metric=SCORE, mode="min", perturbation_interval=settings["perturbation_interval"],
            hyperparam_mutations={"training": {"lr": tune.loguniform(*rate)}} if rate is not None else None,
            quantile_fraction=settings["quantile_fraction"], resample_probability=settings["resample_probability"],
            perturbation_factors=FACTORS, custom_explore_fn=explorer, log_config=False, require_attrs=False,
        )
        self.settings = dict(settings)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        """Tune's PBT, but for a member's last epoch: it ends there (a member that took its
        checkpoint over would have nothing left to train)."""
        if result.get(TIME_ATTR, 0) >= self.settings["epochs"]:
            return self.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def _get_new_config(self, trial, trial_to_clone) -> tuple[dict, dict]:
        config, operations = super()._get_new_config(trial, trial_to_clone)
        own = self._trial_state[trial].last_result or {}
        config = {**config, "label": trial.config.get("label"), "repeat": trial.config.get("repeat"),
                  "run": {**config["run"], "carried_epochs": int(own.get(TIME_ATTR, 0)),
                          "carried_seconds": float(own.get("compute_seconds", 0.0))}}
        return config, operations

    # -- the members' states, saved with the sweep's experiment checkpoints ----------------------

    def member_states(self) -> dict[str, dict[str, Any]]:
        """Each member's state by trial id (picklable: a checkpoint still being saved is left out)."""
        states = {}
        for trial, state in self._trial_state.items():
            saved = dict(vars(state))
            if saved.get("last_checkpoint") is not None and not isinstance(saved["last_checkpoint"], tune.Checkpoint):
                saved["last_checkpoint"] = None
            states[trial.trial_id] = saved
        return states

    def restore_member(self, trial, saved: dict[str, Any]) -> None:
        """Give a re-added member the state it had (:meth:`member_states`)."""
        if trial in self._trial_state:
            vars(self._trial_state[trial]).update(saved)


class SearchView:
    """The Tune controller as one search sees it: :meth:`get_trials` lists its own trials only,
    there is no search algorithm; everything else is the controller's."""

    def __init__(self, controller, search: str) -> None:
        self._controller, self._search = controller, search
        self.search_alg = None

    def get_trials(self) -> list:
        return [trial for trial in self._controller.get_trials() if search_of(trial.config) == self._search]

    def get_live_trials(self) -> list:
        return [trial for trial in self._controller.get_live_trials() if search_of(trial.config) == self._search]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._controller, name)
