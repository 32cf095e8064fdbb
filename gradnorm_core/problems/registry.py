"""Problems by name: a built-in problem, an entry point of an installed package, or the import
path ``module:attribute`` of a user's own problem.

- ``"toy_t2"``: a plain name is a built-in problem (``PROBLEMS``) first, else an entry point of the
  group ``gradnorm_tune.problems`` (a package registers its problems by name in its metadata,
  e.g. ``[project.entry-points."gradnorm_tune.problems"] rings = "ringlib.problems:Rings"``).
- ``"mypkg.problems:Rings"``: imports ``mypkg.problems`` and takes its attribute ``Rings``
  (dotted paths allowed: ``mypkg.problems:Factory.rings``).

What a name resolves to (the *factory*) is a :class:`Problem` subclass, or any callable that
returns a Problem when called with the problem's options as keyword arguments. Construction is
cheap by contract (no data: that is ``load_data()``), so the sweep driver builds a user's
problem to learn its task names.

Every error is a :class:`ProblemNameError`: a one-line ``ValueError`` ``"<what>; <fix>"`` that also
says which field is wrong (``name`` or ``options``) and what kind of error it is, so that callers
(the sweep spec) can relocate it and adjust the fix.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.metadata
import inspect
import io
import sys
from collections.abc import Callable
from typing import Any

from .base import Problem

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProblemNameError",
    "build_problem",
    "check_options",
    "entry_point_names",
    "is_import_path",
    "resolve_problem",
]

ENTRY_POINT_GROUP = "gradnorm_tune.problems"

#: the fix of a module that does not import, where nothing better is known
IMPORT_FIX = ("put the directory that holds it on the Python path or install its package (a sweep ships it to "
              "Ray's workers with runtime_env.working_dir, i.e. gradnorm-tune sweep --working-dir DIR)")


class ProblemNameError(ValueError):
    """A problem name or its options do not give a problem; one line, ``"<what>; <fix>"``.

    ``field`` is ``"name"`` or ``"options"``; ``option`` the option key at fault, if one is;
    ``kind`` one of ``"unknown"`` (no such name), ``"syntax"`` (not ``module:attribute``),
    ``"import"`` (the module does not import), ``"exit"`` (importing it ends the process:
    ``sys.exit``, argparse), ``"attribute"`` (no such attribute),
    ``"not_a_factory"``, ``"not_a_problem"`` (the factory returned something else),
    ``"option"`` (unknown or missing option), ``"build"`` (the factory raised). ``missing``: for
    an import that failed on a module not found, that module's name (the named module, a package
    above it, or one it imports).
    """

    def __init__(self, what: str, fix: str, *, kind: str, field: str = "name", option: str | None = None,
                 missing: str | None = None) -> None:
        self.what, self.fix, self.kind, self.field, self.option = _one_line(what), _one_line(fix), kind, field, option
        self.missing = missing
        super().__init__(f"{self.what}; {self.fix}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def first_line(error: BaseException) -> str:
    """``"ModuleNotFoundError: No module named 'x'"``: the exception's type and first line."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def is_import_path(name: str) -> bool:
    return ":" in name


def _builtins() -> dict[str, Callable[..., Problem]]:
    from . import PROBLEMS  # the package imports this module: looked up when needed

    return PROBLEMS


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point)  # the first on sys.path wins, as for a module
    return found


def entry_point_names() -> list[str]:
    """Problem names registered by installed packages (built-in names take precedence)."""
    return sorted(set(_entry_points()) - set(_builtins()))


def known_names() -> list[str]:
    """Every plain name: the built-in problems, then the entry points."""
    return [*_builtins(), *entry_point_names()]


def _unknown(name: str) -> ProblemNameError:
    builtins, points = ", ".join(_builtins()), entry_point_names()
    registered = f"; installed: {', '.join(points)}" if points else ""
    return ProblemNameError(
        f"unknown problem {name!r}",
        f"choose one of: {builtins}{registered}; or give module:attribute of your own Problem "
        f"(or register it as an entry point of the group {ENTRY_POINT_GROUP})",
        kind="unknown",
    )


#: the fix of a module that ends the process when imported
EXIT_FIX = ("move what runs as a script (sys.exit, argparse's parse_args on sys.argv) under "
            "if __name__ == '__main__': in that module")


def _import_module(module: str, name: str) -> Any:
    """The module imported; any failure, a module that exits (``sys.exit``, or argparse parsing
    the driver's own ``sys.argv``) included, is a one-line :class:`ProblemNameError`. What the
    module writes on stderr while it imports is kept back and shown only if the import succeeds
    (argparse's usage lines would otherwise precede the one-line error)."""
    importlib.invalidate_caches()  # a directory put on sys.path just now, or a module just written
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            imported = importlib.import_module(module)
    except SystemExit as error:
        last = said.getvalue().strip().splitlines()[-1:]  # argparse: "prog: error: ..."
        detail = f": {_one_line(last[0])[:200]}" if last else ""
        raise ProblemNameError(f"importing module {module!r} of problem {name!r} ended the process "
                               f"(SystemExit {error.code!r}{detail})", EXIT_FIX, kind="exit") from None
    except Exception as error:  # noqa: BLE001 - any failure to import is the user's to fix
        raise ProblemNameError(
            f"cannot import module {module!r} of problem {name!r} ({first_line(error)})", IMPORT_FIX, kind="import",
            missing=error.name if isinstance(error, ModuleNotFoundError) else None,
        ) from None
    sys.stderr.write(said.getvalue())
    return imported


def _public_names(obj: Any) -> list[str]:
    return [key for key in dir(obj) if not key.startswith("_")]


def _attribute(module: Any, module_name: str, path: str, name: str) -> Any:
    obj, where, done = module, f"module {module_name!r}", []
    for part in path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = _public_names(obj)
            close = difflib.get_close_matches(part, names, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
            problems = [key for key in names if _is_problem_class(getattr(obj, key, None))]
            listed = problems or names
            shown = ", ".join(listed[:12]) + (", ..." if len(listed) > 12 else "")
            kind = "Problem classes" if problems else "names"
            raise ProblemNameError(
                f"{where} has no attribute {part!r} (problem {name!r})",
                f"{hint}{kind} in it: {shown or 'none'}", kind="attribute",
            ) from None
        done.append(part)
        where = f"{module_name}:{'.'.join(done)}"
    return obj


def _is_problem_class(obj: Any) -> bool:
    return inspect.isclass(obj) and issubclass(obj, Problem) and obj is not Problem


def _check_factory(obj: Any, name: str) -> Callable[..., Problem]:
    if inspect.isclass(obj):
        if not issubclass(obj, Problem):
            raise ProblemNameError(
                f"problem {name!r} is the class {obj.__module__}.{obj.__qualname__}, not a gradnorm_core Problem",
                "subclass gradnorm_core.Problem, or give a function that returns one", kind="not_a_factory",
            )
        return obj
    if not callable(obj):
        raise ProblemNameError(
            f"problem {name!r} is a {type(obj).__name__}, not a Problem subclass or a function returning one",
            "point module:attribute at a gradnorm_core.Problem subclass or a factory function", kind="not_a_factory",
        )
    return obj


def resolve_problem(name: str) -> Callable[..., Problem]:
    """The factory a problem name stands for: ``factory(**options)`` builds the problem.

    ``module:attribute`` is imported (the attribute may be a dotted path); a plain name is a
    built-in problem, else an entry point of the group ``gradnorm_tune.problems``. Raises a
    one-line :class:`ProblemNameError` (a ValueError) naming what is missing and the fix.
    """
    if not isinstance(name, str) or not name:
        raise ProblemNameError(f"problem name must be a non-empty string, got {name!r}",
                               "give a built-in problem's name or module:attribute", kind="syntax")
    if not is_import_path(name):
        builtins = _builtins()
        if name in builtins:
            return builtins[name]
        point = _entry_points().get(name)
        if point is None:
            raise _unknown(name)
        module, _, _ = point.value.partition(":")
        _import_module(module.strip(), name)  # its import error, worded like any other module's
        try:
            return _check_factory(point.load(), name)
        except AttributeError as error:
            raise ProblemNameError(
                f"entry point {name!r} ({point.value}) does not load ({first_line(error)})",
                f"fix the entry point of the group {ENTRY_POINT_GROUP} in its package", kind="attribute",
            ) from None
    module, _, path = name.partition(":")
    module, path = module.strip(), path.strip()
    if not module or not path or ":" in path or not all(part.isidentifier() for part in path.split(".")):
        raise ProblemNameError(
            f"problem name {name!r} is not module:attribute",
            "write it as package.module:ClassName (one colon, a dotted attribute path after it)", kind="syntax",
        )
    return _check_factory(_attribute(_import_module(module, name), module, path, name), name)


def _signature(factory: Callable[..., Problem]) -> inspect.Signature | None:
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read (a builtin, a C callable): not checked
        return None


def check_options(name: str, factory: Callable[..., Problem], options: dict[str, Any]) -> None:
    """Unknown and missing options of ``factory`` as one-line :class:`ProblemNameError`\\ s (not
    checked where the factory takes ``**kwargs`` or has no signature to read)."""
    signature = _signature(factory)
    if signature is None:
        return
    parameters = {key: p for key, p in signature.parameters.items()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    accepted = ", ".join(parameters) or "none"
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    for key in options:
        parameter = parameters.get(key)
        if parameter is None and not takes_any or parameter is not None and parameter.kind is parameter.POSITIONAL_ONLY:
            raise ProblemNameError(f"unknown option {key!r} for problem {name!r}", f"accepted options: {accepted}",
                                   kind="option", field="options", option=key)
    for key, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and key not in options:
            raise ProblemNameError(f"problem {name!r} needs option {key!r}", f"accepted options: {accepted}",
                                   kind="option", field="options", option=key)


def build_problem(name: str, factory: Callable[..., Problem], options: dict[str, Any]) -> Problem:
    """``factory(**options)``, checked to be a gradnorm_core Problem with task names.

    Bad options give a :class:`ProblemNameError` before the call; what the factory raises is
    raised as it is (a trial fails with it); a factory returning anything but a Problem, or a
    problem without task names, gives a :class:`ProblemNameError`."""
    check_options(name, factory, options)
    problem = factory(**options)
    if not isinstance(problem, Problem):
        returned = f"the class {problem.__qualname__}" if inspect.isclass(problem) else \
            f"a {type(problem).__module__}.{type(problem).__qualname__}"
        raise ProblemNameError(
            f"problem {name!r} returned {returned}, not a gradnorm_core Problem",
            "make it return an instance of a gradnorm_core.Problem subclass", kind="not_a_problem",
        )
    tasks = getattr(problem, "task_names", None)
    if (not isinstance(tasks, (tuple, list)) or not tasks or not all(isinstance(t, str) and t for t in tasks)
            or len(set(tasks)) != len(tasks)):
        raise ProblemNameError(
            f"problem {name!r} has task_names {tasks!r}",
            "set task_names in its __init__ to a tuple of distinct task names (one per output)", kind="not_a_problem",
        )
    return problem


def user_problem_tasks(name: str, options: dict[str, Any]) -> tuple[str, ...]:
    """The task names of a problem that is not built in: its factory's options checked, the
    problem built (cheap by contract: no data) and its ``task_names`` read. What the factory
    raises becomes a one-line :class:`ProblemNameError` about the options."""
    factory = resolve_problem(name)
    try:
        problem = build_problem(name, factory, options)
    except ProblemNameError:
        raise
    except (Exception, SystemExit) as error:  # noqa: BLE001 - reported, one line, before any trial runs
        raise ProblemNameError(
            f"problem {name!r} failed to build ({first_line(error)})",
            "fix problem.options, or the problem's __init__ (it must load no data: that is load_data())",
            kind="build", field="options",
        ) from None
    return tuple(problem.task_names)

