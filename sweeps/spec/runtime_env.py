"""The spec's ``runtime_env``: the Ray runtime environment of the sweep's job (Ray's own keys).

Checked here, on the driver, before anything runs: only Ray's keys, values as Ray validates them
(:class:`ray.runtime_env.RuntimeEnv`, imported only when a spec has a ``runtime_env``), local
``working_dir`` / ``py_modules`` paths made absolute (relative to the spec file's directory, or
the working directory for a spec given as a mapping) and checked to exist. The absolute paths
are what the spec keeps, so a resume from anywhere finds the same code.

:func:`code_on_path` puts that local code on ``sys.path`` while the spec's problem is validated,
so that a ``module:attribute`` problem shipped with the sweep can be imported for its task names
(its constructor loads no data), as a Ray worker imports it: with a ``working_dir``, not from the
driver's own working directory. The modules imported from there are forgotten afterwards.
:func:`shipped_modules` lists what the shipped code holds, for a did-you-mean.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import os
import sys
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..validation import describe, did_you_mean, one_line, problem

__all__ = ["RAY_DOCS", "SHIPPED", "check_runtime_env", "code_on_path", "local_code_paths", "runtime_env_keys",
           "shipped_modules"]

RAY_DOCS = "https://docs.ray.io/en/latest/ray-core/handling-dependencies.html"
#: what Ray unpacks as a working_dir, besides a directory
ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar.xz")
#: the local code paths of the runtime_env that :func:`code_on_path` holds importable now
SHIPPED: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("shipped", default=())


def runtime_env_keys() -> list[str]:
    """The keys Ray's runtime environments accept: ``RuntimeEnv``'s parameters and known fields
    (those starting with ``_``, Ray's internal ones, last)."""
    from ray.runtime_env import RuntimeEnv

    parameters = [key for key in inspect.signature(RuntimeEnv.__init__).parameters
                  if key not in ("self", "kwargs", "_validate")]
    known = sorted(set(RuntimeEnv.known_fields) - set(parameters), key=lambda key: (key.startswith("_"), key))
    return [*parameters, *known]


def _is_uri(value: str) -> bool:
    return "://" in value


def _local_path(value: Any, base_dir: Path, at: tuple[str | int, ...], what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise problem(f"expected a path or a URI, got {describe(value)}", f"give {what}", at)
    if _is_uri(value):
        return value
    path = (base_dir / Path(value).expanduser()).resolve()
    if not path.exists():
        raise problem(f"{path} does not exist", f"give {what} (a relative path is taken from the spec's directory)", at)
    return str(path)


def check_runtime_env(value: Any, base_dir: Path) -> dict[str, Any]:
    """``value`` checked as a Ray runtime environment, local paths made absolute from ``base_dir``."""
    if not isinstance(value, dict):
        raise problem(f"expected a mapping, got {describe(value)}",
                      "write it as a mapping of Ray's runtime_env keys, e.g. {working_dir: .}")
    if not value:
        return {}
    keys = runtime_env_keys()
    env: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise problem(f"key {key!r} is a {type(key).__name__}, not a name", "quote it or use a plain name")
        if key not in keys:
            raise problem(f"unknown runtime_env key {key!r}",
                          f"{did_you_mean(key, keys)}Ray's keys: {', '.join(k for k in keys if not k.startswith('_'))}",
                          (key,))
        env[key] = item
    if "working_dir" in env:
        what = "an existing directory, a .zip file or a remote URI"
        env["working_dir"] = _local_path(env["working_dir"], base_dir, ("working_dir",), what)
        path = Path(env["working_dir"])
        if not _is_uri(env["working_dir"]) and path.is_file() and not path.name.endswith(ARCHIVES):
            raise problem(f"{path} is a file, not a directory or an archive ({', '.join(ARCHIVES)})", f"give {what}",
                          ("working_dir",))
    if "py_modules" in env:
        modules = env["py_modules"]
        if not isinstance(modules, list):
            raise problem(f"expected a list, got {describe(modules)}",
                          "list package directories, .whl or .zip files, or URIs", ("py_modules",))
        env["py_modules"] = [_local_path(item, base_dir, ("py_modules", index),
                                         "a package directory, a .whl or .zip file, or a URI")
                             for index, item in enumerate(modules)]
    from ray.runtime_env import RuntimeEnv

    try:
        RuntimeEnv(**env)  # Ray's own checks of the values
    except Exception as error:  # noqa: BLE001 - Ray raises ValueError, TypeError, ...
        message = one_line(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        named = next((key for key in env if key in message), None)
        raise problem(message, f"fix it as Ray's runtime environments take it ({RAY_DOCS})",
                      (named,) if named else ()) from None
    return env


def local_code_paths(env: Mapping[str, Any] | None) -> list[str]:
    """What a ``runtime_env`` ships that the driver can import from: its local ``working_dir``
    (a directory or a .zip) and, for each local ``py_modules`` entry, the directory holding the
    package (or the .whl / .zip itself)."""
    if not env:
        return []
    paths = []
    working_dir = env.get("working_dir")
    if isinstance(working_dir, str) and not _is_uri(working_dir) and (
            Path(working_dir).is_dir() or working_dir.endswith(".zip")):  # (Python imports from those two)
        paths.append(working_dir)
    for module in env.get("py_modules") or ():
        if isinstance(module, str) and not _is_uri(module):
            path = Path(module)
            paths.append(str(path.parent if path.is_dir() else path))
    return paths


def _driver_own_paths(env: Mapping[str, Any] | None, shipped: list[str]) -> list[str]:
    """The ``sys.path`` entries a Ray worker of this job would not have: with a ``working_dir``
    (a worker runs in its unpacked copy, and Ray adds the driver's directory only to a job
    without one), the driver's working directory, as ``''`` or as its path; kept where
    ``PYTHONPATH`` names it (a local Ray's workers inherit the driver's environment) or where
    it is the shipped code itself, or where gradnorm-tune's own packages are found there (a
    checkout run without installing it: the trials need it too)."""
    if not env or not env.get("working_dir"):
        return []
    cwd = os.getcwd()
    kept = {os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    kept |= {os.path.abspath(p) for p in shipped}
    kept.add(str(Path(__file__).resolve().parents[2]))  # the folder holding the sweeps package
    return [entry for entry in sys.path
            if os.path.abspath(entry or cwd) == cwd and os.path.abspath(entry or cwd) not in kept]


def _found_elsewhere(name: str, location: str) -> bool:
    """Whether the import system, on the current ``sys.path``, finds the top-level module
    ``name`` at ``location`` (e.g. through an installed or editable package)."""
    for finder in sys.meta_path:
        try:
            spec = finder.find_spec(name, None)
        except Exception:  # noqa: BLE001 - a finder that cannot answer
            continue
        if spec is not None:
            return spec.origin is not None and os.path.abspath(spec.origin) == os.path.abspath(location)
    return False


def _set_aside(roots: set[str]) -> dict[str, Any]:
    """The modules imported from the folders ``roots`` that the import system would not find
    there again (with ``roots`` off ``sys.path``), each with its submodules: a worker lacks them."""
    tops = set()
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if "." in name or not location:
            continue
        folder = os.path.dirname(os.path.abspath(location))
        if os.path.basename(location).startswith("__init__."):
            folder = os.path.dirname(folder)
        if folder in roots and not _found_elsewhere(name, location):
            tops.add(name)
    return {name: module for name, module in list(sys.modules.items()) if name.partition(".")[0] in tops}


@contextlib.contextmanager
def code_on_path(env: Mapping[str, Any] | None) -> Iterator[None]:
    """Inside: the ``runtime_env``'s local code importable in this process as on a Ray worker
    (put first on ``sys.path``, as Ray puts it on its workers'), the driver's own directory off
    the path where a worker lacks it (:func:`_driver_own_paths`) and the modules imported from
    there set aside; :data:`SHIPPED` holds the shipped paths. Afterwards ``sys.path`` and the
    modules are as they were, those imported from the shipped code forgotten: the driver needed
    only the task names, and the next spec (another working_dir, the same package name) imports
    its own."""
    shipped = local_code_paths(env)
    hidden = _driver_own_paths(env, shipped)
    paths = [path for path in shipped if path not in sys.path]
    if not paths and not hidden:
        token = SHIPPED.set(tuple(shipped))
        try:
            yield
        finally:
            SHIPPED.reset(token)
        return
    saved_path = list(sys.path)
    sys.path[:] = paths + [entry for entry in sys.path if entry not in hidden]
    importlib.invalidate_caches()
    set_aside = _set_aside({os.path.abspath(entry or os.getcwd()) for entry in hidden})
    for name in set_aside:
        del sys.modules[name]
    before = set(sys.modules)
    token = SHIPPED.set(tuple(shipped))
    try:
        yield
    finally:
        SHIPPED.reset(token)
        sys.path[:] = saved_path
        roots = tuple(os.path.join(path, "") for path in paths)
        for name in set(sys.modules) - before:
            if name.partition(".")[0] in before:  # a new submodule of a package imported before: kept
                continue
            location = getattr(sys.modules[name], "__file__", None) or ""
            if location.startswith(roots):
                del sys.modules[name]
        sys.modules.update(set_aside)
        importlib.invalidate_caches()


def shipped_modules(paths: tuple[str, ...] | list[str], depth: int = 3) -> list[str]:
    """The modules importable from the shipped ``paths`` (folders or .zip files): ``a`` for
    ``a.py`` or a package ``a/``, ``a.b`` for its module ``b``, down to ``depth`` levels."""
    names: list[str] = []

    def walk(folder: str, prefix: str, level: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if entry.is_file() and ext == ".py" and stem.isidentifier() and stem != "__init__":
                names.append(prefix + stem)
            elif entry.is_dir() and entry.name.isidentifier() and not entry.name.startswith("__") and any(
                    name.endswith(".py") for name in os.listdir(entry.path)):
                names.append(prefix + entry.name)
                if level < depth:
                    walk(entry.path, f"{prefix}{entry.name}.", level + 1)

    for path in paths:
        if os.path.isdir(path):
            walk(path, "", 1)
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    parts = member.removesuffix("/__init__.py").removesuffix(".py").split("/")
                    if member.endswith(".py") and len(parts) <= depth and all(p.isidentifier() for p in parts):
                        names.append(".".join(parts))
    return sorted(set(names), key=names.index)
