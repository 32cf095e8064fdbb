"""``gradnorm-tune submit`` and ``gradnorm-tune job status|logs|stop``: a sweep as a Ray job on a
cluster (see :mod:`sweeps.jobs`), and the ``--job`` side of ``sweep`` and ``resume`` that runs on
the head as the job's entrypoint."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["add_job_commands", "job_of", "job_spec", "resumed_job"]

ADDRESS_HELP = "the cluster's Ray job server, http://HEAD:8265; default $RAY_API_SERVER_ADDRESS"


def job_of(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--job JSON`` of ``sweep``/``resume`` (set by ``submit``): the sweep runs as a Ray job; the
    job's runtime_env as submitted and the spec's source. In a job the default tracking store
    would be inside the job's temporary working directory: a tracking server is needed."""
    from .state import SweepError

    if args.job is None:
        return None
    if not (args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
        raise SweepError("a sweep run as a Ray job needs a tracking server: give --tracking-uri http://HOST:5000 "
                         "to submit, or set MLFLOW_TRACKING_URI on the head")
    return json.loads(args.job)


def job_spec(args: argparse.Namespace, job: dict[str, Any]):
    """The spec ``submit`` sent inline (JSON, its runtime_env left out: the job's applies)."""
    from .spec import parse_spec

    return parse_spec(json.loads(args.spec), job.get("spec_source") or "<submitted spec>")


def cmd_submit(args: argparse.Namespace) -> int:
    from gradnorm_core import default_cache_dir
    from trainables import storage

    from .jobs import follow, job_client, submit_sweep
    from .shipping import check_code_shipped
    from .spec import load_spec, spec_path
    from .state import SweepError

    flags = {"--tracking-uri": args.tracking_uri, "--max-failures": args.max_failures,
             "--tracking-patience": args.tracking_patience, "--verbose": args.verbose}
    if args.resume:
        if args.spec:
            raise SweepError("submit: give a spec or --resume DIRECTORY, not both")
        runtime_env = resumed_job(args, flags)
        from .jobs import call, entrypoint, job_runtime_env

        client = job_client(args.address)
        command = entrypoint("resume", args.resume, {"runtime_env": runtime_env}, flags)
        job_id = call(lambda: client.submit_job(entrypoint=command, runtime_env=job_runtime_env(runtime_env)))
    else:
        if not args.spec:
            raise SweepError("submit: give a spec (a path, or a name in sweeps/specs), or --resume DIRECTORY")
        shipped = None if args.working_dir is None else {
            "working_dir": str(Path(args.working_dir).expanduser().resolve())}
        spec = load_spec(spec_path(args.spec), runtime_env=shipped)
        overrides = {key: value for key, value in (("cpu", args.cpus_per_trial), ("gpu", args.gpus_per_trial),
                                                   ("max_concurrent", args.max_concurrent)) if value is not None}
        if overrides:
            spec = spec.with_resources(**overrides)
        check_code_shipped(spec)
        given = args.storage or (spec.storage.uri if spec.storage else None)
        if given and not storage.is_uri(given) and not Path(given).expanduser().is_absolute():
            raise SweepError(f"--storage {given}: a relative path would be inside the job's temporary copy on the "
                             "head; give s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or an absolute path every node mounts")
        local = [Path(given)] if given and not storage.is_uri(given) else []
        flags |= {"--storage": args.storage, "--checkpoint-seconds": args.checkpoint_seconds}
        data = {key: value for key, value in spec.raw.items() if key != "runtime_env"}
        client = job_client(args.address)  # once the input is known good: nothing reaches the cluster before
        job_id = submit_sweep(client, data, spec.source, spec.runtime_env,
                              [*local, Path("gradnorm-runs"), default_cache_dir()], flags, spec.name)
    print(f"submitted job {job_id} to {args.address or os.environ.get('RAY_API_SERVER_ADDRESS')}\n"
          f"  follow it: gradnorm-tune job logs {job_id} --follow   stop it: gradnorm-tune job stop {job_id}",
          flush=True)
    if args.no_wait:
        return 0
    return follow(client, job_id)


def resumed_job(args: argparse.Namespace, flags: dict[str, Any]) -> dict[str, Any]:
    """``submit --resume DIRECTORY``: the runtime_env to ship again (``--working-dir``, else the one
    the sweep's job was submitted with) and, unless ``--tracking-uri`` is given, the sweep's own
    tracking URI (as the cluster sees it) into ``flags``, both from the sweep's ``sweep.json``, read
    here: a directory that is no sweep's is one line before anything reaches the cluster."""
    from .state import SweepError, SweepState

    runtime_env = {"working_dir": str(Path(args.working_dir).expanduser().resolve())} if args.working_dir else None
    if runtime_env is not None and args.tracking_uri is not None:
        return runtime_env
    try:
        state = SweepState.load(args.resume)
    except SweepError:
        if runtime_env is None:
            raise
        return runtime_env  # (this machine cannot read it: the head's MLFLOW_TRACKING_URI, then)
    if args.tracking_uri is None:
        flags["--tracking-uri"] = state.tracking_uri
    return runtime_env if runtime_env is not None else (state.job or {}).get("runtime_env") or {}


def cmd_job(args: argparse.Namespace) -> int:
    from .jobs import STILL_RUNNING_STATUS, call, exit_status_of, follow, job_client

    client = job_client(args.address)
    if args.action == "logs":
        if args.follow:
            return follow(client, args.id)
        print(call(client.get_job_logs, args.id), end="", flush=True)
        return 0
    if args.action == "stop":
        call(client.stop_job, args.id)
        print(f"asked the cluster to stop job {args.id}", flush=True)
        if args.no_wait:
            return 0
    info = call(client.get_job_info, args.id)
    while args.action == "stop" and str(info.status) in ("PENDING", "RUNNING"):
        import time

        time.sleep(1)
        info = call(client.get_job_info, args.id)
    code = exit_status_of(info)
    print(f"job {args.id}: {info.status}" + ("" if code is None else f" (exit status {code})"), flush=True)
    if args.action == "stop":
        return 0
    return STILL_RUNNING_STATUS if code is None else code


def add_job_commands(commands, cluster_flags) -> None:
    """``submit`` and ``job`` on the command line's subcommands; ``--job`` on ``sweep`` and ``resume``."""
    submit = commands.add_parser("submit", help="run a sweep spec on a Ray cluster, as a Ray job")
    submit.add_argument("spec", nargs="?", help="a spec path, or a name in sweeps/specs")
    submit.add_argument("--address", default=None, help=ADDRESS_HELP)
    submit.add_argument("--resume", default=None, metavar="DIRECTORY",
                        help="finish an interrupted sweep (its directory, e.g. s3://bucket/runs/demo-...) as a job")
    submit.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    submit.add_argument("--storage", default=None,
                        help="where sweep directories go, as the cluster sees it: s3://BUCKET/PREFIX, gs://..., or an "
                             "absolute path every node mounts; default: the spec's storage, else the head's "
                             "$GRADNORM_TUNE_STORAGE")
    submit.add_argument("--working-dir", default=None, metavar="DIR",
                        help="ship DIR with the job (sets runtime_env.working_dir)")
    submit.add_argument("--cpus-per-trial", type=float, default=None, help="overrides resources.cpu of the spec")
    submit.add_argument("--gpus-per-trial", type=float, default=None, help="overrides resources.gpu of the spec")
    submit.add_argument("--max-concurrent", type=int, default=None, help="overrides resources.max_concurrent")
    submit.add_argument("--checkpoint-seconds", type=float, default=10.0, metavar="SECONDS",
                        help="as for sweep (default: %(default)s)")
    cluster_flags(submit, ray_address=False)
    submit.set_defaults(run=cmd_submit)

    job = commands.add_parser("job", help="follow a submitted sweep: status, logs, stop")
    actions = job.add_subparsers(dest="action", required=True, parser_class=type(job))
    for name, text in (("status", "the job's status; exit status: the sweep's, 75 while it runs"),
                       ("logs", "the job's output so far (--follow: until it ends; exit status: the sweep's)"),
                       ("stop", "ask the cluster to stop the job: the sweep ends its trials KILLED, resumable")):
        action = actions.add_parser(name, help=text)
        action.add_argument("id", help="the job id submit printed")
        action.add_argument("--address", default=None, help=ADDRESS_HELP)
        if name == "logs":
            action.add_argument("--follow", action="store_true", help="stream the output until the job ends")
        if name == "stop":
            action.add_argument("--no-wait", action="store_true", help="return without waiting for the job to end")
        action.set_defaults(run=cmd_job)

    for name in ("sweep", "resume"):
        commands.choices[name].add_argument("--job", default=None, help=argparse.SUPPRESS)
