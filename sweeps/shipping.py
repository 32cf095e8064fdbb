"""Nothing from the driver's disk: on a cluster, a trial imports a user's problem only from what
the sweep's runtime_env ships (``working_dir``, ``py_modules``) or from a package installed on
its node. Ray puts the driver's working directory on the path of workers that share the
driver's machine, so a spec that forgets ``runtime_env`` passes on one machine and fails on the
first real cluster; these checks make it fail at once, everywhere, with the fix:

- :func:`check_code_shipped`, on the submitting machine before anything starts: a
  ``module:attribute`` problem is found in the runtime_env's code or in an installed package;
- :func:`check_workers_import`, once Ray is joined and before any trial: every node imports it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from .spec import SweepSpec
from .spec.runtime_env import local_code_paths
from .state import SweepError

__all__ = ["SHIP_FIX", "check_code_shipped", "check_workers_import"]

SHIP_FIX = ("ship it with the sweep: runtime_env: {working_dir: DIR} in the spec (or --working-dir DIR), "
            "or install its package on every node")


def _module(spec: SweepSpec) -> str | None:
    name = spec.problem.name
    return name.partition(":")[0].strip() if ":" in name else None


def _installed(top: str) -> bool:
    """Whether a distribution provides the top-level package (an editable install included)."""
    return top in importlib.metadata.packages_distributions()


def _ships_remote_code(env: dict) -> bool:
    """A working_dir or py_modules entry given as a URI: its content cannot be looked at here."""
    entries = [env.get("working_dir"), *(env.get("py_modules") or ())]
    return any(isinstance(entry, str) and "://" in entry for entry in entries)


def check_code_shipped(spec: SweepSpec) -> None:
    """Before a sweep goes to a cluster: its ``module:attribute`` problem is in the code the
    runtime_env ships, or in an installed package; else a one-line SweepError naming
    ``runtime_env.working_dir``."""
    module = _module(spec)
    if module is None or _ships_remote_code(spec.runtime_env):
        return
    top = module.partition(".")[0]
    if _installed(top) or top in sys.stdlib_module_names:
        return
    shipped = [Path(path).resolve() for path in local_code_paths(spec.runtime_env)]
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    origin = found.origin if found is not None and found.origin not in (None, "built-in", "frozen") else None
    if origin is None and found is not None and found.submodule_search_locations:
        origin = next(iter(found.submodule_search_locations), None)
    if origin is None:
        return  # only in the shipped code (the spec was validated with it on the path)
    where = Path(origin).resolve()
    if any(where.is_relative_to(path) for path in shipped):
        return
    folder = where.parent.parent if found.submodule_search_locations else where.parent
    raise SweepError(
        f"{spec.source}: problem.name: module {module!r} is imported from {folder} on this machine, which "
        f"runtime_env.working_dir does not ship, so no Ray worker on another node can import it; {SHIP_FIX}")


def check_workers_import(spec: SweepSpec) -> None:
    """Once Ray is joined: every alive node imports the spec's problem (a ``module:attribute``
    or an entry point) with the sweep's runtime_env, before any trial starts; else a one-line
    SweepError naming the nodes and ``runtime_env.working_dir``."""
    import ray

    from gradnorm_core import PROBLEMS

    from .session import on_every_node

    name = spec.problem.name
    if name in PROBLEMS:
        return

    @ray.remote(num_cpus=0, max_retries=0)
    def resolve(problem: str) -> str | None:
        from gradnorm_core.problems import ProblemNameError, resolve_problem

        try:
            resolve_problem(problem)
        except ProblemNameError as error:
            return error.what
        return None

    failed = [(node, error) for node, error in on_every_node(resolve, name, timeout=300) if error]
    if failed:
        where = ", ".join(f"{node['NodeManagerAddress']} ({node['NodeID'][:8]})" for node, _ in failed)
        raise SweepError(f"{spec.source}: problem.name: {failed[0][1]} on Ray node(s) {where}; {SHIP_FIX}")
