"""``static_pareto``: static task weights drawn by Optuna's NSGA-II sampler with one objective per
task, a search of the trade-off front rather than of one best point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from ..validation import Fix, problem
from .static_optuna import StaticOptunaSearch

__all__ = ["StaticParetoSearch"]

_POPULATION_FIX = "give the individuals per NSGA-II generation, a whole number >= 2 (default: about num_trials / 3)"


class StaticParetoSearch(StaticOptunaSearch):
    """Static weights drawn by Optuna's :class:`~optuna.samplers.NSGAIISampler` (seeded by the
    sweep's seed; picklable: :mod:`sweeps.samplers`), through Ray Tune's ``OptunaSearch`` with a
    list of metrics: ``num_trials`` configurations, each task's weight drawn log-uniform from
    ``weights: {low, high}`` (default 0.1 to 10) and normalised to sum to T, as in
    ``static_optuna``.

    Objectives: one per task, to minimise, each task's validation normalized error
    (``val/<task>/normalized_error``, scale-free) **at the trial's best epoch**, the epoch with the
    lowest validation ``score``, which is the epoch selection keeps everywhere in the report (not
    the last epoch). With ``repeats``, the sampler is told each objective's mean over the seeds.

    ``population_size``: the individuals of one NSGA-II generation; the first generation is drawn
    at random, each later one bred from the non-dominated sorting of the trials so far. Default
    ``max(2, min(50, num_trials // 3))``: about three generations at a small budget, Optuna's own
    50 from 150 trials on.

    Tune's schedulers judge one metric and Optuna does not prune a multi-objective study, so
    ``scheduler`` is refused. The network's ``lr`` as a range is drawn with the weights (it is no
    objective). The report draws this search's non-dominated trials beside the grid's front.
    """

    #: Its trials map a front: the report draws its non-dominated points as one more layer.
    maps_front: ClassVar[bool] = True

    type: Literal["static_pareto"] = "static_pareto"  # type: ignore[assignment]
    population_size: Annotated[int | None, Fix(_POPULATION_FIX)] = Field(None, ge=2)

    @model_validator(mode="after")
    def _one_metric_schedulers_only(self) -> StaticParetoSearch:
        if self.scheduler is not None:
            raise problem("Tune's schedulers judge one metric, but static_pareto has one objective per task",
                          "remove scheduler (Optuna does not prune a multi-objective study either)", ("scheduler",))
        return self

    def generation_size(self) -> int:
        """NSGA-II's ``population_size``: the given one, or the default (see the class docstring)."""
        if self.population_size is not None:
            return self.population_size
        return max(2, min(50, (self.num_trials or 0) // 3))

    def objectives(self, task_names: Sequence[str]) -> list[str] | None:
        from trainables import task_error_metric

        return [task_error_metric(task) for task in task_names]

    def searcher(self, seed: int, metric: Any, mode: str, num_tasks: int = 0) -> Any:
        """Tune's ``OptunaSearch`` over the weights (and a range ``lr``) with ``metric``, the
        list of :meth:`objectives`, all minimised, sampled by NSGA-II seeded by ``seed``."""
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch

        from ..samplers import PicklableNSGAIISampler

        metrics = list(metric) if isinstance(metric, (list, tuple)) else [metric]
        space = dict(self.own_space(num_tasks))
        if self.lr is not None:
            space["lr"] = tune.loguniform(self.lr.low, self.lr.high)
        return OptunaSearch(space=OptunaSearch.convert_search_space(space), metric=metrics, mode=[mode] * len(metrics),
                            sampler=PicklableNSGAIISampler(population_size=self.generation_size(), seed=seed))
