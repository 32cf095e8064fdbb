"""The sweep spec: its pydantic models, and :func:`parse_spec` / :func:`load_spec`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from ..searches import SEARCH_TYPES, Search, SearchType, build_search, tasks_context
from ..validation import NAME_FIX, describe, Fix, fmt, Name, problem, spec_error, SpecError, SpecModel
from .problem import ProblemSpec
from .runtime_env import check_runtime_env, code_on_path
from .storage import StorageSpec
from .training import check_training
from .trials import check_trials, fits
from .yamlfile import read_spec_file

if TYPE_CHECKING:
    from trainables import TrialBase

__all__ = ["ProblemSpec", "Resources", "StorageSpec", "SweepSpec", "load_spec", "parse_spec"]


class Resources(SpecModel):
    """Per-trial resources, and how many trials run at once (``None``: as many as fit)."""

    KEY_NOUN: ClassVar[str] = "resources key"
    SHAPE_FIX: ClassVar[str] = "write it as {cpu: 1, gpu: 0, max_concurrent: 2}"

    cpu: Annotated[float, Fix("give the CPUs per trial, > 0 (fractions allowed, e.g. 0.5)")] = Field(1.0, gt=0)
    gpu: Annotated[float, Fix("give the GPUs per trial, >= 0 (fractions allowed, e.g. 0.25)")] = Field(0.0, ge=0)
    max_concurrent: Annotated[
        int | None, Fix("give how many trials may run at once, a whole number >= 1")
    ] = Field(None, ge=1)

    @model_validator(mode="after")
    def _schedulable(self) -> Resources:
        # Ray accepts fractional resources only below 1 (0.25 GPU), whole numbers above.
        for key, what in (("cpu", "CPUs"), ("gpu", "GPUs")):
            number = float(getattr(self, key))
            if number > 1 and not number.is_integer():
                raise problem(
                    f"{fmt(number)} {what} per trial: a fraction above 1 cannot be scheduled",
                    "give a fraction below 1 or a whole number",
                    (key,),
                )
        return self


class SweepSpec(SpecModel):
    """A validated sweep spec.

    ``training`` holds every TrainConfig field (defaults filled in); ``searches`` the searches in
    spec order; ``source`` is where the spec came from (the path, or what was given to
    :func:`parse_spec`) and ``raw`` a copy of the mapping it was parsed from, so that
    ``parse_spec(spec.raw, spec.source) == spec`` (e.g. when a sweep resumes).

    ``runtime_env`` is Ray's runtime environment for the sweep's job (Ray's keys; see
    :mod:`.runtime_env`), its local paths absolute (in ``raw`` too); its code is importable
    while ``problem`` is validated, so a ``module:attribute`` problem shipped there is found.
    """

    KEY_NOUN: ClassVar[str] = "top-level key"
    SHAPE_FIX: ClassVar[str] = "write a mapping with at least: name, problem, searches"

    name: Annotated[
        Name, Fix(NAME_FIX, missing="add e.g. 'name: demo' (letters, digits, '_' and '-')", noun="sweep name")
    ]
    experiment: str = Field(None, validate_default=True)  # default "gradnorm-tune/<name>"
    # Ray's runtime environment for the sweep's job; before `problem`: its code is importable there
    runtime_env: dict[str, Any] = Field(default_factory=dict)
    problem: Annotated[ProblemSpec, Fix(missing="add e.g. 'problem: {name: multidigits}'")]
    training: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    resources: Resources = Field(default_factory=Resources)
    searches: Annotated[
        list[Search], Fix(missing="add a mapping of searches, e.g. 'searches: {equal: {type: equal}}'")
    ]
    # default: whether a search can recommend static weights
    recommended_static: Annotated[bool, Fix("write true or false")] = Field(None, validate_default=True)
    # where the sweep's directory goes (a path or a URI; --storage overrides it): sweeps.spec.storage
    storage: StorageSpec | None = None

    _source: str = PrivateAttr("<spec>")
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: Callable[[Any], SweepSpec], info: ValidationInfo) -> SweepSpec:
        spec = handler(data)
        if spec is not data:
            spec._raw = copy.deepcopy(data)
            spec._source = (info.context or {}).get("source", "<spec>")
            if spec.runtime_env:  # its paths made absolute: a resume reads back the same code
                spec._raw["runtime_env"] = copy.deepcopy(spec.runtime_env)
        return spec

    @field_validator("name")
    @classmethod
    def _namefits(cls, value: str) -> str:
        return fits("sweep", value)

    @field_validator("runtime_env", mode="plain")
    @classmethod
    def _runtime_env(cls, value: Any, info: ValidationInfo) -> dict[str, Any]:
        return check_runtime_env(value, Path((info.context or {}).get("base_dir") or Path.cwd()))

    @field_validator("problem", mode="wrap")
    @classmethod
    def _problem_with_its_code(cls, value: Any, handler: Callable[[Any], ProblemSpec],
                               info: ValidationInfo) -> ProblemSpec:
        # a module:attribute problem shipped in runtime_env is imported from there for its task names
        with code_on_path(info.data.get("runtime_env")):
            return handler(value)

    @field_validator("experiment", mode="plain")
    @classmethod
    def _experiment(cls, value: Any, info: ValidationInfo) -> str:
        default = f"gradnorm-tune/{info.data.get('name', '<name>')}"
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            raise problem(
                f"expected a non-empty string, got {describe(value)}",
                f"give an MLflow experiment name, or leave it out for {default!r}",
            )
        return fits("experiment", value)

    @field_validator("training", mode="plain")
    @classmethod
    def _training(cls, value: Any) -> dict[str, Any]:
        return check_training(value)

    @field_validator("searches", mode="before")
    @classmethod
    def _searches(cls, value: Any, info: ValidationInfo) -> list[SearchType]:
        if not isinstance(value, dict):
            raise problem(
                f"expected a mapping, got {describe(value)}", "write it as a mapping of search name -> {type: ..., ...}"
            )
        if not value:
            raise problem("no searches given", "add at least one, e.g. 'equal: {type: equal}'")
        spec_problem = info.data.get("problem")
        context = None if spec_problem is None else tasks_context(spec_problem.task_names, spec_problem.name)
        return [build_search(name, data, context) for name, data in value.items()]

    @field_validator("recommended_static", mode="wrap")
    @classmethod
    def _recommended_static(cls, value: Any, handler: Callable[[Any], bool], info: ValidationInfo) -> bool:
        searches = info.data.get("searches")
        can_recommend = any(search.recommends_static for search in searches or ())
        if value is None:
            return can_recommend
        value = handler(value)
        if value and searches is not None and not can_recommend:
            kinds = " or ".join(kind for kind, cls_ in SEARCH_TYPES.items() if cls_.recommends_static)
            raise problem(
                f"is true but the spec has no search of type {kinds} to take the weights from",
                f"add a {kinds} search or set recommended_static: false",
            )
        return value

    @model_validator(mode="after")
    def _gpu_needs_a_gpu_device(self) -> SweepSpec:
        if self.resources.gpu > 0 and self.training["device"] == "cpu":
            raise problem(
                f"asks for {fmt(self.resources.gpu)} GPU per trial but training.device is 'cpu'",
                "set training.device to 'auto' or 'cuda', or resources.gpu to 0",
                ("resources", "gpu"),
            )
        return self

    @model_validator(mode="after")
    def _schedulers_fit(self) -> SweepSpec:
        """A search fits the training's epochs and the trials at once (:meth:`SearchType.sweep_problem`);
        its early stopping fits the epochs and has trials to compare."""
        epochs = int(self.training["epochs"])
        for search in self.searches:
            if (found := search.sweep_problem(self.training, self.resources.max_concurrent)) is not None:
                raise problem(found[0], found[1], ("searches", search.name, *found[2]))
            if search.scheduler is None:
                continue
            at = ("searches", search.name, "scheduler")
            if search.config_count(self.num_tasks) < 2:
                raise problem(
                    "the search trains one configuration: early stopping has none to compare it with",
                    "remove scheduler, or use it on a search of several trials", at)
            found = search.scheduler.problem_with(epochs)
            if found is not None:
                what, fix, field = found
                raise problem(what, fix, (*at, *field))
        return self

    @model_validator(mode="after")
    def _trials_valid(self) -> SweepSpec:
        check_trials(self)
        return self

    def trial_base(self, checkpoint_seconds: float = 0.0, logs: str | None = None) -> TrialBase:
        """What every trial of this sweep shares (:class:`trainables.TrialBase`): the problem, the
        training, and how trials run (``checkpoint_seconds``, the ``logs`` folder); each search adds
        its balancer (``search.trial_config``). A bad value raises :class:`trainables.TrialConfigError`."""
        from trainables import TrialBase

        return TrialBase.from_dict({"problem": self.problem.model_dump(), "training": self.training,
                                    "run": {"checkpoint_seconds": checkpoint_seconds, "logs": logs}})

    def __eq__(self, other: object) -> bool:  # raw is how it was written, not what it says
        if not isinstance(other, SweepSpec):
            return NotImplemented
        return self.source == other.source and all(
            getattr(self, key) == getattr(other, key) for key in type(self).model_fields
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def source(self) -> str:
        return self._source

    @property
    def raw(self) -> dict[str, Any]:
        return self._raw

    @property
    def num_tasks(self) -> int:
        return self.problem.num_tasks

    @property
    def task_names(self) -> list[str]:
        return self.problem.task_names

    @property
    def recommending_search(self) -> SearchType | None:
        """The search whose best trial gives the recommended static weights (the first one
        that can), or ``None``."""
        return next((search for search in self.searches if search.recommends_static), None)

    def search(self, name: str) -> SearchType:
        for search in self.searches:
            if search.name == name:
                return search
        raise KeyError(f"no search named {name!r}; searches: {', '.join(s.name for s in self.searches)}")

    def trial_count(self) -> int:
        """Trials of all searches, plus the recommended static trial (one per repeat of its search)."""
        recommending = self.recommending_search if self.recommended_static else None
        extra = 0 if recommending is None else recommending.repeats
        return sum(search.trial_count(self.num_tasks) for search in self.searches) + extra

    def with_resources(self, **overrides: Any) -> SweepSpec:
        """This spec with ``resources`` keys (cpu, gpu, max_concurrent) overridden, checked as
        the spec's own and kept in ``raw`` (so a resume reads them back)."""
        raw = copy.deepcopy(self.raw)
        raw["resources"] = {**(raw.get("resources") or {}), **overrides}
        return parse_spec(raw, self.source)

    def with_runtime_env(self, **overrides: Any) -> SweepSpec:
        """This spec with ``runtime_env`` keys (e.g. ``working_dir``, as ``--working-dir`` gives it)
        overridden, checked as the spec's own and kept in ``raw`` (so a resume reads them back).
        Relative paths are taken from the working directory."""
        raw = copy.deepcopy(self.raw)
        raw["runtime_env"] = {**(raw.get("runtime_env") or {}), **overrides}
        return parse_spec(raw, self.source, base_dir=Path.cwd())


def parse_spec(data: Any, source: str = "<spec>", base_dir: str | Path | None = None) -> SweepSpec:
    """Validate an already-parsed spec (e.g. ``yaml.safe_load`` output); ``source`` prefixes
    every error message; relative ``runtime_env`` paths are taken from ``base_dir`` (default:
    the working directory). Raises :class:`SpecError`."""
    if data is None:
        raise SpecError(f"{source}: top level: the spec is empty; write a mapping with at least: name, problem, searches")
    try:
        return SweepSpec.model_validate(data, context={"source": source, "base_dir": base_dir})
    except ValidationError as exc:
        raise spec_error(exc, source) from None


#: The specs that come with gradnorm-tune (``demo``, ...): a command names one without its path.
SPECS = Path(__file__).resolve().parents[1] / "specs"


def spec_path(text: str) -> Path:
    """The spec a command names: a path, else one of :data:`SPECS` (with or without ``.yaml``)."""
    path = Path(text)
    for candidate in (SPECS / text, SPECS / f"{text}.yaml"):
        if not path.exists() and candidate.exists():
            return candidate
    return path


def load_spec(path: str | Path, runtime_env: dict[str, Any] | None = None) -> SweepSpec:
    """Read and validate the sweep spec at ``path``; raise :class:`SpecError` if anything is off.

    ``runtime_env`` keys override the spec's (``--working-dir``) before it is validated, so a
    problem shipped there is imported from there; they are kept in ``raw`` for a resume."""
    data = read_spec_file(path)
    if runtime_env and isinstance(data, dict) and isinstance(data.get("runtime_env") or {}, dict):
        data = {**data, "runtime_env": {**(data.get("runtime_env") or {}), **runtime_env}}
    return parse_spec(data, str(path), base_dir=Path(path).resolve().parent)
