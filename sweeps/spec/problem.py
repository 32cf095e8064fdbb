"""The ``problem`` of a spec: a registered problem and its options. Validation checks the options
and learns the task names through :func:`gradnorm_core.problems.problem_tasks`, which loads no
data (the driver never does; trials do, on their workers)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import Field, PrivateAttr, field_validator, model_validator

from ..validation import describe, did_you_mean, Fix, one_line, problem, SpecModel

__all__ = ["ProblemSpec"]


def _problem_names(context: Mapping[str, Any] | None = None) -> str:
    """The fix of a missing or bad problem name."""
    from gradnorm_core import PROBLEMS

    return f"give one of: {', '.join(PROBLEMS)}, or module:attribute of your own Problem"


class ProblemSpec(SpecModel):
    """The problem to train: ``name`` (a key of ``gradnorm_core.problems.PROBLEMS``, an entry point
    of the group ``gradnorm_tune.problems``, or ``module:attribute`` of a user's Problem subclass or
    factory) and its keyword ``options``. ``problem: toy_t2`` is short for ``problem: {name: toy_t2}``."""

    KEY_NOUN: ClassVar[str] = "problem key"
    SHAPE_FIX: ClassVar[str] = "write it as {name: multidigits, options: {num_train: 2000}}"

    name: Annotated[str, Fix(_problem_names)]
    options: dict[str, Any] = Field(default_factory=dict)
    #: GradNorm's W: a module path in the problem's model (``backbone.4``); None: the problem's own
    shared_layer: Annotated[str | None, Fix("give a module path in the model, e.g. 'trunk.2'")] = None

    _task_names: tuple[str, ...] = PrivateAttr(default=())

    @property
    def task_names(self) -> list[str]:
        return list(self._task_names)

    @property
    def num_tasks(self) -> int:
        return len(self._task_names)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("options", mode="plain")
    @classmethod
    def _options(cls, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise problem(f"expected a mapping, got {describe(value)}", "write it as a mapping, e.g. {num_train: 2000}")
        from trainables import ProblemConfig, TrialConfigError, name_problem

        for key in value:
            if not isinstance(key, str):
                raise problem(
                    f"key {key!r} is a {type(key).__name__}, not a name",
                    "quote it or use a plain name (YAML reads yes/no/on/off as booleans)",
                )
            found = name_problem("problem option", key) if "." not in key else None  # (a dotted key: JSON)
            if found is not None:
                raise problem(*found, (key,))
        try:  # the values are the trials' MLflow params: JSON, checked as a trial checks them
            ProblemConfig.from_dict({"name": "-", "options": value})
        except TrialConfigError as error:
            raise problem(error.what, error.fix, error.at[1:]) from None
        return dict(value)

    @model_validator(mode="after")
    def _learn_tasks(self) -> ProblemSpec:
        from trainables import name_problem

        self._task_names = _task_names(self.name, self.options)
        for task in self._task_names:  # they name the trials' metrics
            found = name_problem("task", task)
            if found is not None:
                raise problem(f"problem {self.name!r}: {found[0]}", f"rename the task in the problem; {found[1]}",
                              ("name",))
        _check_shared_layer(self.name, self.options, self.shared_layer)
        return self


def _check_shared_layer(name: str, options: dict[str, Any], path: str | None) -> None:
    """The shared layer the trials will use (``path`` from the spec, else the problem's own
    ``shared_layer``), if one is named, is a module with weights in the problem's model: the model
    is built once on the driver (construction and ``build_model`` load no data, by the Problem
    contract)."""
    from gradnorm_core import make_problem, resolve_shared_layer

    built = make_problem(name, **options)
    own = path is None
    path = built.shared_layer if own else path
    if path is None:
        return  # the model's last_shared_layer, which the trials find as the library does
    try:
        resolve_shared_layer(built.build_model(seed=0), path)
    except ValueError as error:
        what, _, fix = one_line(str(error)).removeprefix("shared_layer: ").partition("; ")
        if own:
            raise problem(f"problem {name!r} sets shared_layer {path!r}: {what}"
                          + (f" ({fix})" if fix else ""),
                          "set the Problem's shared_layer to a module of its model, or override it with "
                          "problem.shared_layer in the spec", ("shared_layer",)) from None
        raise problem(what, fix or "give a module path in the model", ("shared_layer",)) from None
    except Exception as error:  # noqa: BLE001 - the user's build_model: reported, one line
        raise problem(f"problem {name!r}: build_model(seed=0) failed ({type(error).__name__}: "
                      f"{one_line(str(error))[:200]}) while checking shared_layer {path!r}",
                      "fix the problem's build_model (it must load no data)", ("name",)) from None


#: the fix of a problem module that does not import on the driver
IMPORT_FIX = ("ship its code with the sweep: runtime_env: {working_dir: DIR} in the spec or "
              "gradnorm-tune sweep --working-dir DIR (or runtime_env.py_modules), or install its package")


def _import_fix(name: str, missing: str | None) -> str:
    """The fix of a problem module that does not import. Where the spec ships code: the named
    module (or a package above it) not found there gives the closest of the modules it holds;
    another module not found is a dependency to install or ship. Otherwise: how to ship it."""
    from .runtime_env import SHIPPED, shipped_modules

    module = name.partition(":")[0].strip()
    shipped = SHIPPED.get()
    if not shipped or missing is None:
        return IMPORT_FIX
    if not (module == missing or module.startswith(f"{missing}.")):
        return (f"install {missing!r} where the trials run (on every node), or ship it with the sweep too "
                "(runtime_env.py_modules)")
    modules = shipped_modules(shipped)
    where = f"the working_dir {shipped[0]}" if len(shipped) == 1 else f"the shipped code ({', '.join(shipped)})"
    listed = ", ".join(modules[:12]) + (", ..." if len(modules) > 12 else "") if modules else "none"
    return f"{did_you_mean(module, modules)}fix problem.name: {where} has no module {module!r} (its modules: {listed})"


def _task_names(name: str, options: dict[str, Any]) -> tuple[str, ...]:
    """The problem's task names; a bad name or option raises the spec's one-line error. A user's
    problem (``module:attribute``, an entry point) is imported and constructed (no data)."""
    from gradnorm_core import problem_tasks
    from gradnorm_core.problems.registry import ProblemNameError, check_options, resolve_problem

    accepted = ""
    try:
        factory = resolve_problem(name)
        accepted = ", ".join(inspect.signature(factory).parameters) if _has_signature(factory) else ""
        check_options(name, factory, options)
        return tuple(problem_tasks(name, **options))
    except ProblemNameError as error:
        raise _located(error, name, options) from None
    except (TypeError, ValueError) as exc:  # a built-in problem's own check of an option's value
        message = one_line(str(exc))
    key = next((k for k in options if message.startswith((f"{k} ", f"{k}["))), None)
    raise problem(
        f"bad option for problem {name!r}: {message}",
        f"fix the value (accepted options: {accepted})" if accepted else "fix the value",
        ("options", key) if key else ("options",),
    )


def _has_signature(factory: Any) -> bool:
    try:
        inspect.signature(factory)
    except (TypeError, ValueError):
        return False
    return True


def _located(error: Any, name: str, options: dict[str, Any]) -> Exception:
    """A registry error as the spec's: at problem.name or problem.options.<key>, with hints."""
    from gradnorm_core.problems.registry import known_names, resolve_problem

    if error.kind == "unknown":
        return problem(error.what, f"{did_you_mean(name, known_names())}{error.fix}", ("name",))
    if error.kind == "import":
        return problem(error.what, _import_fix(name, error.missing), ("name",))
    if error.kind == "option" and error.option is not None:
        if error.what.startswith("unknown option"):
            parameters = inspect.signature(resolve_problem(name)).parameters
            return problem(error.what, f"{did_you_mean(error.option, parameters)}{error.fix}".replace(
                "accepted options:", "accepted:"), ("options", error.option))
        return problem(error.what, f"add it under problem.options ({error.fix})", ("options", error.option))
    return problem(error.what, error.fix, (error.field,))
