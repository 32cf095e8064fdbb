"""``gradnorm-tune check SPEC``: a spec's problem tried on one batch of every method, in seconds,
before a sweep: no Ray Tune, no MLflow run, nothing written.

The spec is read as ``sweep`` reads it (every check that needs no data, the problem's module
imported from the shipped ``working_dir``), then :func:`sweeps.dry_run.check_problem` runs where
the data is: here by default, as a worker would run it (the shipped code first on the path, the
driver's own directory off it, in the ``working_dir``), or with ``--address`` as one Ray task on
that cluster, with the spec's ``runtime_env`` and a trial's resources. It prints what it found
(tasks, W and GradNorm's path there, the parameters, one step of each search's method, the
sweep's estimated compute), or the first mistake as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["add_command", "run_check", "run_check_on_ray"]


def add_command(commands: Any) -> None:
    """The ``check`` command's parser, under the CLI's ``commands``."""
    check = commands.add_parser("check", help="try a spec's problem on one batch of every method (no sweep, no "
                                "MLflow), where its data is")
    check.add_argument("spec", help="a spec path, or a name in sweeps/specs")
    check.add_argument("--working-dir", default=None, metavar="DIR",
                       help="the code the sweep would ship (sets runtime_env.working_dir), as for sweep")
    check.add_argument("--address", default=None, metavar="ADDRESS",
                       help="run the check as one Ray task on this cluster (ray://head:10001, head:6379, auto; "
                            "local: a Ray of its own), with the spec's runtime_env and a trial's resources; "
                            "default: here, without Ray")
    check.add_argument("--verbose", action="store_true",
                       help="show the traceback of an error raised in the problem's code")
    check.set_defaults(run=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from .dry_run import CheckError
    from .spec import load_spec, spec_path

    shipped = None if args.working_dir is None else {"working_dir": str(Path(args.working_dir).expanduser().resolve())}
    spec = load_spec(spec_path(args.spec), runtime_env=shipped)
    try:
        report = run_check_on_ray(spec, args.address, quiet=not args.verbose) if args.address else run_check(spec)
    except CheckError as error:
        if args.verbose:
            said = getattr(error, "traceback", None) or "".join(traceback.format_exception(error.__cause__ or error))
            print(said.rstrip(), file=sys.stderr)
        raise
    print("\n".join(report.lines()))
    print(f"no mistake found: gradnorm-tune sweep {shlex.quote(args.spec)}"
          + (f" --working-dir {shlex.quote(args.working_dir)}" if args.working_dir else ""))
    return 0


@contextlib.contextmanager
def _in_directory(env: Mapping[str, Any] | None) -> Iterator[None]:
    """Inside: in the runtime_env's local ``working_dir`` (a worker's working directory is its copy)."""
    folder = (env or {}).get("working_dir")
    if not isinstance(folder, str) or not os.path.isdir(folder):
        yield
        return
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run_check(spec: Any) -> Any:
    """:func:`~sweeps.dry_run.check_problem` in this process, the problem's code imported as a Ray
    worker of the sweep imports it (:func:`sweeps.spec.runtime_env.code_on_path`) and run in the
    ``working_dir``; returns the :class:`~sweeps.dry_run.CheckReport`."""
    from .dry_run import check_problem
    from .spec.runtime_env import code_on_path

    with code_on_path(spec.runtime_env), _in_directory(spec.runtime_env), _threads(spec.resources.cpu):
        return check_problem(spec)


@contextlib.contextmanager
def _threads(cpus: float) -> Iterator[None]:
    """Inside: torch's intra-op threads as a trial of ``cpus`` CPUs gets them (Ray sets
    ``OMP_NUM_THREADS`` to a task's whole CPUs, at least 1)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cpus)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_on_worker(raw: dict[str, Any], source: str) -> tuple[str, Any, str]:
    """The Ray task: the spec read again on the worker (its runtime_env is this job's, its code on
    the path already), checked. Returns ("ok", report, "") or ("error", line, traceback)."""
    import socket

    import ray

    from .dry_run import CheckError
    from .spec import SpecError, parse_spec

    try:
        report = run_check(parse_spec({key: value for key, value in raw.items() if key != "runtime_env"}, source))
    except SpecError as error:
        cause = error.__cause__ or error
        return "error", str(error), "".join(traceback.format_exception(cause)) if isinstance(error, CheckError) else ""
    report.where = (f"a Ray task on node {ray.util.get_node_ip_address()} (host {socket.gethostname()}, pid "
                    f"{os.getpid()}, in {os.getcwd()})")
    return "ok", report, ""


def run_check_on_ray(spec: Any, address: str, quiet: bool = True) -> Any:
    """The check as one Ray task on the cluster at ``address``, a job with the spec's runtime_env,
    asking for one trial's resources; a Ray this started is shut down after."""
    import ray

    from .dry_run import CheckError
    from .session import start_ray
    from .state import SweepError

    started = not ray.is_initialized()
    start_ray(address, quiet=quiet, runtime_env=spec.runtime_env)
    try:
        task = ray.remote(num_cpus=spec.resources.cpu, num_gpus=spec.resources.gpu, max_retries=0)(_check_on_worker)
        try:
            status, value, said = ray.get(task.remote(spec.raw, spec.source))
        except ray.exceptions.RayError as error:
            raise SweepError(f"the check's Ray task failed ({type(error).__name__}: "
                             f"{str(error).strip().splitlines()[-1][:200]}); run it with --verbose") from None
    finally:
        if started:
            ray.shutdown()
    if status == "error":
        error = CheckError(value)
        error.traceback = said
        raise error
    return value
