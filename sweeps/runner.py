"""Run a sweep spec: each search as one Ray Tune experiment under an MLflow parent run, then the
comparison of what each search cost and found.

A sweep lives in one directory (``<storage>/<name>-<time>``) that holds ``sweep.json`` (the
spec, the tracking URI, the MLflow run ids, which searches are done) and one Tune experiment per
search. ``resume`` reads it back and finishes only what is unfinished.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from mlflow.tracking import MlflowClient
from ray import tune

from trainables import MlflowTrialLogger, TrialConfig, train_trial
from trainables.mlflow_logger import (
    PARENT,
    ROLE,
    SEARCH,
    SWEEP,
    TAG_PREFIX,
    fail_fast,
    first_line,
)

from . import report
from .results import SearchSummary, TrialSummary
from .spec import SearchSpec, SweepSpec, parse_spec, static_grid_points

STATE_FILE = "sweep.json"
RECOMMENDED = "recommended_static"


class SweepInterrupted(KeyboardInterrupt):
    """The sweep was stopped before its end; ``gradnorm-tune resume`` finishes it."""


class SweepError(RuntimeError):
    """The sweep cannot start or go on; the message is one line saying why and what to do."""


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def redact(uri: str) -> str:
    """The URI with any password in it masked, for messages: credentials belong in
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, but a URI may still carry one."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


@dataclass
class SweepState:
    """What ``sweep.json`` holds."""

    directory: Path
    spec: dict[str, Any]
    spec_source: str
    tracking_uri: str
    sweep_id: str
    experiment_id: str
    comparison_run_id: str
    searches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def save(self) -> None:
        # written whole, then renamed: a crash never leaves half a state file
        data = {key: value for key, value in self.__dict__.items() if key != "directory"}
        temporary = self.directory / (STATE_FILE + ".tmp")
        temporary.write_text(json.dumps(data, indent=2))
        temporary.replace(self.directory / STATE_FILE)

    @classmethod
    def load(cls, directory: Path) -> SweepState:
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            raise SweepError(f"{directory} is not a sweep directory (no {STATE_FILE}); pass the directory a sweep printed at its start")
        return cls(directory=Path(directory), **json.loads(path.read_text()))


def check_tracking_server(uri: str) -> MlflowClient:
    """Fail fast, before any compute, when the tracking store cannot be reached or refuses us."""
    client = MlflowClient(uri)
    try:
        with fail_fast():
            client.search_experiments(max_results=1)
    except Exception as error:  # noqa: BLE001 - any failure here means: unusable
        reason = first_line(error)
        if any(code in reason for code in ("401", "403", "UNAUTHENTICATED", "PERMISSION_DENIED")):
            raise SweepError(
                f"tracking server {redact(uri)} refused the request ({reason}); set MLFLOW_TRACKING_USERNAME "
                "and MLFLOW_TRACKING_PASSWORD to an account of that server"
            ) from None
        raise SweepError(f"tracking server {redact(uri)} is unreachable ({reason}); start it or pass --tracking-uri") from None
    return client


def quiet_logs() -> None:
    """Only our progress lines and errors: Ray's, MLflow's and Optuna's chatter off."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # MLflow prints two links per finished run on a tracking server; the sweep prints its own
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("ray").setLevel(logging.CRITICAL)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def check_ray_address(address: str | None) -> None:
    """Fail fast when a given Ray address does not answer: ray.init would wait minutes."""
    if not address or address == "auto" or address.startswith("local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"Ray address {address!r} is not host:port or ray://host:port; fix --ray-address")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SweepError(
            f"cannot reach Ray at {address} ({reason}); start the cluster or fix --ray-address / RAY_ADDRESS"
        ) from None


def start_ray(address: str | None, quiet: bool = True) -> None:
    if quiet:
        quiet_logs()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_ray_address(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=not quiet, logging_level=logging.ERROR)
        else:
            # a new Ray of our own, even when `ray start` left a cluster on this machine
            # (plain ray.init() would join that one); --ray-address auto joins it on purpose
            ray.init(address="local", include_dashboard=False, log_to_driver=not quiet,
                     logging_level=logging.ERROR)
    except Exception as error:  # noqa: BLE001
        raise SweepError(f"cannot connect to Ray at {address!r} ({first_line(error)}); check --ray-address") from None


def base_config(spec: SweepSpec) -> dict[str, Any]:
    return {"problem": spec.problem.name, "problem_options": dict(spec.problem.options), **spec.training}


def param_space(spec: SweepSpec, search: SearchSpec, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tune's param space for one search, and the TuneConfig keywords it needs."""
    config = base_config(spec) | {"search": search.name, "method": search.method,
                                  "method_options": search.balancer_options()}
    options = search.options
    tune_options: dict[str, Any] = {"num_samples": 1}
    if search.type == "gradnorm" and options.get("search") == "optuna":
        from optuna.samplers import TPESampler
        from ray.tune.search.optuna import OptunaSearch

        config["alpha"] = tune.uniform(float(options["alpha"]["low"]), float(options["alpha"]["high"]))
        tune_options = {"num_samples": int(options["num_trials"]),
                        "search_alg": OptunaSearch(sampler=TPESampler(seed=seed))}
    elif search.type == "gradnorm":
        config["alpha"] = tune.grid_search([float(a) for a in options["alpha"]])
    elif search.type == "static_grid":
        points, _, _ = static_grid_points(search, spec.num_tasks, seed)
        config["weights"] = tune.grid_search(points)
    elif search.type == "static":
        config["weights"] = [float(w) for w in options["weights"]]
        config["method_options"] = {}
    return config, tune_options


class Progress(tune.Callback):
    """One line per finished or failed trial, so a sweep shows it is alive."""

    def __init__(self, search: str, total: int | None) -> None:
        self.search, self.total, self.done = search, total, 0

    def _line(self, trial, text: str) -> None:
        self.done += 1
        of = f"/{self.total}" if self.total else ""
        try:
            varied = TrialConfig.from_dict(trial.config).describe()
        except ValueError:
            varied = "?"
        print(f"  [{self.search}] trial {self.done}{of} {varied}: {text}", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        self._line(trial, f"best val score {result.get('best_score', float('nan')):.4f}, "
                          f"{result.get('compute_seconds', 0.0):.1f} s")

    def on_trial_error(self, iteration, trials, trial, **info):
        from trainables.mlflow_logger import trial_error_message

        self._line(trial, f"FAILED: {trial_error_message(trial)}")


def open_search(state: SweepState, spec: SweepSpec, search: SearchSpec, client: MlflowClient) -> dict[str, Any]:
    """The search's entry in the sweep state, with its MLflow parent run created the first time."""
    entry = state.searches.setdefault(search.name, {"status": "pending"})
    if "parent_run_id" in entry:
        return entry
    parent = client.create_run(
        state.experiment_id, run_name=f"{spec.name}/{search.name}",
        tags={PARENT: state.comparison_run_id, ROLE: "search", SEARCH: search.name,
              SWEEP: state.sweep_id, TAG_PREFIX + "kind": search.type},
    )
    entry["parent_run_id"] = parent.info.run_id
    if search.type == "static_grid":
        _, size, sampled = static_grid_points(search, spec.num_tasks, int(spec.training.get("seed", 0)))
        entry |= {"grid_size": size, "sampled": sampled}
        client.log_param(parent.info.run_id, "grid_size", size)
        client.log_param(parent.info.run_id, "grid_sampled", sampled)
    for key, value in search.options.items():
        client.log_param(parent.info.run_id, key, json.dumps(value))
    entry["status"] = "running"
    state.save()
    return entry


def make_tuner(state: SweepState, spec: SweepSpec, search: SearchSpec, callbacks: list, max_failures: int):
    """A new Tuner for the search, or the one restored from its directory after an interruption."""
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    trainable = tune.with_resources(train_trial, resources)
    experiment = state.directory / search.name
    if (experiment / "tuner.pkl").exists():
        return tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=True)
    config, tune_options = param_space(spec, search, int(spec.training.get("seed", 0)))
    return tune.Tuner(
        trainable,
        param_space=config,
        tune_config=tune.TuneConfig(metric="best_score", mode="min", reuse_actors=True,
                                    max_concurrent_trials=spec.resources.max_concurrent, **tune_options),
        run_config=tune.RunConfig(
            name=search.name, storage_path=str(state.directory), verbose=0, callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def run_search(state: SweepState, spec: SweepSpec, search: SearchSpec, client: MlflowClient,
               max_failures: int, tracking_patience: float = 300.0) -> None:
    """Run (or restore and finish) one search as a Tune experiment under its MLflow parent run."""
    if state.searches.get(search.name, {}).get("status") == "done":
        return
    entry = open_search(state, spec, search, client)
    total = search.trial_count(spec.num_tasks)
    logger = MlflowTrialLogger(state.tracking_uri, state.experiment_id, entry["parent_run_id"], search.name,
                               state.sweep_id, patience_seconds=tracking_patience)
    callbacks = [logger, Progress(search.name, total)]
    grid = ""
    if search.type == "static_grid":
        grid = f" of a {entry['grid_size']}-point grid" + (", sampled at random" if entry["sampled"] else "")
    at_once = spec.resources.max_concurrent or "as many as fit"
    print(f"search {search.name} ({search.type}): {total} trial(s){grid}, {at_once} at once, "
          f"{spec.resources.cpu:g} CPU / {spec.resources.gpu:g} GPU each", flush=True)
    start = time.time()
    tuner = make_tuner(state, spec, search, callbacks, max_failures)
    results = tuner.fit()
    entry["wall_seconds"] = entry.get("wall_seconds", 0.0) + time.time() - start
    # the checkpoints are the record: whatever the tracking server missed is written now
    logger.reconcile(results)
    if logger.pending:
        state.save()
        raise SweepError(
            f"tracking server {redact(state.tracking_uri)} unreachable for {tracking_patience:.0f} s "
            f"({logger.last_error}); search {search.name}'s trials are checkpointed: "
            f"bring the server back and run: gradnorm-tune resume {state.directory}"
        )
    ended = results.num_terminated + results.num_errors
    if ended < total:
        # Tune stops cleanly on Ctrl-C and returns; what it left is for `resume`
        state.save()
        raise SweepInterrupted(f"search {search.name} stopped with {ended} of {total} trials ended")
    entry["status"] = "done"
    client.log_metric(entry["parent_run_id"], "wall_seconds", entry["wall_seconds"])
    client.set_terminated(entry["parent_run_id"], "FINISHED")
    state.save()


def recommended_weights(client: MlflowClient, state: SweepState, spec: SweepSpec) -> list[float] | None:
    """Time-averaged weights of the best trial of the first GradNorm search (the paper, 5.4)."""
    for search in spec.searches:
        if search.type == "gradnorm" and search.name in state.searches:
            summary = search_summary(client, state, search.name, search.type)
            best = report.best_trial(summary)
            if best is not None:
                return report.time_averaged_weights(best)
    return None


def run_sweep(spec: SweepSpec, *, storage: str | Path = "gradnorm-runs", tracking_uri: str | None = None,
              ray_address: str | None = None, max_failures: int = 2, quiet: bool = True,
              tracking_patience: float = 300.0) -> SweepState:
    """Start a sweep in a new directory under ``storage`` and run it to the end."""
    if quiet:
        quiet_logs()
    check_ray_address(ray_address or os.environ.get("RAY_ADDRESS"))
    tracking_uri = tracking_uri or default_tracking_uri()
    client = check_tracking_server(tracking_uri)
    start_ray(ray_address, quiet)
    directory = Path(storage).resolve() / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    directory.mkdir(parents=True, exist_ok=False)
    experiment_name = spec.experiment
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        location = None
        if is_local_store(tracking_uri):
            location = (Path.cwd() / "mlartifacts" / experiment_name.replace("/", "_")).as_uri()
        # MLflow 3's UI opens an experiment without this tag as a GenAI one, with the runs hidden
        experiment_id = client.create_experiment(experiment_name, artifact_location=location,
                                                 tags={"mlflow.experimentKind": "custom_model_development"})
    else:
        experiment_id = experiment.experiment_id
    sweep_id = uuid.uuid4().hex[:12]
    comparison = client.create_run(
        experiment_id, run_name=f"{spec.name} comparison",
        tags={ROLE: "comparison", SWEEP: sweep_id, TAG_PREFIX + "directory": str(directory)},
    )
    state = SweepState(directory, spec.raw, spec.source, tracking_uri, sweep_id, experiment_id,
                       comparison.info.run_id)
    state.save()
    print(f"sweep {spec.name} in {directory}\n  (if interrupted: gradnorm-tune resume {directory})", flush=True)
    return finish_sweep(state, spec, client, max_failures, tracking_patience)


def resume_sweep(directory: str | Path, *, ray_address: str | None = None, max_failures: int = 2,
                 quiet: bool = True, tracking_uri: str | None = None, tracking_patience: float = 300.0) -> SweepState:
    """Finish an interrupted sweep: done searches are kept, the others restored or started."""
    state = SweepState.load(Path(directory).resolve())
    if tracking_uri:
        state.tracking_uri = tracking_uri
    spec = parse_spec(state.spec, state.spec_source)
    client = check_tracking_server(state.tracking_uri)
    start_ray(ray_address, quiet)
    print(f"resuming sweep {spec.name} in {state.directory}", flush=True)
    return finish_sweep(state, spec, client, max_failures, tracking_patience)


def finish_sweep(state: SweepState, spec: SweepSpec, client: MlflowClient, max_failures: int,
                 tracking_patience: float = 300.0) -> SweepState:
    for search in spec.searches:
        run_search(state, spec, search, client, max_failures, tracking_patience)
    if spec.recommended_static:
        weights = state.searches.get(RECOMMENDED, {}).get("weights") or recommended_weights(client, state, spec)
        if weights is not None:
            state.searches.setdefault(RECOMMENDED, {"status": "pending"})["weights"] = weights
            rounded = [round(w, 4) for w in weights]
            print(f"recommended static weights (time-averaged GradNorm weights of the best alpha): {rounded}")
            search = SearchSpec(name=RECOMMENDED, type="static", options={"weights": rounded})
            run_search(state, spec, search, client, max_failures, tracking_patience)
    build_comparison(state, spec, client)
    return state


def search_summary(client: MlflowClient, state: SweepState, name: str, kind: str) -> SearchSummary:
    """One search rebuilt from MLflow: its parent run, its trial runs and their metric histories."""
    entry = state.searches[name]
    runs = client.search_runs(
        [state.experiment_id],
        filter_string=f"tags.`{PARENT}` = '{entry['parent_run_id']}' and tags.`{ROLE}` = 'trial'",
        max_results=10000,
    )
    trials = []
    for run in runs:
        keys = [key for key in run.data.metrics]
        by_step: dict[int, dict[str, float]] = {}
        for key in keys:
            for metric in client.get_metric_history(run.info.run_id, key):
                by_step.setdefault(metric.step, {"epoch": metric.step})[key] = metric.value
        history = [by_step[step] for step in sorted(by_step)]
        config = trial_config_from_params(run.data.params)
        trials.append(TrialSummary(
            search=name, trial_id=run.data.tags.get(TAG_PREFIX + "trial_id", run.info.run_id),
            config=config, status=run.info.status,
            compute_seconds=history[-1].get("compute_seconds", 0.0) if history else 0.0,
            device=run.data.tags.get(TAG_PREFIX + "device", "?"),
            end_time=(run.info.end_time or run.info.start_time or 0) / 1000, history=history,
            error=run.data.tags.get(TAG_PREFIX + "error"),
        ))
    return SearchSummary(name=name, kind=kind, wall_seconds=entry.get("wall_seconds", 0.0), trials=trials,
                         grid_size=entry.get("grid_size"), sampled=bool(entry.get("sampled", False)))


def trial_config_from_params(params: dict[str, str]) -> dict[str, Any]:
    """The trial config back from its MLflow params (``trainables.trial_params`` flattened it)."""
    config: dict[str, Any] = {}
    for key, value in params.items():
        outer, dot, inner = key.partition(".")
        if dot:
            config.setdefault(outer, {})[inner] = _parse_param(value)
        else:
            config[key] = _parse_param(value)
    return config


def _parse_param(value: str) -> Any:
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return value


def task_metric_names(spec: SweepSpec, summaries: list[SearchSummary]) -> list[str]:
    """``<task>/<metric>`` test metrics present in the trials, other than losses."""
    names: list[str] = []
    for summary in summaries:
        for trial in summary.trials:
            for record in trial.history[:1]:
                for key in record:
                    if key.startswith("test/") and key.count("/") == 2 and not key.endswith("/loss"):
                        name = key[len("test/"):]
                        if name not in names:
                            names.append(name)
    return names


def build_comparison(state: SweepState, spec: SweepSpec, client: MlflowClient) -> str:
    """The cost table and plots, logged to the comparison run and printed; returns the table."""
    kinds = {search.name: search.type for search in spec.searches} | {RECOMMENDED: "static"}
    summaries = [search_summary(client, state, name, kinds.get(name, "?")) for name in state.searches]
    metrics = task_metric_names(spec, summaries)
    rows = report.cost_rows(summaries, metrics)
    # the terminal table keeps the readable metrics; the CSV has them all
    table = report.format_table(rows, [m for m in metrics if not m.endswith("/normalized_error")])
    run_id = state.comparison_run_id
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        (folder / "cost_table.md").write_text(table + "\n")
        report.write_csv(rows, folder / "cost_table.csv")
        report.plot_best_so_far(summaries, folder / "best_so_far.png")
        for summary in summaries:
            if summary.kind == "gradnorm" and report.best_trial(summary) is not None:
                best = report.best_trial(summary)
                report.plot_weight_trajectories(best, folder / f"weights_{summary.name}.png")
                averaged = report.time_averaged_weights(best)
                (folder / f"recommended_weights_{summary.name}.json").write_text(json.dumps(averaged))
        client.log_artifacts(run_id, str(folder))
    logged = client.get_run(run_id).data.metrics  # a rebuilt report logs no value twice
    for row in rows:
        for key in ("trials", "finished", "compute_seconds", "wall_seconds", "best_val_score", "best_test_score"):
            name = f"{row['search']}/{key}"
            if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool) and name not in logged:
                client.log_metric(run_id, name, float(row[key]))
    client.set_terminated(run_id, "FINISHED")
    print(table, flush=True)
    return table
