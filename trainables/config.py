"""A trial's configuration, :class:`TrialConfig`: every key a trial has, declared here once, and
the validation of its values, checked before any compute (and by the sweep spec, before Ray
starts). What Ray Tune passes to the trainable is its serialised form (:meth:`TrialConfig.to_dict`),
which MLflow keeps as the trial run's params, flattened with dots (``training.lr``)."""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator
from torch import nn

from gradnorm_core import Balancer, MultiHeadNet, Problem, TrainConfig, Training, fit, make_balancer, make_problem
from gradnorm_core import METHODS, BalancerOptionError, check_balancer_options, resolve_initial_losses

from .config_errors import Bad, TrialConfigError, first_error, shown

__all__ = ["MAX_SEED", "BalancerConfig", "ProblemConfig", "RunConfig", "TrainingConfig", "TrialBase", "TrialConfig",
           "TrialConfigError", "epochs_of", "label_of", "logs_of", "method_of", "search_of",
           "weights_of"]

#: The largest seed: NumPy's generators and Optuna's samplers take seeds below 2**32.
MAX_SEED = 2**32 - 1
#: Options a trial must state for its method (the hyperparameter its search varies; the library's
#: default would hide a search that lost its value on the way).
REQUIRED = {"gradnorm": ("alpha",)}
#: Balancer options a trial fills in from its problem when its config leaves them out, for any
#: method that takes them (by option name, never by method).
FROM_PROBLEM = {"kinds": lambda problem: list(problem.task_kinds())}
#: Balancer options a trial fills in from its training when its config leaves them out: the seed of
#: a method's own random stream (RLW's weights, PCGrad's orders) is the trial's, so repeats differ.
FROM_TRAINING = {"seed": lambda training: training.seed}
_DEVICE_FIX = "use 'auto', 'cpu' or 'cuda[:N]'"
_FIXES = {  # how to fix a bad training value, where TrainConfig's own message says no more
    "epochs": "give a whole number of epochs, e.g. 8", "batch_size": "give a whole batch size, e.g. 64",
    "lr": "give a positive learning rate, e.g. 0.002", "weight_decay": "give 0 or a positive number, e.g. 0.0001",
    "seed": f"give a whole number in [0, {MAX_SEED}], e.g. 0", "device": _DEVICE_FIX,
}


class _Model(BaseModel):
    # strict: a bool is no number, a string no list; NaN and infinities are refused
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], at: tuple[str, ...] = ()):
        """``config`` (the serialised form) validated; anything off raises a one-line
        :class:`TrialConfigError` at its key path (below ``at``, where this part sits)."""
        try:
            return cls.model_validate(config)
        except ValidationError as exc:
            raise first_error(exc, at, _FIXES, _keys_at) from None

    def to_dict(self) -> dict[str, Any]:
        """The serialised form: nested plain values (what Tune's param space and MLflow get)."""
        return self.model_dump()


class ProblemConfig(_Model):
    """The problem: its ``name`` (``gradnorm_core.make_problem``), keyword ``options`` (JSON
    values: they are the trial run's params) and ``shared_layer``, GradNorm's W as a module path
    in the model (None: the problem's own ``shared_layer``, else the model's ``last_shared_layer``)."""

    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    shared_layer: str | None = Field(None, min_length=1)

    @field_validator("options")
    @classmethod
    def _json(cls, options: dict[str, Any]) -> dict[str, Any]:
        for key, value in options.items():
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                raise Bad(f"{shown(value)} is no JSON value ({type(value).__name__})",
                           "give numbers (finite), strings, booleans, lists or mappings: they are the trial's "
                           "MLflow params (quote a date, e.g. '2024-05-01')", (key,)) from None
        return options


class BalancerConfig(_Model):
    """The balancer: ``method`` (a name of ``gradnorm_core.BALANCERS``) and that method's own
    options beside it, as its constructor names them (GradNorm's ``alpha``, ``lr`` of its weights,
    ``initial_losses``, ...), checked by :func:`gradnorm_core.check_balancer_options`. GradNorm's
    ``initial_losses`` may also be ``"chance"``, resolved when the trial builds its problem."""

    model_config = ConfigDict(extra="allow")

    method: str

    @model_validator(mode="before")
    @classmethod
    def _options(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("method"), str):
            return data  # the field checks say what is wrong
        method, options = data["method"], {k: v for k, v in data.items() if k != "method"}
        try:
            checked = check_balancer_options(method, options)
        except BalancerOptionError as error:
            raise Bad(error.what, error.fix, (error.option,) if error.option else ("method",)) from None
        for key in REQUIRED.get(method, ()):
            if options.get(key) is None:
                raise Bad(f"method {method!r} needs {key}", f"give the trial's {key} (its search varies it)", (key,))
        return {"method": method, **checked}

    @property
    def options(self) -> dict[str, Any]:
        """The options (everything but ``method``), as ``make_balancer`` takes them."""
        return dict(self.model_extra or {})


class RunConfig(_Model):
    """How the trial runs, not what it trains: the trainable reads it, the training never sees it.
    ``checkpoint_seconds``: checkpoint at most this often, and at the last epoch (0: every epoch);
    ``logs``: where the trial's log and failure record go, the sweep's logs folder (a path or URI;
    None: the trial's own directory); ``carried_epochs`` and ``carried_seconds``: the epochs and
    compute the trial had done when it adopted another trial's checkpoint (set by population based
    training's exploit; 0 otherwise)."""

    checkpoint_seconds: float = Field(0.0, ge=0)
    logs: str | None = Field(None, min_length=1)
    #: The epochs and compute seconds the trial had done when it took another trial's checkpoint
    #: over (population based training's exploit); its epochs and compute go on from there.
    carried_epochs: int = Field(0, ge=0)
    carried_seconds: float = Field(0.0, ge=0)


class _TrainingChecks(_Model):
    @model_validator(mode="before")
    @classmethod
    def _ranges(cls, data: Any) -> Any:
        """TrainConfig's own checks (their messages name the fix), before the strict types; the
        device is only parsed here: it is checked where the trial runs."""
        if not isinstance(data, Mapping) or set(data) - set(cls.model_fields):
            return data  # not a mapping, or unknown keys: said by pydantic
        device = data.get("device", "auto")
        if device != "auto":
            import torch

            try:
                torch.device(device)
            except (RuntimeError, TypeError, ValueError):
                raise Bad(f"unknown device {device!r}", _DEVICE_FIX, ("device",)) from None
        try:
            TrainConfig(**{**data, "device": "cpu"})
        except (TypeError, ValueError) as error:
            message = " ".join(str(error).split())
            key = next((k for k in cls.model_fields if message.startswith((f"{k} ", f"{k}: "))), None)
            what, fix = message, _FIXES.get(key or "", "fix the value")
            if key and message.startswith(f"{key}: ") and "; " in message:  # "<key>: <what>; <fix>"
                what, fix = message[len(key) + 2:].split("; ", 1)
            raise Bad(what, fix, (key,) if key else ()) from None
        seed = data.get("seed", 0)
        if isinstance(seed, int) and seed > MAX_SEED:
            raise Bad(f"{seed} is above {MAX_SEED} (2**32 - 1), the largest seed NumPy and Optuna take",
                       _FIXES["seed"], ("seed",))
        return data


_TRAIN_TYPES = typing.get_type_hints(TrainConfig)
#: The network's training: every field of :class:`gradnorm_core.TrainConfig` (declared there),
#: strictly typed, finite, and in TrainConfig's ranges; ``seed`` at most :data:`MAX_SEED`.
TrainingConfig = create_model(  # type: ignore[call-overload]
    "TrainingConfig", __base__=_TrainingChecks, __module__=__name__,
    **{f.name: (_TRAIN_TYPES[f.name], f.default) for f in dataclasses.fields(TrainConfig)},
)


class TrialBase(_Model):
    """What every trial of a sweep shares: its problem, training, and how trials run."""

    problem: ProblemConfig
    training: TrainingConfig  # type: ignore[valid-type]
    run: RunConfig = Field(default_factory=RunConfig)

    def trial(self, balancer: Mapping[str, Any], *, training: Mapping[str, Any] | None = None,
              search: str | None = None, repeat: int | None = None, label: str = "-") -> TrialConfig:
        """The config of one trial: this base with ``balancer``, ``training`` keys overridden
        (a search that varies the network's lr; a repeat's seed) and the search's bookkeeping."""
        data = self.to_dict()
        data["training"].update(training or {})
        return TrialConfig.from_dict({**data, "balancer": dict(balancer), "search": search, "repeat": repeat,
                                      "label": label})


class TrialConfig(TrialBase):
    """Everything one trial is: the problem, the balancer and its options, the network's training,
    how the trial runs, and its search's bookkeeping. Serialised (:meth:`to_dict`)::

        {"problem": {"name": "multidigits", "options": {"num_train": 4000}, "shared_layer": None},
         "training": {"epochs": 15, "batch_size": 64, "lr": 0.002, "seed": 0, ...},  # every TrainConfig field
         "run": {"checkpoint_seconds": 10.0},
         "balancer": {"method": "gradnorm", "alpha": 1.5, "lr": 0.025, "initial_losses": "chance"},
         "search": "gradnorm", "label": "alpha=1.5, L0=chance", "repeat": None}

    One word per concept: ``training.lr`` is the network's learning rate, ``balancer.lr`` the
    balancer's own (GradNorm's weights', uncertainty's log-variances'). ``search`` names the search,
    ``label`` what it varied in this trial, ``repeat`` which seed of its configuration this is
    (0 .. repeats - 1; None without repeats). None of the three changes what is trained.

    A value's path from the spec to the balancer, alpha for one: ``searches.gn.alpha: {low, high}``
    in the YAML -> :class:`sweeps.searches.GradNormSearch` (``alpha: AlphaRange``) -> Optuna's space
    (``tune.uniform(low, high)``, drawn by the search's own searcher in
    :class:`sweeps.searcher.SweepSearcher`) -> the search's ``trial_config`` (``point_balancer``)
    puts the drawn value at ``balancer.alpha`` of this config -> Tune's param space
    (:meth:`to_dict`) -> the trainable's ``TrialConfig.from_dict`` -> :meth:`build`:
    ``make_balancer("gradnorm", T, model=..., alpha=...)`` -> ``GradNorm.alpha``; MLflow keeps it as the param ``balancer.alpha``. GradNorm's
    weight learning rate goes the same way from ``searches.gn.weight_lr`` to ``balancer.lr``, and
    a search's drawn network ``lr`` (any type; :class:`sweeps.searches.SearchType`) to ``training.lr``.
    """

    balancer: BalancerConfig
    search: str | None = None
    label: str = "-"
    repeat: int | None = Field(None, ge=0)

    def build(self, problem: Problem | None = None, *, model: nn.Module | None = None,
              data: bool = True) -> tuple[Problem, MultiHeadNet, Balancer]:
        """The problem, a fresh model and its balancer; bad names or values raise TrialConfigError.

        ``problem``: one already made from this config (its data loaded once for several trials'
        builds); ``model``: one already built (else ``problem.build_model(training.seed)``).
        ``data=False`` reads no data (the sweep's driver, before Ray starts): GradNorm's
        ``initial_losses: "chance"`` is then only checked to be defined by the problem."""
        try:
            problem = problem if problem is not None else make_problem(self.problem.name, **self.problem.options)
            model = model if model is not None else problem.build_model(seed=self.training.seed)
            options = self.balancer.options
            if "initial_losses" in options:  # "first_step" (the default): dropped; "chance": the problem's
                initial = resolve_initial_losses(options.pop("initial_losses"), problem, read_data=data)
                if initial is not None:
                    options["initial_losses"] = initial
            for key, fill in FROM_PROBLEM.items():  # what the method takes from the problem itself
                if key in METHODS[self.balancer.method] and key not in options:
                    options[key] = fill(problem)
            for key, get in FROM_TRAINING.items():  # ... and from the trial's training
                if key in METHODS[self.balancer.method] and key not in options:
                    options[key] = get(self.training)
            shared_layer = self.problem.shared_layer if self.problem.shared_layer is not None else problem.shared_layer
            balancer = make_balancer(self.balancer.method, problem.num_tasks, model=model,
                                     shared_layer=shared_layer, **options)
        except (TypeError, ValueError) as error:
            raise TrialConfigError(str(error).splitlines()[0]) from None
        return problem, model, balancer

    def start(self, state: dict[str, Any] | None = None, adopt: bool = False) -> tuple[Problem, Training]:
        """Build the problem, model and balancer, and the training run (resumed from ``state``).
        With ``adopt``, ``state`` is another trial's, continued with this config's weights and
        learning rate from ``run.carried_epochs`` and ``run.carried_seconds`` (:meth:`Training.adopt`)."""
        problem, model, balancer = self.build()
        if not adopt or state is None:
            return problem, fit(problem, balancer, model=model, state=state, **self.training.model_dump())
        training = fit(problem, balancer, model=model, **self.training.model_dump())
        training.adopt(state, epoch=self.run.carried_epochs, elapsed_seconds=self.run.carried_seconds)
        return problem, training


# -- reading a serialised config (Tune's trial.config, MLflow's decoded params) ----------------

def search_of(config: Mapping[str, Any] | None) -> str | None:
    """The trial's search (None outside a sweep)."""
    return (config or {}).get("search")


def label_of(config: Mapping[str, Any] | None) -> str:
    """What the trial's search varied in it (``"alpha=1.5"``), ``"-"`` if nothing."""
    return str((config or {}).get("label") or "-")


def method_of(config: Mapping[str, Any] | None) -> str | None:
    return ((config or {}).get("balancer") or {}).get("method")


def epochs_of(config: Mapping[str, Any] | None) -> int | None:
    """The epochs the trial trains (None if the config does not say)."""
    return ((config or {}).get("training") or {}).get("epochs")


def logs_of(config: Mapping[str, Any] | None) -> str | None:
    """Where the trial's log and failure record go (None: its own directory); readable before the
    config is validated, as a trial that fails on its config still records why."""
    logs = ((config or {}).get("run") or {}).get("logs")
    return logs if isinstance(logs, str) and logs else None


def weights_of(config: Mapping[str, Any] | None) -> list[float] | None:
    """A static trial's task weights (None for other methods)."""
    weights = ((config or {}).get("balancer") or {}).get("weights")
    return None if weights is None else list(weights)


def _keys_at(loc: tuple) -> list[str]:
    models = {(): TrialConfig, ("problem",): ProblemConfig, ("training",): TrainingConfig, ("run",): RunConfig}
    model = models.get(tuple(loc))
    return list(model.model_fields) if model is not None else []
