"""``pbt``: population based training over static task weights (and the network's learning rate),
on Ray Tune's ``PopulationBasedTraining``, in the sweep's one Tune experiment."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..validation import describe, Fix, problem
from .base import SearchType
from .options import LearningRateRange
from .static_optuna import WeightRange, normalised_weights

if TYPE_CHECKING:
    from trainables import TrialBase, TrialConfig

__all__ = ["PERTURBABLE", "POPULATION", "PbtSearch", "log_uniform"]

#: How a pbt search picks its configurations (:meth:`SearchType.space`): a population drawn once,
#: then changed while it trains.
POPULATION = "population"
#: What a pbt search may perturb: the task weights, the network's learning rate.
PERTURBABLE = ("weights", "lr")
_MEMBER = "member"  # a point's key: which member of the population it starts
_PERTURB_FIX = "give a list of what to perturb: weights, lr, or both (e.g. [weights, lr])"
_INTERVAL_FIX = "give the epochs between two perturbations of a member, a whole number >= 1"


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    """One draw from the log-uniform distribution on ``[low, high]``."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


class PbtSearch(SearchType):
    """Population based training (Jaderberg et al. 2017) over static weights, on Ray Tune's
    :class:`~ray.tune.schedulers.PopulationBasedTraining` (asynchronous): a weight *schedule*
    found at the cost of one population.

    ``population`` members (default 4) start at once, each with task weights drawn log-uniform per
    task from ``weights: {low, high}`` (default 0.1 to 10) and normalised to sum to T, and, with
    ``lr: {low, high}``, a network learning rate drawn log-uniform (else the sweep's
    ``training.lr``); the draws follow the sweep's seed; every member trains with the sweep's seed.
    Every ``perturbation_interval`` epochs of its own (default: a quarter of the sweep's epochs,
    at least 1; a multiple of ``training.val_every``), a member's validation ``score`` of that
    epoch is ranked among the population's latest (asynchronous PBT, see
    :mod:`sweeps.population`): a member in the bottom ``quantile_fraction`` (default 0.25, at
    most 0.5) takes over the latest checkpoint of one in the top fraction (exploit: its model,
    optimizer moments and RNG) and goes on, from its own epoch, with that member's settings
    perturbed (explore), what ``perturb`` lists (default
    ``[weights]``): with probability ``resample_probability`` (default 0.25) the weights are drawn
    afresh as at the start, else each is multiplied by 0.8 or 1.2 (not all by the same), then
    normalised to sum to T;
    the learning rate (``perturb: [lr]`` needs ``lr: {low, high}``) is resampled from its range
    with that probability or multiplied by 0.8 or 1.2 (Tune's own perturbation). Members train
    from their new settings, not those stored in the checkpoint.

    The record: each member is one trial, labelled ``member=<i>``; its MLflow run's params are its
    starting settings and its ``weight/<task>`` per epoch its weight schedule; its compute is its
    own (the epochs it trained, before and after taking another member's checkpoint: every member
    trains the sweep's epochs), so the search's compute counts the whole population. The
    recommended static weights never come from it. Its members train at once: the sweep's ``resources.max_concurrent`` (when given) must be
    at least ``population``. It runs one population: ``repeats`` and ``scheduler`` are refused.
    Which member is copied and the perturbation factors are drawn by Tune's PBT from Python's
    ``random`` module, not from the sweep's seed: two runs of a pbt search differ.
    """

    method: ClassVar[str] = "static"
    trains_together: ClassVar[bool] = True
    schedules_weights: ClassVar[bool] = True

    type: Literal["pbt"] = "pbt"
    population: Annotated[int, Fix("give the members of the population, a whole number >= 2")] = Field(4, ge=2)
    perturbation_interval: Annotated[int | None, Fix(_INTERVAL_FIX)] = Field(None, ge=1)
    perturb: Annotated[list[str], Fix(_PERTURB_FIX)] = Field(default_factory=lambda: ["weights"])
    quantile_fraction: Annotated[
        float, Fix("give the fraction of the population that copies the best, > 0 and <= 0.5 (default 0.25)")
    ] = Field(0.25, gt=0, le=0.5)
    resample_probability: Annotated[
        float, Fix("give the probability of drawing afresh rather than scaling, 0 to 1 (default 0.25)")
    ] = Field(0.25, ge=0, le=1)
    weights: Annotated[WeightRange, Fix("write it as a range {low: 0.1, high: 10}")] = Field(
        default_factory=lambda: WeightRange(low=0.1, high=10.0))

    @field_validator("perturb", mode="before")
    @classmethod
    def _perturb(cls, value: Any) -> list[str]:
        if not isinstance(value, list) or not value:
            raise problem(f"expected a non-empty list, got {describe(value)}", _PERTURB_FIX)
        for i, item in enumerate(value):
            if item not in PERTURBABLE:
                raise problem(f"cannot perturb {item!r}", _PERTURB_FIX, (i,))
            if item in value[:i]:
                raise problem(f"{item!r} is listed twice", "list each once", (i,))
        return value

    @model_validator(mode="after")
    def _one_population(self) -> PbtSearch:
        if self.repeats != 1:
            raise problem(f"is {self.repeats}, but a pbt search trains one population (its members share the seed)",
                          "remove repeats; for more members raise population", ("repeats",))
        if self.scheduler is not None:
            raise problem("a pbt search is scheduled by population based training itself",
                          "remove scheduler", ("scheduler",))
        if isinstance(self.lr, list):
            raise problem("is a list, but a pbt search draws each member's learning rate",
                          "give a range {low: 0.0001, high: 0.01}, or leave lr out for training.lr", ("lr",))
        if "lr" in self.perturb and self.lr is None:
            raise problem("lists lr, which needs the learning rates' range to resample from",
                          "add lr: {low: 0.0001, high: 0.01} to the search, or perturb only weights", ("perturb",))
        return self

    def space(self) -> str:
        return POPULATION

    def draws(self) -> bool:
        """False: the population is drawn here, from the sweep's seed, not by Optuna."""
        return False

    def own_count(self, num_tasks: int) -> int:
        return self.population

    def own_points(self, num_tasks: int, seed: int) -> list[dict[str, Any]]:
        """Each member's starting point: its weights (log-uniform per task, normalised to sum to T)
        and, with a range ``lr``, its learning rate (log-uniform), drawn by ``random.Random(seed)``."""
        rng = random.Random(seed)
        points = []
        for member in range(1, self.population + 1):
            drawn = [log_uniform(rng, self.weights.low, self.weights.high) for _ in range(num_tasks)]
            point: dict[str, Any] = {_MEMBER: member, "weights": normalised_weights(drawn)}
            if isinstance(self.lr, LearningRateRange):
                point["lr"] = log_uniform(rng, self.lr.low, self.lr.high)
            points.append(point)
        return points

    def point_balancer(self, point: Mapping[str, Any]) -> dict[str, Any]:
        return {"weights": list(point["weights"])}

    def trial_config(self, base: TrialBase, point: Mapping[str, Any], repeat: int = 0) -> TrialConfig:
        """A member's config: its starting weights (and lr), labelled ``member=<i>``, checkpointed
        every epoch (an exploit copies the checkpoint of a member's perturbation epoch)."""
        config = super().trial_config(base, point, repeat)
        run = config.run.model_copy(update={"checkpoint_seconds": 0.0})
        return config.model_copy(update={"run": run, "label": f"{_MEMBER}={point.get(_MEMBER, 1)}"})

    def own_label(self, config: TrialConfig) -> str:
        return "-"  # (a member is labelled by trial_config: its weights change as it trains)

    def interval(self, epochs: int) -> int:
        """The perturbation interval in epochs: the given one, or ``max(1, epochs // 4)``."""
        return self.perturbation_interval if self.perturbation_interval is not None else max(1, epochs // 4)

    def sweep_problem(self, training: Mapping[str, Any],
                      max_concurrent: int | None) -> tuple[str, str, tuple[str, ...]] | None:
        epochs, every = int(training["epochs"]), int(training.get("val_every", 1))
        if self.perturbation_interval is not None and self.perturbation_interval >= epochs:
            return (f"is {self.perturbation_interval}, not below training.epochs ({epochs}): no member would be "
                    "perturbed", f"make it at most {max(1, epochs - 1)}", ("perturbation_interval",))
        if self.interval(epochs) % every:
            return (f"is {self.interval(epochs)}, but members validate every {every} epochs (training.val_every) "
                    "and are ranked on a validated epoch", f"make perturbation_interval a multiple of {every}",
                    ("perturbation_interval",))
        if max_concurrent is not None and max_concurrent < self.population:
            return (f"is {self.population}, above resources.max_concurrent ({max_concurrent}): a population trains "
                    "at once", f"make population at most {max_concurrent}, or raise resources.max_concurrent",
                    ("population",))
        return None

    def settings(self, epochs: int, num_tasks: int, seed: int) -> dict[str, Any]:
        """What the sweep's PBT of this search is built from (:mod:`sweeps.population`)."""
        rate = self.lr if "lr" in self.perturb else None
        return {"perturbation_interval": self.interval(epochs), "epochs": epochs,
                "quantile_fraction": self.quantile_fraction,
                "resample_probability": self.resample_probability, "seed": seed, "num_tasks": num_tasks,
                "weights": (self.weights.low, self.weights.high) if "weights" in self.perturb else None,
                "lr": (rate.low, rate.high) if rate is not None else None}
