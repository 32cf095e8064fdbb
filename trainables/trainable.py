"""The core trainer as a Ray Tune function trainable: report and checkpoint every epoch."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from gradnorm_core import EpochRecord, NonFiniteLossError, Training

from .config import TrialConfig, logs_of
from .failures import TrialFailures, error_line, user_error
from .metric_names import (
    AVERAGE_WEIGHT,
    BEST_SCORE,
    BEST_TEST_SCORE,
    COMPUTE_SECONDS,
    CPU_SECONDS,
    GPU_SECONDS,
    MEAN_WEIGHT,
    SAMPLES,
    SCORE,
    TEST_SCORE,
    WEIGHT,
)
from .outcome import Outcome, marker

CHECKPOINT_FILE = "trial.pt"


def task_error_metric(task: str, split: str = "val") -> str:
    """The name :func:`epoch_metrics` gives a task's normalized error on a split
    (``val/<task>/normalized_error``): every problem reports it, scale-free, lower is better."""
    return f"{split}/{task}/normalized_error"


def epoch_metrics(record: EpochRecord, task_names: tuple[str, ...], device: str) -> dict[str, Any]:
    """The flat result of one epoch: what Tune receives and MLflow stores as metrics (under the
    names of :mod:`trainables.metric_names`).

    ``score`` and ``val/...`` only on an epoch that validated (``val_every``), ``test/score`` and
    ``test/...`` only where the test split was evaluated (a new best validation score, the last
    epoch); ``train/...``, the weights and the cost so far every epoch: ``compute_seconds``
    (wall-clock), ``cpu_seconds`` (the trial's own CPU time), ``gpu_seconds`` (on CUDA) and
    ``samples``."""
    metrics: dict[str, Any] = {
        "epoch": record.epoch,
        **({SCORE: record.score} if record.score is not None else {}),
        **({TEST_SCORE: record.test["score"]} if "score" in record.test else {}),
        COMPUTE_SECONDS: record.elapsed_seconds,
        **{key: value for key, value in ((CPU_SECONDS, record.cpu_seconds), (GPU_SECONDS, record.gpu_seconds))
           if value is not None},
        SAMPLES: record.samples,
        "device": device,
        # when the epoch ended: the time of its MLflow points, the same however often they are written
        "reported_at": round(time.time(), 3),
    }
    for split in ("train", "val", "test"):
        for key, value in getattr(record, split).items():
            if key != "score":
                metrics[f"{split}/{key}"] = value
    for task, weight, mean_weight in zip(task_names, record.weights, record.mean_weights):
        metrics[WEIGHT + task] = weight
        metrics[MEAN_WEIGHT + task] = mean_weight
    return metrics


def best_scores(history: list[dict[str, Any]]) -> dict[str, float]:
    """``best_score`` (the lowest ``score`` so far; the first of equals) and ``best_test_score``
    (``test/score`` at that epoch); ``best_score`` inf and no ``best_test_score`` before any epoch
    validated."""
    validated = [m for m in history if SCORE in m]
    if not validated:
        return {BEST_SCORE: math.inf}
    best = min(validated, key=lambda m: m[SCORE])
    return {BEST_SCORE: best[SCORE], BEST_TEST_SCORE: best[TEST_SCORE]}


#: the key of a trial's first epoch record that holds its problem's primary metric of each task
#: and its direction, as JSON ``{task: {"metric": name, "higher_is_better": bool}}`` (Delta m%
#: reads them: the driver never imports the problem); the trial's run keeps it as a tag
PRIMARY_METRICS = "primary_metrics"


def primary_metrics_of(problem) -> str:
    """``problem.primary_metrics()`` and their directions (``gradnorm_core.higher_is_better``), as
    :data:`PRIMARY_METRICS` holds them; ``"{}"`` when the problem cannot say."""
    from gradnorm_core import higher_is_better

    found = {}
    try:
        names = problem.primary_metrics()
        for task in problem.task_names:
            if task in names:
                try:
                    found[task] = {"metric": names[task], "higher_is_better": higher_is_better(names[task])}
                except ValueError:  # a metric that declares no direction: Delta m% says what is missing
                    continue
    except Exception:  # noqa: BLE001 - the user's metrics: Delta m% then says what is missing
        pass
    return json.dumps(found)


def node_id() -> str:
    """The Ray node this trial runs on (a restored trial may move to another)."""
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def device_name(training: Training) -> str:
    if training.device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(training.device)}"
    return training.device.type


def train_trial(config: dict[str, Any]) -> None:
    """Ray Tune trainable: one training run, reported and checkpointed every epoch.

    A trial restored from a checkpoint continues where it stopped (model, optimizer, balancer,
    RNG, epoch, compute seconds) and gives the same numbers as an uninterrupted run. A trial
    started from another trial's checkpoint (population based training's exploit: the checkpoint
    names the trial that wrote it) adopts it instead (:meth:`TrialConfig.start` with ``adopt``):
    that trial's model, its own weights and learning rate from ``config``, its own epochs and
    compute seconds (``run.carried_epochs``, ``run.carried_seconds``); its history (the best score
    so far, the averaged weights) starts anew there. A trial restored with no epoch left to train
    (stopped by Tune just as it reported its last one) reports its last epoch again, so that
    Tune's last result is its end. Every epoch
    is reported; a checkpoint is written at the last epoch and, before it, whenever
    ``config["run"]["checkpoint_seconds"]`` (default 0: every epoch) have passed since the last one, so
    a failed trial redoes at most that much work, and gives the same epochs again.

    A trial that cannot go on ends without raising, with one last *marker* result (see
    :mod:`trainables.outcome`): ``diverged`` when a task loss or the validation score turns NaN
    or infinite, ``failed`` on a deterministic error (:mod:`trainables.failures`: an invalid
    config, an exception before the first report, or the same exception at the same point as the
    attempt before). Any other exception is raised, and Tune retries the trial.
    """
    state, history, adopted = None, [], False
    context = tune.get_context()
    trial_id = context.get_trial_id()  # None outside Tune: errors are raised as they are
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            saved = torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=False)
        state, history = saved["training"], saved["history"]
        # another trial's checkpoint: population based training's exploit (see TrialConfig.start);
        # its history is that trial's, not this one's
        adopted = saved.get("trial_id") not in (None, trial_id)
        history = [] if adopted else history
    failures = TrialFailures(logs_of(config) or context.get_trial_dir(), trial_id) if trial_id else None
    problem, training = None, None
    try:
        trial = TrialConfig.from_dict(config)
        problem, training = trial.start(state, adopt=adopted)
        _train(trial, problem, training, history, trial.run.checkpoint_seconds, trial_id)
    except (NonFiniteLossError, Diverged) as error:
        line, text = diverged(error, problem, training, history)
        log = None
        if failures is not None:
            failures.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} diverged, not retried: {text}\n"
                            + "".join(traceback.format_exception(error)))
            log = failures.log
        _end(Outcome.DIVERGED, history, line, type(error).__name__, log)
    except (Exception, SystemExit) as error:  # noqa: BLE001 - classified: retried by Tune, or ended here
        if isinstance(error, SystemExit) and _from_ray(error):
            raise  # Tune stopping the trial from inside tune.report (a scheduler, the sweep's end)
        epoch = training.epoch if training is not None else len(history)
        if failures is None or not failures.record(error, epoch, reported=bool(history)):
            raise
        _end(Outcome.FAILED, history, error_line(error), user_error(error)[0], failures.log)


def _from_ray(error: BaseException) -> bool:
    """Whether an exception was raised inside Ray's own code (its innermost frame is Ray's):
    ``tune.report`` ends a trial that Tune stops with ``sys.exit(0)``."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and f"{os.sep}ray{os.sep}" in frames[-1].filename


class Diverged(Exception):
    """The validation score turned NaN or infinite (``record``: that epoch's)."""

    def __init__(self, message: str, record: EpochRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


def _values(record: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{key} {record[key]:.6g}" for key in keys if isinstance(record.get(key), (int, float)))


def diverged(error: Exception, problem, training: Training | None, history: list[dict[str, Any]]) -> tuple[str, str]:
    """What a diverged trial says: one line (its error tag and the sweep's line: which loss or
    score, which epoch and step) and its log's text, which adds the last finite values (the last
    step's losses, the last reported epoch's losses and score)."""
    names = list(getattr(problem, "task_names", ()) or ())
    last = history[-1] if history else {}
    finite = f"the last reported epoch ({last['epoch']}): " + _values(
        last, [f"train/{task}/loss" for task in names] + ["score"]) if last else "no epoch reported before"
    if isinstance(error, Diverged):
        record = error.record
        bad = [f"{key} {value}" for key, value in (record.val.items() if record is not None else ())
               if isinstance(value, float) and not math.isfinite(value)]
        line = f"{error}" + (f" ({', '.join(bad[:4])})" if bad else "")
        return line, f"{line}; {finite}"
    task = error.task if isinstance(error.task, int) and error.task < len(names) else None
    which = f"task {names[task]!r}: its training loss" if task is not None else "a task's training loss"
    epoch = (training.epoch + 1) if training is not None else len(history) + 1
    step = f", step {training.steps_this_epoch + 1} of the epoch" if training is not None else ""
    line = (f"{which} is {error.value if error.value is not None else 'not finite'} at epoch {epoch}{step}; "
            "lower training.lr (or clip the gradients: training.clip_grad_norm) or check that task's data")
    previous = training.last_losses if training is not None else None
    if previous is not None and names:
        values = ", ".join(f"{name} {value:.6g}" for name, value in zip(names, previous.tolist()))
        finite = f"the step before: {values}; {finite}"
    return line, f"{line}; the last finite values: {finite}"


def _end(outcome: Outcome, history: list[dict[str, Any]], error: str, error_type: str, log: str | None) -> None:
    tune.report(marker(outcome, history[-1] if history else None, error, error_type, log))


def _train(trial: TrialConfig, problem, training: Training, history: list[dict[str, Any]], every: float,
           trial_id: str | None = None) -> None:
    """The epochs, each reported (and checkpointed at most every ``every`` seconds and at the end;
    a checkpoint names the trial that wrote it)."""
    device, node = device_name(training), node_id()
    saved_at = time.monotonic()
    if history and training.epoch >= trial.training.epochs:
        tune.report(history[-1])  # nothing left: its end again (the logger writes an epoch once)
    for record in training:
        if record.score is not None and not math.isfinite(record.score):
            raise Diverged(f"the validation score is {record.score} at epoch {record.epoch}", record)
        metrics = epoch_metrics(record, problem.task_names, device) | {"node": node}
        if not history:  # the first epoch: what the report needs of the problem, recorded once
            metrics[PRIMARY_METRICS] = primary_metrics_of(problem)
        # what searches select on: the best validation score so far, and the test score there
        # (the training tests at every new best); inf until the first validation, as Tune wants
        # its metric in every result
        metrics.update(best_scores(history + [metrics]))
        # the step-mean weights averaged over all epochs so far (exact across restores: from the
        # checkpointed history); a sweep's recommended static weights are this, at the end
        for task in problem.task_names:
            key = MEAN_WEIGHT + task
            metrics[AVERAGE_WEIGHT + task] = sum(m[key] for m in history + [metrics]) / (len(history) + 1)
        history.append(metrics)
        if record.epoch < trial.training.epochs and time.monotonic() - saved_at < every:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as directory:
            torch.save({"training": training.state_dict(), "history": history, "trial_id": trial_id},
                       Path(directory) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        saved_at = time.monotonic()


def checkpoint_history(checkpoint: tune.Checkpoint) -> list[dict[str, Any]]:
    """The per-epoch metrics stored in a trial's checkpoint (all epochs up to it)."""
    with checkpoint.as_directory() as directory:
        return torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=False)["history"]
