"""``gradnorm-tune``: run a sweep spec here or submit it to a Ray cluster, resume it, report it.

Also: one training run (``train``) and data sets (``data``), :mod:`sweeps.cli_train`'s; the
cluster's commands (``submit``, ``job``), :mod:`sweeps.cli_jobs`'s. Importing this module and
parsing a command line import no torch, Ray, MLflow or Optuna: each command imports what it uses."""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

def cmd_sweep(args: argparse.Namespace) -> int:
    from .cli_jobs import job_of, job_spec
    from .links import print_ui_hint
    from .spec import load_spec, spec_path

    job = job_of(args)  # run by `submit` as a Ray job: the spec comes inline, its runtime_env is the job's
    # --working-dir DIR is short for runtime_env: {working_dir: DIR} (DIR from here), set before the
    # spec is validated: a module:attribute problem in DIR is imported from there for its task names
    shipped = None if args.working_dir is None else {"working_dir": str(Path(args.working_dir).expanduser().resolve())}
    spec = job_spec(args, job) if job is not None else load_spec(spec_path(args.spec), runtime_env=shipped)
    overrides = {key: value for key, value in (("cpu", args.cpus_per_trial), ("gpu", args.gpus_per_trial),
                                               ("max_concurrent", args.max_concurrent)) if value is not None}
    if overrides:
        # flags go through the spec's own checks, and into the spec a resume reads back
        spec = spec.with_resources(**overrides)
    from .runner import run_sweep  # (after the spec's checks: bad input imports no Ray)

    state = run_sweep(spec, storage=args.storage, tracking_uri=args.tracking_uri,
                      ray_address=args.ray_address, max_failures=args.max_failures, quiet=not args.verbose,
                      tracking_patience=args.tracking_patience, checkpoint_seconds=args.checkpoint_seconds, job=job,
                      release_ray=args.exits_after)
    print_ui_hint(state.tracking_uri, state.experiment_id, state.comparison_run_id)
    return exit_status(state)


def cmd_resume(args: argparse.Namespace) -> int:
    from .cli_jobs import job_of
    from .links import print_ui_hint
    from .runner import resume_sweep

    state = resume_sweep(args.directory, ray_address=args.ray_address, max_failures=args.max_failures,
                         quiet=not args.verbose, tracking_uri=args.tracking_uri,
                         tracking_patience=args.tracking_patience, job=job_of(args), release_ray=args.exits_after)
    print_ui_hint(state.tracking_uri, state.experiment_id, state.comparison_run_id)
    return exit_status(state)


def exit_status(state) -> int:
    """The exit status of a sweep that ran to its end: 0, 3 or 4 (see :mod:`sweeps.verdict`)."""
    from .verdict import ExitStatus

    return int({"complete": ExitStatus.OK, "trials_failed": ExitStatus.TRIALS_FAILED,
                "no_result": ExitStatus.NO_RESULT}.get(state.outcome, ExitStatus.OK))


def cmd_report(args: argparse.Namespace) -> int:
    from .links import print_ui_hint
    from .rebuild import build
    from .session import tracking_client
    from .spec import parse_spec
    from .state import SweepState

    state = SweepState.load(args.directory)
    if args.tracking_uri:
        state.tracking_uri = args.tracking_uri
    build(state, parse_spec(state.spec_data(), state.spec_source), tracking_client(state.tracking_uri), ending=False)
    print_ui_hint(state.tracking_uri, state.experiment_id, state.comparison_run_id)
    return 0


def retries(text: str) -> int:
    """``--max-failures``: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0 (0: no retries)")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad flag reported on one line (what, and where to read more)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"gradnorm-tune: error: {self.prog.removeprefix('gradnorm-tune ')}: {message}; "
                     f"see {self.prog} --help\n")


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(prog="gradnorm-tune", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    def cluster_flags(sub: argparse.ArgumentParser, ray_address: bool = True) -> None:
        if ray_address:
            sub.add_argument("--ray-address", default=None,
                             help="Ray cluster address (host:6379, from a node of the cluster; from elsewhere use "
                                  "gradnorm-tune submit); default $RAY_ADDRESS or a local Ray")
        sub.add_argument("--tracking-uri", default=None,
                         help="MLflow tracking URI (as the cluster sees it, for submit); default $MLFLOW_TRACKING_URI "
                              "or sqlite:///./mlflow.db")
        sub.add_argument("--max-failures", type=retries, default=2,
                         help="retries per trial whose worker or node is lost, or whose error may pass, each from "
                              "its last checkpoint; a deterministic error is not retried (default: %(default)s)")
        sub.add_argument("--tracking-patience", type=float, default=300.0, metavar="SECONDS",
                         help="how long a search's end waits for an unreachable tracking server; trials go on "
                              "meanwhile and their updates are kept (default: %(default)s)")
        sub.add_argument("--verbose", action="store_true", help="show Ray's own logs")

    sweep = commands.add_parser("sweep", help="run a sweep spec (a path, or a name in sweeps/specs)")
    sweep.add_argument("spec")
    sweep.add_argument("--storage", default=None,
                       help="where sweep directories go: a path, or s3://BUCKET/PREFIX (endpoint: $AWS_ENDPOINT_URL), "
                            "gs://BUCKET/PREFIX, file://; default: the spec's storage, else gradnorm-runs")
    sweep.add_argument("--cpus-per-trial", type=float, default=None, help="overrides resources.cpu of the spec")
    sweep.add_argument("--gpus-per-trial", type=float, default=None,
                       help="overrides resources.gpu of the spec; fractions share a GPU (0.25: 4 trials)")
    sweep.add_argument("--max-concurrent", type=int, default=None, help="overrides resources.max_concurrent")
    sweep.add_argument("--working-dir", default=None, metavar="DIR",
                       help="ship DIR to every Ray node with the sweep (sets runtime_env.working_dir), so that "
                            "trials can import a problem given as module:attribute from it")
    sweep.add_argument("--checkpoint-seconds", type=float, default=10.0, metavar="SECONDS",
                       help="checkpoint each trial at its end and at most this often before (0: every epoch); "
                            "a failed trial redoes at most this much (default: %(default)s)")
    cluster_flags(sweep)
    sweep.set_defaults(run=cmd_sweep)
    from .check import add_command as add_check
    from .scaffold import add_command as add_init

    add_check(commands)
    add_init(commands)

    resume = commands.add_parser("resume", help="finish an interrupted sweep from its directory (a path or a URI)")
    resume.add_argument("directory")
    cluster_flags(resume)
    resume.set_defaults(run=cmd_resume)

    rebuild = commands.add_parser("report", help="rebuild a finished sweep's comparison from MLflow")
    rebuild.add_argument("directory")
    rebuild.add_argument("--tracking-uri", default=None)
    rebuild.set_defaults(run=cmd_report)

    from .cli_train import add_commands as add_train_and_data

    add_train_and_data(commands)
    from .cli_jobs import add_job_commands

    add_job_commands(commands, cluster_flags)
    return top


#: What ``gradnorm-tune`` sets once at start-up, unless the environment already does: Tune's own
#: SIGINT handler off (the sweep's handles SIGINT and SIGTERM alike, see sweeps.signals), Tune's
#: per-trial CSV/JSON/TensorBoard files off (MLflow is the record; they cost the driver about
#: 20 ms a result), Tune's older quiet output, MLflow's run links off (the sweep prints its own),
#: and MLflow's HTTP retries and timeout (trainables.CLIENT_SETTINGS).
STARTUP_ENVIRONMENT = {
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def set_up_process() -> None:
    """The process-wide settings of the command (see :data:`STARTUP_ENVIRONMENT`), made once,
    on the main thread, before anything runs."""
    from trainables import CLIENT_SETTINGS

    for key, value in {**STARTUP_ENVIRONMENT, **CLIENT_SETTINGS}.items():
        os.environ.setdefault(key, value)


def main(argv: list[str] | None = None, exits_after: bool = False) -> int:
    """Run the command; returns its exit status (see :mod:`sweeps.verdict`). ``exits_after``: the
    process ends after it (:func:`run`), so a sweep stops its own Ray as soon as its trials are
    settled, while it builds the comparison; called in a process that goes on, Ray is left up."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a bad flag (2, its one line printed)
        return int(exit_.code or 0)
    args.exits_after = exits_after
    set_up_process()
    from trainables import TrackingError, TrialConfigError

    from .spec import SpecError
    from .state import FinishFailed, SweepError, SweepInterrupted, SweepUnfinished
    from .verdict import ExitStatus

    try:
        return args.run(args)
    except SweepUnfinished as error:
        print(f"gradnorm-tune: error: {error}", file=sys.stderr)
        return int(ExitStatus.UNFINISHED)
    except FinishFailed as error:
        print(f"gradnorm-tune: error: {error}", file=sys.stderr)
        return int(ExitStatus.INTERNAL)
    except (SpecError, SweepError, TrackingError, TrialConfigError) as error:
        print(f"gradnorm-tune: error: {error}", file=sys.stderr)
        return int(ExitStatus.BAD_INPUT)
    except SweepInterrupted as interrupted:
        print(f"gradnorm-tune: {interrupted}", file=sys.stderr)
        return int(ExitStatus.interrupted_by(interrupted.signum))
    except KeyboardInterrupt:  # outside a sweep's signal handling (before it, or another command)
        print("gradnorm-tune: stopped at once (Ctrl-C); a sweep it interrupted is finished by: gradnorm-tune "
              "resume <its directory>", file=sys.stderr)
        return int(ExitStatus.SIGINT)


def run() -> NoReturn:
    """The ``gradnorm-tune`` command: :func:`main`, then the process ends as a normal exit does
    (other threads joined, the exit handlers run: Ray's shutdown, MLflow's, logging's; the output
    flushed) but without the interpreter's teardown, which frees torch's, Ray's and MLflow's
    modules one by one for over a second."""
    status = main(exits_after=True)
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
