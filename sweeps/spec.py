"""Sweep specs: one YAML file describes a problem, its training settings, the resources of one
trial and the searches to run. Loading validates everything and turns every mistake into a
one-line :class:`SpecError` of the form ``"<source>: <field.path>: <what is wrong>; <how to fix>"``.

Pure validation: this module imports neither Ray nor MLflow nor Optuna. It builds the problem
once (through :func:`gradnorm_core.problems.make_problem`) to check its options and to learn its
number of tasks and their names.

The format::

    name: demo                        # required, [A-Za-z0-9_-]+
    experiment: gradnorm-tune-demo    # optional, default "gradnorm-tune/<name>"
    problem:
      name: multidigits               # a key of gradnorm_core.problems.PROBLEMS
      options: {num_train: 2000}      # optional keyword options of that problem
    training: {epochs: 8, batch_size: 64, lr: 0.002, weight_decay: 0.0, seed: 0, device: auto}
    resources: {cpu: 1, gpu: 0, max_concurrent: 2}
    searches:                         # required, name -> search
      gradnorm: {type: gradnorm, search: optuna, alpha: {low: 0.0, high: 3.0}, num_trials: 6}
      alphas: {type: gradnorm, search: grid, alpha: [0, 0.5, 1]}
      static_grid: {type: static_grid, levels: [1, 2, 4], max_trials: 10}
      equal: {type: equal}
      uncertainty: {type: uncertainty, lr: 0.025}
      dwa: {type: dwa, temperature: 2.0}
      fixed: {type: static, weights: [1, 2, 3]}
    recommended_static: true          # optional

Numbers such as ``2e-3`` are read as floats (YAML 1.2 style), and a key given twice in one
mapping is an error rather than silently overriding the first.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import itertools
import math
import random
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "SEARCH_TYPES",
    "ProblemSpec",
    "Resources",
    "SearchSpec",
    "SpecError",
    "SweepSpec",
    "load_spec",
    "parse_spec",
    "static_grid_points",
]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")

TOP_LEVEL_KEYS = (
    "name",
    "experiment",
    "problem",
    "training",
    "resources",
    "searches",
    "recommended_static",
)
REQUIRED_TOP_LEVEL = ("name", "problem", "searches")
PROBLEM_KEYS = ("name", "options")
RESOURCE_KEYS = ("cpu", "gpu", "max_concurrent")

# search type -> the options it accepts besides "type" (required ones are checked per type)
SEARCH_TYPES: dict[str, tuple[str, ...]] = {
    "gradnorm": ("search", "alpha", "num_trials", "weight_lr", "optimizer"),
    "static_grid": ("levels", "max_trials"),
    "equal": (),
    "uncertainty": ("lr", "optimizer"),
    "dwa": ("temperature",),
    "static": ("weights",),
}

# search type -> the gradnorm_core balancer method its trials use
SEARCH_METHODS: dict[str, str] = {
    "gradnorm": "gradnorm",
    "static_grid": "static",
    "equal": "equal",
    "uncertainty": "uncertainty",
    "dwa": "dwa",
    "static": "static",
}

OPTIMIZERS = ("adam", "sgd")
GRADNORM_SEARCHES = ("optuna", "grid")


class SpecError(ValueError):
    """A bad sweep spec; the message is one line naming the file, the field and the fix."""


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class ProblemSpec:
    """The problem to train: a key of ``PROBLEMS`` and its keyword options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resources:
    """Per-trial resources and how many trials run at once (``None``: as many as fit)."""

    cpu: float = 1.0
    gpu: float = 0.0
    max_concurrent: int | None = None


@dataclass(frozen=True)
class SearchSpec:
    """One search of a sweep.

    ``type`` is a key of :data:`SEARCH_TYPES`; ``options`` holds its validated options:

    * ``gradnorm``: ``search`` (``"optuna"`` or ``"grid"``); ``alpha`` (``{"low": float,
      "high": float}`` for optuna, a list of floats for grid); ``num_trials`` (int; for grid the
      number of alphas); optional ``weight_lr`` (float) and ``optimizer`` (``"adam"``/``"sgd"``).
    * ``static_grid``: ``levels`` (a list of floats shared by all tasks, or one list per task);
      ``max_trials`` (int or ``None``).
    * ``equal``: nothing. ``uncertainty``: optional ``lr``, ``optimizer``. ``dwa``: optional
      ``temperature``. ``static``: ``weights`` (one float per task).
    """

    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """The :data:`gradnorm_core.balancers.METHODS` name its trials use."""
        return SEARCH_METHODS[self.type]

    def balancer_options(self) -> dict[str, Any]:
        """The fixed keyword options for ``make_balancer(self.method, ...)``.

        The searched values are not included: ``alpha`` (gradnorm) and the weights of each
        static_grid point are per trial; ``static`` gives its ``weights`` here.
        """
        if self.type == "gradnorm":
            out = {}
            if "weight_lr" in self.options:
                out["lr"] = self.options["weight_lr"]
            if "optimizer" in self.options:
                out["optimizer"] = self.options["optimizer"]
            return out
        if self.type == "static_grid":
            return {}
        return dict(self.options)

    def levels_per_task(self, num_tasks: int) -> list[list[float]]:
        """static_grid only: one list of weight levels per task."""
        self._need("static_grid", "levels_per_task")
        levels = self.options["levels"]
        if levels and isinstance(levels[0], list):
            if len(levels) != num_tasks:
                raise ValueError(
                    f"search {self.name!r} has {len(levels)} level lists but num_tasks={num_tasks}"
                )
            return [list(task_levels) for task_levels in levels]
        return [list(levels) for _ in range(num_tasks)]

    def grid_size(self, num_tasks: int) -> int:
        """static_grid only: the number of points of the full grid (product of level counts)."""
        return math.prod(len(task_levels) for task_levels in self.levels_per_task(num_tasks))

    def trial_count(self, num_tasks: int) -> int:
        """How many trials this search runs (not counting the recommended static trial)."""
        if self.type == "gradnorm":
            return int(self.options["num_trials"])
        if self.type == "static_grid":
            cap = self.options.get("max_trials")
            size = self.grid_size(num_tasks)
            return size if cap is None else min(size, cap)
        return 1

    def _need(self, kind: str, what: str) -> None:
        if self.type != kind:
            raise ValueError(f"{what} is for {kind!r} searches; search {self.name!r} is {self.type!r}")


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec. ``training`` holds every :class:`TrainConfig` field (defaults
    filled in); ``source`` is where it came from (the path, or what was given to
    :func:`parse_spec`); ``raw`` is a copy of the mapping it was parsed from, so that
    ``parse_spec(spec.raw, spec.source)`` rebuilds it (e.g. when a sweep resumes)."""

    name: str
    experiment: str
    problem: ProblemSpec
    training: dict[str, Any]
    resources: Resources
    searches: list[SearchSpec]
    recommended_static: bool
    num_tasks: int
    task_names: list[str]
    source: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def search(self, name: str) -> SearchSpec:
        for search in self.searches:
            if search.name == name:
                return search
        raise KeyError(f"no search named {name!r}; searches: {', '.join(s.name for s in self.searches)}")

    def trial_count(self) -> int:
        """Trials of all searches, plus one recommended static trial per gradnorm search."""
        total = sum(search.trial_count(self.num_tasks) for search in self.searches)
        if self.recommended_static:
            total += sum(1 for search in self.searches if search.type == "gradnorm")
        return total


def static_grid_points(
    search: SearchSpec, num_tasks: int, seed: int
) -> tuple[list[list[float]], int, bool]:
    """The weight vectors a static_grid search runs: ``(points, full grid size, sampled?)``.

    Without ``max_trials``, or with ``max_trials >= size``, all points in
    ``itertools.product`` order. Otherwise ``max_trials`` distinct points drawn without
    replacement by ``random.Random(seed)``, listed in the grid's product order. The full grid is
    never built when sampling, so large grids are fine.
    """
    levels = search.levels_per_task(num_tasks)
    size = math.prod(len(task_levels) for task_levels in levels)
    cap = search.options.get("max_trials")
    if cap is None or cap >= size:
        return [list(point) for point in itertools.product(*levels)], size, False
    indices = sorted(random.Random(seed).sample(range(size), cap))
    return [_grid_point(levels, index) for index in indices], size, True


def _grid_point(levels: list[list[float]], index: int) -> list[float]:
    """The ``index``-th point of ``itertools.product(*levels)`` (last task varies fastest)."""
    point = []
    for task_levels in reversed(levels):
        index, digit = divmod(index, len(task_levels))
        point.append(task_levels[digit])
    return point[::-1]


# --------------------------------------------------------------------------------------------
# YAML


@functools.lru_cache(maxsize=1)
def _yaml_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that reads 1e-3 as a float and refuses duplicate keys."""

        def construct_mapping(self, node, deep=False):  # type: ignore[override]
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        duplicate = key in seen
                    except TypeError:  # unhashable: let the base class report it
                        continue
                    if duplicate:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r}", key_node.start_mark
                        )
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    Loader.yaml_implicit_resolvers = {
        key: list(value) for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    return Loader


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate the sweep spec at ``path``; raise :class:`SpecError` if anything is off."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"{source}: file: not found; check the path (specs ship in sweeps/specs/)"
        ) from None
    except IsADirectoryError:
        raise SpecError(f"{source}: file: is a directory; give the path of a .yaml spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError(
            f"{source}: file: cannot be read ({_one_line(reason)}); "
            "check its permissions and that it is a UTF-8 text file"
        ) from None
    return parse_spec(_parse_yaml(text, source), source)


def _parse_yaml(text: str, source: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        if (exc.problem or "").startswith("duplicate key"):
            raise SpecError(
                f"{source}: {where}: {_one_line(what)} in a mapping; give each key once"
            ) from None
        raise SpecError(
            f"{source}: {where}: YAML syntax error: {_one_line(what)}; "
            "fix the YAML there (indentation, ':' after keys, matching quotes and brackets)"
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: file: YAML error: {_one_line(str(exc))}; fix the YAML") from None


# --------------------------------------------------------------------------------------------
# Validation


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, what: str, fix: str) -> SpecError:
        return SpecError(f"{self.source}: {path}: {_one_line(what)}; {_one_line(fix)}")

    # -- shapes ----------------------------------------------------------------------------

    def mapping(self, value: Any, path: str, example: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_describe(value)}", f"write it as {example}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(
                    path,
                    f"key {key!r} is a {type(key).__name__}, not a name",
                    "quote it or use a plain name (YAML reads yes/no/on/off as booleans)",
                )
        return value

    def known_keys(
        self, value: dict[str, Any], path: str, accepted: tuple[str, ...], what: str, where: str = ""
    ) -> None:
        for key in value:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                listed = ", ".join(accepted) if accepted else "none"
                raise self.fail(
                    _join(path, key),
                    f"unknown {what} {key!r}{' ' + where if where else ''}",
                    f"{hint}accepted: {listed}",
                )

    def required(self, value: dict[str, Any], path: str, key: str, fix: str) -> Any:
        if key not in value or value[key] is None:
            raise self.fail(_join(path, key), "missing required field", fix)
        return value[key]

    # -- scalars ---------------------------------------------------------------------------

    def number(self, value: Any, path: str, *, minimum: float | None = None, strict: bool = False,
               fix: str = "give a number") -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"expected a number, got {_describe(value)}", fix)
        number = float(value)
        if not math.isfinite(number):
            raise self.fail(path, f"expected a finite number, got {value!r}", fix)
        if minimum is not None:
            if strict and not number > minimum:
                raise self.fail(path, f"must be > {_fmt(minimum)}, got {value!r}", fix)
            if not strict and number < minimum:
                raise self.fail(path, f"must be >= {_fmt(minimum)}, got {value!r}", fix)
        return number

    def integer(self, value: Any, path: str, *, minimum: int, fix: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise self.fail(path, f"expected an integer, got {_describe(value)}", fix)
        if value < minimum:
            raise self.fail(path, f"must be an integer >= {minimum}, got {value!r}", fix)
        return int(value)

    def name(self, value: Any, path: str, what: str) -> str:
        if not isinstance(value, str) or not NAME_PATTERN.match(value):
            raise self.fail(
                path,
                f"invalid {what} {value!r}",
                "use only letters, digits, '_' and '-' (it names directories and runs)",
            )
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...], what: str) -> str:
        if not isinstance(value, str) or value not in choices:
            close = difflib.get_close_matches(value, choices, n=1) if isinstance(value, str) else []
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.fail(path, f"unknown {what} {value!r}", f"{hint}choose one of: {', '.join(choices)}")
        return value

    def number_list(self, value: Any, path: str, *, minimum: float, fix: str) -> list[float]:
        if not isinstance(value, list) or not value:
            raise self.fail(path, f"expected a non-empty list of numbers, got {_describe(value)}", fix)
        return [self.number(item, f"{path}[{i}]", minimum=minimum, fix=fix) for i, item in enumerate(value)]

    def distinct(self, values: list[float], path: str, fix: str) -> None:
        seen: set[float] = set()
        for i, item in enumerate(values):
            if item in seen:
                raise self.fail(f"{path}[{i}]", f"{_fmt(item)} is listed twice", fix)
            seen.add(item)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    kind = {dict: "mapping", list: "list", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text}"


def _fmt(number: float) -> str:
    return f"{number:g}"


def parse_spec(data: Any, source: str = "<spec>") -> SweepSpec:
    """Validate an already-parsed spec (e.g. ``yaml.safe_load`` output); ``source`` prefixes
    every error message. Raises :class:`SpecError`."""
    check = _Checker(source)
    if data is None:
        raise check.fail(
            "top level", "the spec is empty", "write a mapping with at least: name, problem, searches"
        )
    if not isinstance(data, dict):
        raise check.fail(
            "top level",
            f"expected a mapping, got {_describe(data)}",
            "write a mapping with at least: name, problem, searches",
        )
    check.mapping(data, "top level", "a mapping")
    check.known_keys(data, "", TOP_LEVEL_KEYS, "top-level key")
    for key in REQUIRED_TOP_LEVEL:
        check.required(data, "", key, _REQUIRED_FIX[key])

    name = check.name(data["name"], "name", "sweep name")
    experiment = data.get("experiment")
    if experiment is None:
        experiment = f"gradnorm-tune/{name}"
    elif not isinstance(experiment, str) or not experiment.strip():
        raise check.fail(
            "experiment",
            f"expected a non-empty string, got {_describe(experiment)}",
            f"give an MLflow experiment name, or leave it out for 'gradnorm-tune/{name}'",
        )

    training = _parse_training(check, data.get("training"))
    problem, num_tasks, task_names = _parse_problem(check, data["problem"])
    resources = _parse_resources(check, data.get("resources"), training["device"])
    searches = _parse_searches(check, data["searches"], problem.name, num_tasks)

    has_gradnorm = any(search.type == "gradnorm" for search in searches)
    recommended = data.get("recommended_static")
    if recommended is None:
        recommended = has_gradnorm
    elif not isinstance(recommended, bool):
        raise check.fail(
            "recommended_static", f"expected true or false, got {_describe(recommended)}", "write true or false"
        )
    elif recommended and not has_gradnorm:
        raise check.fail(
            "recommended_static",
            "is true but the spec has no search of type gradnorm to take the weights from",
            "add a gradnorm search or set recommended_static: false",
        )

    return SweepSpec(
        name=name,
        experiment=experiment,
        problem=problem,
        training=training,
        resources=resources,
        searches=searches,
        recommended_static=recommended,
        num_tasks=num_tasks,
        task_names=list(task_names),
        source=source,
        raw=copy.deepcopy(data),
    )


_REQUIRED_FIX = {
    "name": "add e.g. 'name: demo' (letters, digits, '_' and '-')",
    "problem": "add e.g. 'problem: {name: multidigits}'",
    "searches": "add a mapping of searches, e.g. 'searches: {equal: {type: equal}}'",
}


def _parse_training(check: _Checker, value: Any) -> dict[str, Any]:
    from gradnorm_core.training import TrainConfig

    accepted = tuple(f.name for f in fields(TrainConfig))
    if value is None:
        value = {}
    value = check.mapping(value, "training", "e.g. {epochs: 8, batch_size: 64, lr: 0.002}")
    check.known_keys(value, "training", accepted, "training key")
    options = dict(value)
    for key in ("lr", "weight_decay"):
        if isinstance(options.get(key), bool):
            raise check.fail(f"training.{key}", f"expected a number, got {options[key]!r}", _TRAINING_FIX[key])
    device = options.get("device", "auto")
    _check_device(check, device)
    # The device is checked for its form only: the machine reading the spec need not be the one
    # with the GPUs (a Ray cluster), so TrainConfig's availability check is not applied here.
    options["device"] = "cpu"
    try:
        config = TrainConfig(**options)
    except (TypeError, ValueError) as exc:
        message = _one_line(str(exc))
        key = next((k for k in accepted if message.startswith(f"{k} ")), None)
        path = f"training.{key}" if key else "training"
        raise check.fail(path, message, _TRAINING_FIX.get(key or "", "fix the value")) from None
    result = {f.name: getattr(config, f.name) for f in fields(TrainConfig)}
    result["device"] = device
    return result


_TRAINING_FIX = {
    "epochs": "give a whole number of epochs, e.g. 8",
    "batch_size": "give a whole batch size, e.g. 64",
    "lr": "give a positive learning rate, e.g. 0.002",
    "weight_decay": "give 0 or a positive number, e.g. 0.0001",
    "seed": "give a whole number >= 0, e.g. 0",
}


def _check_device(check: _Checker, device: Any) -> None:
    fix = "use 'auto', 'cpu' or 'cuda[:N]'"
    if not isinstance(device, str):
        raise check.fail("training.device", f"expected a string, got {_describe(device)}", fix)
    if device == "auto":
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise check.fail("training.device", f"unknown device {device!r}", fix) from None


def _parse_problem(check: _Checker, value: Any) -> tuple[ProblemSpec, int, tuple[str, ...]]:
    from gradnorm_core.problems import PROBLEMS, make_problem

    if isinstance(value, str):  # shorthand: "problem: toy_t2"
        value = {"name": value}
    value = check.mapping(value, "problem", "{name: multidigits, options: {num_train: 2000}}")
    check.known_keys(value, "problem", PROBLEM_KEYS, "problem key")
    name = check.required(value, "problem", "name", f"give one of: {', '.join(PROBLEMS)}")
    check.choice(name, "problem.name", tuple(PROBLEMS), "problem")
    options = value.get("options")
    if options is None:
        options = {}
    options = dict(check.mapping(options, "problem.options", "a mapping, e.g. {num_train: 2000}"))
    accepted = tuple(inspect.signature(PROBLEMS[name]).parameters)
    check.known_keys(options, "problem.options", accepted, "option", f"for problem {name!r}")
    for key in accepted:
        parameter = inspect.signature(PROBLEMS[name]).parameters[key]
        if parameter.default is inspect.Parameter.empty and key not in options:
            raise check.fail(
                f"problem.options.{key}",
                f"problem {name!r} needs option {key!r}",
                f"add it under problem.options (accepted options: {', '.join(accepted)})",
            )
    try:
        problem = make_problem(name, **options)
    except (TypeError, ValueError) as exc:
        message = _one_line(str(exc))
        key = next((k for k in options if message.startswith((f"{k} ", f"{k}["))), None)
        path = f"problem.options.{key}" if key else "problem.options"
        raise check.fail(
            path,
            f"bad option for problem {name!r}: {message}",
            f"fix the value (accepted options: {', '.join(accepted)})",
        ) from None
    return ProblemSpec(name=name, options=options), problem.num_tasks, tuple(problem.task_names)


def _parse_resources(check: _Checker, value: Any, device: str) -> Resources:
    if value is None:
        return Resources()
    value = check.mapping(value, "resources", "{cpu: 1, gpu: 0, max_concurrent: 2}")
    check.known_keys(value, "resources", RESOURCE_KEYS, "resources key")
    cpu = 1.0
    gpu = 0.0
    if value.get("cpu") is not None:
        cpu = check.number(
            value["cpu"], "resources.cpu", minimum=0, strict=True,
            fix="give the CPUs per trial, > 0 (fractions allowed, e.g. 0.5)",
        )
        _check_fraction(check, cpu, "resources.cpu", "CPUs")
    if value.get("gpu") is not None:
        gpu = check.number(
            value["gpu"], "resources.gpu", minimum=0,
            fix="give the GPUs per trial, >= 0 (fractions allowed, e.g. 0.25)",
        )
        _check_fraction(check, gpu, "resources.gpu", "GPUs")
        if gpu > 0 and device == "cpu":
            raise check.fail(
                "resources.gpu",
                f"asks for {_fmt(gpu)} GPU per trial but training.device is 'cpu'",
                "set training.device to 'auto' or 'cuda', or resources.gpu to 0",
            )
    max_concurrent = None
    if value.get("max_concurrent") is not None:
        max_concurrent = check.integer(
            value["max_concurrent"], "resources.max_concurrent", minimum=1,
            fix="give how many trials may run at once, a whole number >= 1",
        )
    return Resources(cpu=cpu, gpu=gpu, max_concurrent=max_concurrent)


def _check_fraction(check: _Checker, number: float, path: str, what: str) -> None:
    # Ray accepts fractional resources only below 1 (0.25 GPU), whole numbers above.
    if number > 1 and not number.is_integer():
        raise check.fail(
            path,
            f"{_fmt(number)} {what} per trial: a fraction above 1 cannot be scheduled",
            "give a fraction below 1 or a whole number",
        )


def _parse_searches(check: _Checker, value: Any, problem: str, num_tasks: int) -> list[SearchSpec]:
    value = check.mapping(value, "searches", "a mapping of search name -> {type: ..., ...}")
    if not value:
        raise check.fail(
            "searches", "no searches given", "add at least one, e.g. 'equal: {type: equal}'"
        )
    out = []
    for name, search in value.items():
        path = f"searches.{name}"
        check.name(name, path, "search name")
        if isinstance(search, str):  # shorthand: "equal: equal"
            search = {"type": search}
        search = check.mapping(search, path, "{type: gradnorm, ...}")
        kind = check.required(search, path, "type", f"give one of: {', '.join(SEARCH_TYPES)}")
        check.choice(kind, f"{path}.type", tuple(SEARCH_TYPES), "search type")
        options = {k: v for k, v in search.items() if k != "type"}
        check.known_keys(options, path, SEARCH_TYPES[kind], "option", f"for search type {kind!r}")
        parsed = _SEARCH_PARSERS[kind](check, path, options, problem, num_tasks)
        out.append(SearchSpec(name=name, type=kind, options=parsed))
    return out


def _parse_gradnorm(check: _Checker, path: str, options: dict, problem: str, num_tasks: int) -> dict:
    alpha = check.required(
        options, path, "alpha",
        "give a range {low: 0.0, high: 3.0} (search: optuna) or a list of alphas (search: grid)",
    )
    search = options.get("search")
    if search is None:
        search = "grid" if isinstance(alpha, list) else "optuna"
    check.choice(search, f"{path}.search", GRADNORM_SEARCHES, "gradnorm search")
    out: dict[str, Any] = {"search": search}
    alpha_path = f"{path}.alpha"
    if search == "optuna":
        alpha = check.mapping(alpha, alpha_path, "a range {low: 0.0, high: 3.0} (for search: optuna)")
        check.known_keys(alpha, alpha_path, ("low", "high"), "alpha range key")
        fix = "alpha must be a range {low, high} with 0 <= low < high"
        low = check.number(
            check.required(alpha, alpha_path, "low", "give e.g. 'low: 0.0'"),
            f"{alpha_path}.low", minimum=0, fix=fix,
        )
        high = check.number(
            check.required(alpha, alpha_path, "high", "give e.g. 'high: 3.0'"),
            f"{alpha_path}.high", minimum=0, fix=fix,
        )
        if not low < high:
            raise check.fail(
                alpha_path, f"low ({_fmt(low)}) must be below high ({_fmt(high)})", "swap them or widen the range"
            )
        out["alpha"] = {"low": low, "high": high}
        num_trials = check.required(
            options, path, "num_trials", "give how many alphas Optuna tries, e.g. 'num_trials: 8'"
        )
        out["num_trials"] = check.integer(
            num_trials, f"{path}.num_trials", minimum=1, fix="give a whole number of trials >= 1"
        )
    else:
        fix = "for search: grid give a non-empty list of alphas >= 0, e.g. [0, 0.5, 1, 1.5]"
        if isinstance(alpha, dict):
            raise check.fail(alpha_path, "a range is for search: optuna", fix)
        alphas = check.number_list(alpha, alpha_path, minimum=0, fix=fix)
        check.distinct(alphas, alpha_path, "list each alpha once")
        if "num_trials" in options:
            raise check.fail(
                f"{path}.num_trials",
                "is for search: optuna; a grid runs one trial per alpha",
                "remove it, or use search: optuna with an alpha range",
            )
        out["alpha"] = alphas
        out["num_trials"] = len(alphas)
    out.update(_optimizer_options(check, path, options, "weight_lr", "GradNorm's weight learning rate"))
    return out


def _parse_static_grid(check: _Checker, path: str, options: dict, problem: str, num_tasks: int) -> dict:
    levels_path = f"{path}.levels"
    shape_fix = "give one list of weight levels per task or a single list for all tasks"
    levels = check.required(options, path, "levels", f"{shape_fix}, e.g. [1, 2, 4]")
    if not isinstance(levels, list) or not levels:
        raise check.fail(levels_path, f"expected a non-empty list, got {_describe(levels)}", shape_fix)
    level_fix = "weight levels are numbers >= 0, e.g. [0.5, 1, 2]"
    if any(isinstance(item, list) for item in levels):
        if len(levels) != num_tasks:
            raise check.fail(
                levels_path,
                f"expected {num_tasks} lists (one per task of problem {problem!r}), got {len(levels)}",
                shape_fix,
            )
        per_task = []
        for i, task_levels in enumerate(levels):
            item_path = f"{levels_path}[{i}]"
            if not isinstance(task_levels, list):
                raise check.fail(
                    item_path, f"expected a list of levels, got {_describe(task_levels)}",
                    "make every entry a list (a task with one fixed weight: [1])",
                )
            values = check.number_list(task_levels, item_path, minimum=0, fix=level_fix)
            check.distinct(values, item_path, "list each level once")
            per_task.append(values)
        normalized: list = per_task
        has_zero = all(0.0 in task_levels for task_levels in per_task)
    else:
        normalized = check.number_list(levels, levels_path, minimum=0, fix=level_fix)
        check.distinct(normalized, levels_path, "list each level once")
        has_zero = 0.0 in normalized
    if has_zero:
        raise check.fail(
            levels_path,
            "every task's levels include 0, so the grid would contain the all-zero weights (which train nothing)",
            "drop 0 from the levels of at least one task",
        )
    out: dict[str, Any] = {"levels": normalized, "max_trials": None}
    if options.get("max_trials") is not None:
        out["max_trials"] = check.integer(
            options["max_trials"], f"{path}.max_trials", minimum=1,
            fix="give the most grid points to run, a whole number >= 1 (or leave it out for the full grid)",
        )
    return out


def _parse_equal(check: _Checker, path: str, options: dict, problem: str, num_tasks: int) -> dict:
    return {}


def _parse_uncertainty(check: _Checker, path: str, options: dict, problem: str, num_tasks: int) -> dict:
    return _optimizer_options(check, path, options, "lr", "the log-variances' learning rate")


def _optimizer_options(check: _Checker, path: str, options: dict, lr_key: str, what: str) -> dict:
    """The optional learning rate and optimizer of a method's own parameters."""
    out: dict[str, Any] = {}
    if options.get(lr_key) is not None:
        out[lr_key] = check.number(
            options[lr_key], f"{path}.{lr_key}", minimum=0, strict=True, fix=f"give {what}, > 0 (e.g. 0.025)",
        )
    if options.get("optimizer") is not None:
        out["optimizer"] = check.choice(options["optimizer"], f"{path}.optimizer", OPTIMIZERS, "optimizer")
    return out


def _parse_dwa(check: _Checker, path: str, options: dict, problem: str, num_tasks: int) -> dict:
    out: dict[str, Any] = {}
    if options.get("temperature") is not None:
        out["temperature"] = check.number(
            options["temperature"], f"{path}.temperature", minimum=0, strict=True,
            fix="give DWA's temperature, > 0 (e.g. 2.0)",
        )
    return out


def _parse_static(check: _Checker, path: str, options: dict, problem: str, num_tasks: int) -> dict:
    weights_path = f"{path}.weights"
    fix = f"give {num_tasks} weights >= 0 (one per task of problem {problem!r}), at least one > 0"
    weights = check.required(options, path, "weights", fix)
    values = check.number_list(weights, weights_path, minimum=0, fix=fix)
    if len(values) != num_tasks:
        raise check.fail(
            weights_path,
            f"expected {num_tasks} weights (one per task of problem {problem!r}), got {len(values)}",
            fix,
        )
    if not any(v > 0 for v in values):
        raise check.fail(weights_path, "all weights are 0, which trains nothing", "make at least one weight > 0")
    return {"weights": values}


_SEARCH_PARSERS = {
    "gradnorm": _parse_gradnorm,
    "static_grid": _parse_static_grid,
    "equal": _parse_equal,
    "uncertainty": _parse_uncertainty,
    "dwa": _parse_dwa,
    "static": _parse_static,
}
