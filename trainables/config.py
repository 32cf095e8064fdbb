"""A trial's configuration: what Ray Tune passes to the trainable, checked before any compute."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from gradnorm_core import METHODS, Balancer, MultiHeadNet, Problem, TrainConfig, Training, fit, make_balancer, make_problem
from gradnorm_core import resolve_initial_losses


class TrialConfigError(ValueError):
    """A trial's config is invalid; the message is one line naming the key and the fix."""


TRAINING_KEYS = tuple(f.name for f in fields(TrainConfig))
# keys a search adds for its own bookkeeping, which the trial ignores: the search's name, and what
# the search varied in this trial ("alpha=0.5"), for tables and the run's "varied" param
# and, for a search with repeats, which seed of its configuration this trial is (0 .. repeats - 1)
REPEAT = "repeat"
LABEL_KEYS = ("search", "label", REPEAT)
# how the trial runs, not what it trains: the trainable reads them, the training never sees them
CHECKPOINT_SECONDS = "checkpoint_seconds"  # checkpoint at most this often (and at the last epoch)
LOGS = "logs"  # where the trial's log and failure record go: the sweep's logs folder (a path or URI)
RUN_KEYS = (CHECKPOINT_SECONDS, LOGS)


@dataclass(frozen=True)
class TrialConfig:
    """Problem, method and training settings of one trial.

    ``method_options`` go to :func:`gradnorm_core.make_balancer` (``lr``, ``optimizer``,
    ``temperature``, ...); ``alpha`` and ``weights`` are separate keys because searches vary them.
    GradNorm's ``initial_losses`` may be ``"first_step"`` (the default: its first step's losses),
    ``"chance"`` (resolved in :meth:`build` to ``problem.chance_losses()``) or T numbers.
    ``shared_layer`` is the module path of GradNorm's W in the model (``model.get_submodule``);
    None takes the problem's ``shared_layer`` (itself None: the model's ``last_shared_layer``).
    """

    problem: str
    method: str
    problem_options: dict[str, Any] = field(default_factory=dict)
    alpha: float | None = None
    weights: tuple[float, ...] | None = None
    method_options: dict[str, Any] = field(default_factory=dict)
    training: TrainConfig = field(default_factory=TrainConfig)
    shared_layer: str | None = None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "TrialConfig":
        known = {"problem", "problem_options", "method", "alpha", "weights", "method_options",
                 "shared_layer", *TRAINING_KEYS, *LABEL_KEYS, *RUN_KEYS}
        unknown = sorted(set(config) - known)
        if unknown:
            raise TrialConfigError(
                f"trial config has unknown key {unknown[0]!r}; accepted keys: {', '.join(sorted(known))}"
            )
        for key in ("problem", "method"):
            if not isinstance(config.get(key), str):
                raise TrialConfigError(f"trial config needs {key!r} as a string, got {config.get(key)!r}")
        method = config["method"]
        if method not in METHODS:
            raise TrialConfigError(f"method: unknown method {method!r}; choose one of: {', '.join(METHODS)}")
        every = config.get(CHECKPOINT_SECONDS, 0.0)
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not math.isfinite(every) or every < 0:
            raise TrialConfigError(f"{CHECKPOINT_SECONDS}: must be a number of seconds >= 0 (0: every epoch), "
                                   f"got {every!r}")
        alpha = config.get("alpha")
        if method == "gradnorm":
            if alpha is None:
                raise TrialConfigError("alpha: method 'gradnorm' needs alpha, a number >= 0")
            if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
                raise TrialConfigError(f"alpha: must be a finite number >= 0, got {alpha!r}")
        weights = config.get("weights")
        if method == "static":
            if not isinstance(weights, (list, tuple)) or not weights:
                raise TrialConfigError(f"weights: method 'static' needs a list of weights, got {weights!r}")
            weights = tuple(weights)
        shared_layer = config.get("shared_layer")
        if shared_layer is not None and (not isinstance(shared_layer, str) or not shared_layer):
            raise TrialConfigError(f"shared_layer: must be a module path such as 'trunk.2', got {shared_layer!r}")
        try:
            training = TrainConfig(**{key: config[key] for key in TRAINING_KEYS if key in config})
        except ValueError as error:
            raise TrialConfigError(str(error)) from None
        return cls(
            problem=config["problem"],
            method=method,
            problem_options=dict(config.get("problem_options") or {}),
            alpha=None if alpha is None else float(alpha),
            weights=weights,
            method_options=dict(config.get("method_options") or {}),
            training=training,
            shared_layer=shared_layer,
        )

    def build(self) -> tuple[Problem, MultiHeadNet, Balancer]:
        """The problem, a fresh model and its balancer; bad names or values raise TrialConfigError."""
        try:
            problem = make_problem(self.problem, **self.problem_options)
            model = problem.build_model(seed=self.training.seed)
            options = dict(self.method_options)
            if self.method == "gradnorm":
                options["alpha"] = self.alpha
                if "initial_losses" in options:
                    # "first_step" (the default): dropped; "chance": the problem's chance losses
                    initial = resolve_initial_losses(options.pop("initial_losses"), problem)
                    if initial is not None:
                        options["initial_losses"] = initial
            if self.method == "static":
                options["weights"] = list(self.weights or ())
            if self.method == "uncertainty" and "kinds" not in options:  # Kendall et al.'s factor per kind
                options["kinds"] = list(problem.task_kinds())
            shared_layer = self.shared_layer if self.shared_layer is not None else problem.shared_layer
            balancer = make_balancer(self.method, problem.num_tasks, model=model, shared_layer=shared_layer,
                                     **options)
        except (TypeError, ValueError) as error:
            raise TrialConfigError(str(error).splitlines()[0]) from None
        return problem, model, balancer

    def start(self, state: dict[str, Any] | None = None) -> tuple[Problem, Training]:
        """Build the problem, model and balancer, and the training run (resumed from ``state``)."""
        problem, model, balancer = self.build()
        return problem, fit(problem, balancer, model=model, state=state, **asdict(self.training))


def search_of(config: dict[str, Any]) -> str | None:
    """The search a serialised trial config belongs to."""
    return config.get("search")


def epochs_of(config: dict[str, Any]) -> int | None:
    """The epochs a serialised trial config trains."""
    return config.get("epochs")


def label_of(config: dict[str, Any]) -> str:
    """What a serialised trial config's search varied (``alpha=1.5``), ``-`` when nothing."""
    return str(config.get("label", "-"))


def weights_of(config: dict[str, Any]) -> list[float] | None:
    """The static weights a serialised trial config trains with, if any."""
    weights = config.get("weights")
    return None if weights is None else list(weights)
