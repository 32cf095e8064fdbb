"""The interface every search type implements (:class:`SearchType`), and the network's learning
rate that every type takes.

A search type is a pydantic model (see :class:`sweeps.validation.SpecModel`) with a
``type: Literal["<type>"]`` field and its options as typed fields. The runner knows nothing of
the types: it asks the search object how many trials it runs, their varied keys (or a Ray Tune
searcher that picks them), the balancer options, the label of a trial and the params of the
search's own MLflow run.

Every type takes the network's learning rate ``lr`` (see :class:`SearchType`): one owner,
here, for how a searched ``training.lr`` enters a type's trials, whatever the type.

Validation may be given a context (``num_tasks``, ``task_names``, ``problem``; see
:func:`~.options.tasks_context`); fixes that depend on the problem use it.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..validation import NAME_FIX, describe, Fix, fmt, Name, problem, SpecModel
from .early_stopping import SCHEDULER_FIX, AshaScheduler
from .options import LearningRateRange, number_list, optuna_searcher

if typing.TYPE_CHECKING:
    from trainables import TrialBase, TrialConfig

__all__ = ["GRID", "ONE", "OPTUNA", "SearchType"]

#: How a type picks its own configurations (:meth:`SearchType.space`): one fixed configuration,
#: a list of them (a grid), or drawn by Optuna from a space.
ONE, GRID, OPTUNA = "one", "grid", "optuna"

_NETWORK_LR_FIX = ("give the network's learning rates to search as a range {low: 0.0001, high: 0.01} (drawn by "
                   "Optuna) or a list [0.001, 0.003] (one configuration each); for one rate set training.lr")
_NUM_TRIALS_FIX = "give how many configurations Optuna draws, a whole number >= 1, e.g. 'num_trials: 8'"


class SearchType(SpecModel):
    """One search of a sweep: its options, and the trials it runs.

    ``name`` is its key in the spec's ``searches`` mapping (not an option of the mapping).
    Subclasses set ``type`` to a ``Literal`` and ``method`` to the
    :func:`gradnorm_core.make_balancer` method its trials use, and describe their own
    configurations: :meth:`space` (one, a grid, or Optuna's), :meth:`own_points` or
    :meth:`own_space`, :meth:`point_balancer` and :meth:`own_label`. Each trial's
    :class:`trainables.TrialConfig` is built by :meth:`trial_config` from the sweep's shared part,
    the search's fixed balancer options and the point it varies.

    The network's learning rate, ``lr``, is an option of every type (this class owns it): left out,
    the trials train at the sweep's ``training.lr``; a range ``{low, high}`` is drawn log-uniform
    by Optuna, jointly with the type's own space (GradNorm's alpha, static_optuna's weights), or
    alone for a type of one configuration (equal weights, a one-trial balancer), ``num_trials``
    draws; a list makes each configuration one per rate (a grid dimension; refused where Optuna
    draws the points). A grid takes no range (its points are fixed: give a list, or use the
    Optuna form of the search). The drawn rate is the trial's ``training.lr`` and its label ends
    ``lr=0.0012``. Budgets count every trial: ``num_trials`` (times the rates of a list) times
    ``repeats``.
    """

    KEY_NOUN: ClassVar[str] = "option"
    SHAPE_FIX: ClassVar[str] = "write it as {type: gradnorm, ...}"

    method: ClassVar[str]
    #: Whether its trials' time-averaged weights give the sweep's recommended static weights.
    recommends_static: ClassVar[bool] = False
    #: Whether its trials are the single-task reference of Delta m% (not a competitor).
    reference: ClassVar[bool] = False
    #: Whether its trials map a trade-off front (the report draws its non-dominated points).
    maps_front: ClassVar[bool] = False
    #: Whether its trials train together (a population): the sweep starts them all at once.
    trains_together: ClassVar[bool] = False
    #: Whether its trials' weights change as they train (a schedule): the report plots its best
    #: trial's weights per epoch and gives their last values.
    schedules_weights: ClassVar[bool] = False

    name: Annotated[Name, Fix(NAME_FIX, noun="search name")]
    type: str
    #: Seeds per configuration: each configuration is trained with the sweep's seed, seed + 1, ...
    repeats: Annotated[int, Fix("give how many seeds train each configuration, a whole number >= 1")] = Field(1, ge=1)
    #: Early stopping of the search's trials (see :mod:`sweeps.searches.early_stopping`); None: every
    #: trial trains all of the sweep's epochs.
    scheduler: Annotated[AshaScheduler | None, Fix(SCHEDULER_FIX)] = None
    #: The network's learning rate to search (a range for Optuna, a list for a grid); None: training.lr.
    lr: Annotated[LearningRateRange | list[float] | None, Fix(_NETWORK_LR_FIX)] = None
    #: How many configurations Optuna draws (searches Optuna draws: an Optuna space, or a range lr).
    num_trials: Annotated[int | None, Fix(_NUM_TRIALS_FIX, missing=_NUM_TRIALS_FIX)] = Field(None, ge=1)

    @field_validator("lr", mode="wrap")
    @classmethod
    def _network_lr(cls, value: Any, handler: Any, info: ValidationInfo) -> LearningRateRange | list[float] | None:
        """A range, or a list of distinct rates > 0; a single number is refused (the old meaning of
        ``lr`` on some types was the method's own rate: say where each one goes now)."""
        if value is None or isinstance(value, LearningRateRange):
            return value
        if isinstance(value, dict):
            return LearningRateRange.model_validate(value, context=info.context)
        if isinstance(value, list):
            rates = number_list(value, _NETWORK_LR_FIX, distinct="list each learning rate once")
            for i, rate in enumerate(rates):
                if not rate > 0:
                    raise problem(f"must be > 0, got {fmt(rate)}", _NETWORK_LR_FIX, (i,))
            return rates
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise problem(f"is one number ({value!r}), but a search's lr is the network's learning rate to search",
                          "give a range {low, high} or a list of rates (one rate for the whole sweep: training.lr; "
                          "a method's own learning rate: weight_lr)")
        raise problem(f"expected a range or a list, got {describe(value)}", _NETWORK_LR_FIX)

    @model_validator(mode="after")
    def _network_lr_fits(self) -> SearchType:
        """``lr`` fits how the type picks its configurations; ``num_trials`` exactly where Optuna draws."""
        space = self.space()
        if isinstance(self.lr, LearningRateRange) and space == GRID:
            raise problem("is a range, which Optuna draws, but this search runs a grid of fixed points",
                          self.grid_lr_fix(), ("lr",))
        if isinstance(self.lr, list) and space == OPTUNA:
            raise problem("is a list, a grid dimension, but Optuna draws this search's configurations",
                          "give a range {low: 0.0001, high: 0.01}: Optuna draws it with the rest", ("lr",))
        if self.draws() and self.num_trials is None:
            raise problem("missing required field", self.num_trials_fix(), ("num_trials",))
        if not self.draws() and self.num_trials is not None:
            raise problem("is for searches that Optuna draws",
                          "remove it, or give lr as a range {low, high} for Optuna to draw", ("num_trials",))
        return self

    @classmethod
    def type_name(cls) -> str:
        """The value of ``type`` that selects this class."""
        return typing.get_args(cls.model_fields["type"].annotation)[0]

    @classmethod
    def user_keys(cls) -> tuple[str, ...]:
        return tuple(key for key in cls.model_fields if key not in ("name", "type"))

    @classmethod
    def key_where(cls) -> str:
        return f" for search type {cls.type_name()!r}"

    @property
    def options(self) -> dict[str, Any]:
        """The validated options (those given, with inferred ones filled in; ``repeats`` only
        when more than one)."""
        exclude = {"name", "type"} | ({"repeats"} if self.repeats == 1 else set())
        return self.model_dump(exclude=exclude, exclude_none=True)

    # -- what a type says about its own configurations -----------------------------------------

    def space(self) -> str:
        """How the type picks its own configurations: :data:`ONE`, :data:`GRID` or :data:`OPTUNA`."""
        return ONE

    def grid_lr_fix(self) -> str:
        """The fix when a grid of this type is given a range ``lr``."""
        return "give lr as a list of rates (a grid dimension), or use the Optuna form of this search"

    def num_trials_fix(self) -> str:
        """The fix of a missing ``num_trials``."""
        if self.space() == ONE:
            return "give how many learning rates Optuna tries, a whole number >= 1, e.g. 'num_trials: 8'"
        return _NUM_TRIALS_FIX

    def own_points(self, num_tasks: int, seed: int) -> list[dict[str, Any]]:
        """The type's own configurations, listed (for :data:`ONE` and :data:`GRID`)."""
        return [{}]

    def own_count(self, num_tasks: int) -> int:
        """How many configurations :meth:`own_points` lists (override when listing them is costly)."""
        return len(self.own_points(num_tasks, 0))

    def own_space(self, num_tasks: int) -> dict[str, Any]:
        """The type's own Optuna space, as Tune domains (for :data:`OPTUNA`)."""
        return {}

    def own_label(self, config: TrialConfig) -> str:
        """What the type varied in a trial (``alpha=1.3``), ``"-"`` if nothing."""
        return "-"

    def own_first(self, num_tasks: int) -> dict[str, Any]:
        """One configuration of the type's own, to check its trials with before Ray starts: the
        first it lists; a type with an Optuna space overrides it (the low end of each range)."""
        points = self.own_points(num_tasks, 0)
        return dict(points[0]) if points else {}

    def check(self, num_tasks: int, task_names: Sequence[str], problem_name: str) -> None:
        """The checks that need the problem's tasks; raise a :func:`problem` located below the
        search."""

    def balancer_options(self) -> dict[str, Any]:
        """Fixed keyword options for ``make_balancer(self.method, ...)`` (not the varied ones)."""
        return {}

    def point_balancer(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The balancer options a point (as listed or as a searcher picked it; the network's
        ``lr`` taken out) sets: by default the point itself."""
        return dict(point)

    # -- what the sweep asks, the same for every type ------------------------------------------

    def draws(self) -> bool:
        """Whether Optuna draws this search's configurations (its own space, or a range ``lr``)."""
        return self.space() == OPTUNA or isinstance(self.lr, LearningRateRange)

    def config_count(self, num_tasks: int) -> int:
        """How many configurations this search trains (each ``repeats`` times)."""
        if self.draws():
            assert self.num_trials is not None  # checked by validation
            return self.num_trials
        rates = len(self.lr) if isinstance(self.lr, list) else 1
        return self.own_count(num_tasks) * rates

    def trial_count(self, num_tasks: int) -> int:
        """How many trials this search runs: configurations times repeats."""
        return self.config_count(num_tasks) * self.repeats

    def trial_points(self, num_tasks: int, seed: int) -> list[dict[str, Any]] | None:
        """The varied keys of each configuration, or ``None`` when a searcher picks them as it
        goes (repeats are not listed: the sweep's searcher trains each point ``repeats`` times)."""
        if self.draws():
            return None
        points = self.own_points(num_tasks, seed)
        if isinstance(self.lr, list):
            return [{**point, "lr": rate} for point in points for rate in self.lr]
        return points

    def first_point(self, num_tasks: int, seed: int) -> dict[str, Any] | None:
        """A point to check the search's trials with before Ray starts: its first listed point,
        or, where Optuna draws them, the low end of every range (:meth:`own_first`, and a range
        network ``lr``); None for a search of no trials."""
        if not self.draws():
            points = self.trial_points(num_tasks, seed)
            return dict(points[0]) if points else None
        point = self.own_first(num_tasks)
        if isinstance(self.lr, LearningRateRange):
            point["lr"] = self.lr.low
        return point

    def searcher(self, seed: int, metric: str, mode: str, num_tasks: int = 0) -> Any:
        """The Ray Tune searcher that picks the trials (Optuna's TPE, seeded, over the type's
        own space and a range ``lr``, log-uniform), or ``None`` (the trials are :meth:`trial_points`)."""
        if not self.draws():
            return None
        from ray import tune

        space = dict(self.own_space(num_tasks)) if self.space() == OPTUNA else {}
        if isinstance(self.lr, LearningRateRange):
            space["lr"] = tune.loguniform(self.lr.low, self.lr.high)
        return optuna_searcher(space, seed, metric, mode)

    def sweep_problem(self, training: Mapping[str, Any],
                      max_concurrent: int | None) -> tuple[str, str, tuple[str, ...]] | None:
        """``(what, fix, field)`` when the search does not fit the sweep's ``training`` (its
        ``epochs``, ``val_every``) and ``resources.max_concurrent``; ``None`` when it does."""
        return None

    def objectives(self, task_names: Sequence[str]) -> list[str] | None:
        """The metrics its searcher is told of each trial, one objective each, read at the trial's
        best epoch (lowest validation ``score``); ``None``: the sweep's one metric."""
        return None

    def trial_config(self, base: TrialBase, point: Mapping[str, Any], repeat: int = 0) -> TrialConfig:
        """The config of one trial: the sweep's problem, training and run (``base``), a balancer
        of this search's method with its fixed options and the point's, the point's network
        ``lr`` as ``training.lr``, and the point's label. With ``repeats > 1``, repeat ``k``
        trains with the sweep's seed + k and says so."""
        point = dict(point)
        training = {"lr": point.pop("lr")} if self.lr is not None and "lr" in point else {}
        balancer = {"method": self.method, **self.balancer_options(), **self.point_balancer(point)}
        if self.repeats > 1:
            training["seed"] = base.training.seed + repeat
        config = base.trial(balancer, training=training, search=self.name,
                            repeat=repeat if self.repeats > 1 else None)
        return config.model_copy(update={"label": self.label(config)})

    def label(self, config: TrialConfig) -> str:
        """The varied part of a trial's config, for tables and progress lines: the type's own
        (:meth:`own_label`), then ``lr=0.0012`` when the network's rate is searched."""
        own = self.own_label(config)
        if self.lr is None:
            return own
        rate = f"lr={config.training.lr:.4g}"
        return rate if own == "-" else f"{own}, {rate}"

    def parent_params(self, num_tasks: int, seed: int) -> dict[str, Any]:
        """The params of the search's own MLflow run (JSON-able)."""
        return dict(self.options)
