"""One batch of every method of a sweep, where its trials would run, without Ray Tune or MLflow:
what ``gradnorm-tune check`` runs (:func:`check_problem`).

In order, each on the problem's own code: the data splits (``load_data``: map-style, not empty,
items ``(x, targets)`` with one target per task), the first train batch through the model
(``build_model``: one output per task), the losses (``task_losses``: shape ``(T,)``, finite, no
broadcast of a target against an output of another shape: :func:`gradnorm_core.check_target_shapes`,
which every trial runs on its first batch too), GradNorm's W reached by every task's
loss, a metrics pass over the first validation batch (``metrics``: ``<task>/normalized_error``
for every task, finite), then for each search its first trial built as the trial builds it
(:meth:`trainables.TrialConfig.build`, the method's options checked on this model) and its
optimisation step (:meth:`gradnorm_core.Training.step`) timed. The first mistake raises a
one-line :class:`CheckError` naming the problem's method or the spec's field, and the fix.
"""

from __future__ import annotations

import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Subset

from gradnorm_core import Problem, Split, fit, iterate_batches, make_balancer, make_problem, resolve_device
from gradnorm_core import TargetShapeError, check_target_shapes, resolve_shared_layer
from trainables import TrialConfigError, user_error

from .check_report import CheckReport, MethodStep
from .spec import SpecError, SweepSpec
from .spec.trials import first_trial
from .validation import one_line

__all__ = ["CheckError", "CheckReport", "MethodStep", "check_problem"]

TIMED_STEPS = 3  # after one untimed step (the check itself): the step time is the fastest of these


class CheckError(SpecError):
    """A mistake ``gradnorm-tune check`` found: one line, ``"<spec>: <where>: <what>; <fix>"``."""


class _Checker:
    """The checks of one spec's problem, each failure a :class:`CheckError`."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.name = spec.problem.name

    def fail(self, where: str, what: str, fix: str) -> CheckError:
        return CheckError(f"{self.spec.source}: {where}: {one_line(what)}; {one_line(fix)}")

    def call(self, where: str, fix: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, what it raises reported as a mistake of ``where``."""
        try:
            return function(*args, **kwargs)
        except CheckError:
            raise
        except Exception as error:  # noqa: BLE001 - the user's code: one line (--verbose: the traceback)
            name, text = user_error(error)  # as the user raised it (not torch's DataLoader wrapper)
            message = one_line(text)[:240]
            raise self.fail(where, f"raised {name}" + (f": {message}" if message else ""), fix) from error


def check_problem(spec: SweepSpec) -> CheckReport:
    """Run the checks on ``spec``'s problem here (its code importable as a worker imports it: see
    :func:`sweeps.check.run_check`); the first mistake raises :class:`CheckError`."""
    check = _Checker(spec)
    problem = check.call("problem.options", "fix the options or the problem's __init__", make_problem, check.name,
                         **spec.problem.options)
    owner = type(problem).__name__
    try:
        device = resolve_device(spec.training["device"])
    except ValueError as error:
        raise check.fail("training.device", str(error).partition(":")[0], "run the check where the trials' GPUs are "
                         "(--address of their cluster), or set training.device to auto") from None
    training = spec.training
    T = problem.num_tasks
    splits = check.call(f"{owner}.load_data", "fix load_data (it runs here as on the trials' workers, in "
                        f"{os.getcwd()})", lambda: (problem.train, problem.val, problem.test))
    for split_name, split in zip(("train", "val", "test"), splits):
        if len(split) < 1:
            raise check.fail(f"{owner}.load_data", f"the {split_name} split is empty", "give every split items")
    item = check.call(f"{owner}.load_data", "make split[i] return (x, targets)", splits[0].__getitem__, 0)
    if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], (tuple, list))
            and len(item[1]) == T):
        got = f"a {type(item).__name__}" + (f" of {len(item)}" if isinstance(item, (tuple, list)) else "")
        raise check.fail(f"{owner}.load_data", f"train[0] is {got}, not (x, targets) with {T} targets",
                         f"make each item (x, (target_1, ..., target_{T})), one target per task")
    x, targets = check.call(f"{owner}.load_data", "make the items of a split batch together (same shapes)",
                            _first_batch, splits[0], training["batch_size"], device)
    model = check.call(f"{owner}.build_model", "fix build_model", problem.build_model, seed=training["seed"])
    if not isinstance(model, torch.nn.Module):
        raise check.fail(f"{owner}.build_model", f"returned a {type(model).__name__}",
                         "return a torch.nn.Module (e.g. a MultiHeadNet of a trunk and one head per task)")
    model = model.to(device).train()
    outputs, losses = _forward(check, owner, problem, model, x, targets)
    layer_path, layer, fast = _shared_layer(check, owner, problem, model, losses)
    _metrics(check, owner, problem, model, splits[1], training["batch_size"], device)
    report = CheckReport(
        source=spec.source, problem=check.name, tasks=list(problem.task_names), kinds=_kinds(problem),
        sizes=tuple(len(s) for s in splits), batch=_shapes(x, targets), model=type(model).__name__,
        parameters=sum(p.numel() for p in model.parameters()), shared_layer=layer_path,
        layer=_describe(layer), fast_path=fast,
        device=str(device), where=f"host {socket.gethostname()}, pid {os.getpid()}, in {os.getcwd()}",
        epochs=training["epochs"], steps_per_epoch=-(-len(splits[0]) // training["batch_size"]),
        validations=sum(1 for e in range(1, training["epochs"] + 1) if e % training["val_every"] == 0
                        or e == training["epochs"]),
        val_seconds=check.call(f"{owner}.metrics", "fix it (the check timed the validation)", _evaluation_seconds,
                               problem, model, splits[1], device),
        test_seconds=check.call(f"{owner}.metrics", "fix it (the check timed the test)", _evaluation_seconds,
                                problem, model, splits[2], device))
    base = spec.trial_base()
    for search in spec.searches:
        trial = first_trial(spec, search, base)
        if trial is not None:
            report.steps.append(_step(check, f"searches.{search.name}", search.name, problem, trial,
                                      search.trial_count(T), x, targets))
    source = spec.recommending_search if spec.recommended_static else None
    if source is not None:  # the recommended static trials: equal weights stand in for the recommended ones
        trial = base.trial({"method": "static", "weights": [1.0] * T}, label="weights of the best trial")
        report.steps.append(_step(check, "recommended_static", f"static from {source.name}", problem, trial,
                                  source.repeats, x, targets))
    return report


def _first_batch(split: Any, batch_size: int, device: torch.device) -> tuple[Any, tuple[torch.Tensor, ...]]:
    return next(iter(iterate_batches(split, batch_size, device)))


def _forward(check: _Checker, owner: str, problem: Problem, model: torch.nn.Module, x: Any,
             targets: Any) -> tuple[Any, torch.Tensor]:
    """The model's outputs on the first batch and the losses, checked (autograd on)."""
    T = problem.num_tasks
    outputs = check.call(f"{owner}.build_model", "fix the model's forward (it ran on the first train batch)",
                         model, x)
    if not isinstance(outputs, (tuple, list)) or len(outputs) != T:
        got = f"{len(outputs)} output(s)" if isinstance(outputs, (tuple, list)) else f"a {type(outputs).__name__}"
        raise check.fail(f"{owner}.build_model", f"the model's forward returned {got} for {T} tasks",
                         "return one output per task, in task_names order (e.g. a MultiHeadNet)")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        losses = check.call(f"{owner}.task_losses", "fix task_losses", problem.task_losses, outputs, targets)
        try:  # each task's output and target shapes, as every trial checks them on its first batch
            check_target_shapes(problem, outputs, targets, losses)
        except TargetShapeError as error:
            what, _, fix = str(error).partition("; ")
            raise check.fail(f"{owner}.task_losses", what, fix) from None
    size = next((w for w in said if "target size" in str(w.message)), None)
    if size is not None:  # F.mse_loss and friends broadcast (B, 1) against (B,): a wrong loss, silently
        raise check.fail(f"{owner}.task_losses", f"torch warned: {one_line(str(size.message))[:200]}",
                         "give each output and its target the same shape (e.g. reshape the target to (B, 1))")
    if not isinstance(losses, torch.Tensor):
        raise check.fail(f"{owner}.task_losses", f"returned a {type(losses).__name__}",
                         f"return the {T} losses as one tensor: torch.stack([loss_1, ..., loss_{T}])")
    if tuple(losses.shape) != (T,):
        raise check.fail(f"{owner}.task_losses", f"returned shape {tuple(losses.shape)}",
                         f"return shape ({T},): one loss per task, each a mean over the batch "
                         f"(torch.stack of {T} scalars)")
    if not losses.requires_grad:
        raise check.fail(f"{owner}.task_losses", "returned losses that do not require grad",
                         "compute them from the outputs, with autograd on (no .item(), .detach() or no_grad)")
    finite = torch.isfinite(losses.detach())
    if not bool(finite.all()):
        task = problem.task_names[int((~finite).nonzero()[0, 0])]
        value = float(losses.detach()[problem.task_names.index(task)])
        raise check.fail(f"{owner}.task_losses", f"task {task!r}'s loss is {value} on the first train batch",
                         f"fix the loss or the data of task {task!r} (a log of 0, a NaN or inf in its targets)")
    return outputs, losses


def _shared_layer(check: _Checker, owner: str, problem: Problem, model: torch.nn.Module,
                  losses: torch.Tensor) -> tuple[str, torch.nn.Module | None, bool]:
    """GradNorm's W (the spec's or the problem's ``shared_layer``, else the model's
    ``last_shared_layer``), reached by every task's loss, and whether GradNorm takes its fast path
    there; without one, ``(why, None, False)`` (a GradNorm search then fails on its own build)."""
    path = check.spec.problem.shared_layer or problem.shared_layer
    field_name = "problem.shared_layer" if check.spec.problem.shared_layer else f"{owner}.shared_layer"
    try:
        layer = resolve_shared_layer(model, path)
    except ValueError as error:
        return one_line(str(error)).removeprefix("shared_layer: "), None, False
    path = next(name for name, module in model.named_modules() if module is layer)
    weights = [p for p in layer.parameters() if p.requires_grad]
    for index, task in enumerate(problem.task_names):
        grads = torch.autograd.grad(losses[index], weights, retain_graph=True, allow_unused=True)
        if all(g is None or not bool(g.any()) for g in grads):
            raise check.fail(field_name, f"{path!r} ({type(layer).__name__}) is not shared: task {task!r}'s loss "
                             "does not depend on it", "name the last layer that every task's output goes "
                             "through (in the trunk, before the heads)")
    gradnorm = make_balancer("gradnorm", problem.num_tasks, model=model, shared_layer=path, alpha=1.0)
    return path, layer, gradnorm.uses_branch


def _metrics(check: _Checker, owner: str, problem: Problem, model: torch.nn.Module, val: Any, batch_size: int,
             device: torch.device) -> None:
    """A metrics pass over the first validation batch: every task's normalized error, finite."""
    x, targets = _first_batch(val, batch_size, device)
    with torch.no_grad():
        model.eval()
        outputs = model(x)
        model.train()
    computed = check.call(f"{owner}.metrics", "fix metrics() (it ran on the first validation batch)",
                          problem.task_metrics, outputs, targets)
    if not isinstance(computed, dict):
        raise check.fail(f"{owner}.metrics", f"compute() returned a {type(computed).__name__}",
                         "return a gradnorm_core Metrics accumulator (its compute() gives a dict)")
    for task in problem.task_names:
        key = f"{task}/normalized_error"
        if key not in computed:
            raise check.fail(f"{owner}.metrics", f"compute() has no {key!r} (it has: {', '.join(computed) or 'none'})",
                             f"add a metric of task {task!r} giving its normalized error (e.g. ErrorRate({task!r}, i) "
                             f"or NormalizedMSE({task!r}, i))")
        if not math.isfinite(computed[key]):
            raise check.fail(f"{owner}.metrics", f"{key} is {computed[key]} on the first validation batch",
                             f"check task {task!r}'s metric and validation targets (e.g. all equal: no variance)")


def _step(check: _Checker, where: str, row: str, problem: Problem, trial: Any, trials: int, x: Any,
          targets: Any) -> MethodStep:
    """The trial's method built on a fresh model, one untimed step checked, then timed ones."""
    method = trial.balancer.method
    try:
        _, model, balancer = trial.build(problem)
    except TrialConfigError as error:
        what, _, fix = error.what.partition("; ")
        raise check.fail(where, f"method {method!r}: {what}", fix or "fix the search's options") from None
    training = check.call(where, f"fix the model for method {method!r}", fit, problem, balancer, model=model,
                          **trial.training.model_dump())
    check.call(where, f"fix the problem for method {method!r}, or the search's options", training.step, x, targets)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise check.fail(where, f"one step of method {method!r} made the model's parameters non-finite",
                         "lower training.lr, or clip the gradients (training.clip_grad_norm)")
    seconds = []
    for _ in range(TIMED_STEPS):
        _synchronize(training.device)
        start = time.perf_counter()
        training.step(x, targets)
        _synchronize(training.device)
        seconds.append(time.perf_counter() - start)
    return MethodStep(row, method, trial.label, trials, min(seconds))


def _evaluation_seconds(problem: Problem, model: torch.nn.Module, split: Any, device: torch.device) -> float:
    """One pass of ``problem.evaluate`` over ``split``, from its first evaluation batch (1024 items,
    as the training evaluates) timed; a :class:`Split` on the device, as the training holds it."""
    count = min(1024, len(split))
    part = Split(*split.batch(slice(0, count))).to(device) if isinstance(split, Split) else Subset(split, range(count))
    seconds = []
    for _ in range(2):  # the faster of two: the first one warms up
        _synchronize(device)
        start = time.perf_counter()
        problem.evaluate(model, part)
        _synchronize(device)
        seconds.append(time.perf_counter() - start)
    return min(seconds) * len(split) / count


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _describe(layer: torch.nn.Module | None) -> str:
    if layer is None:
        return "none"
    return f"{type(layer).__name__}, {sum(p.numel() for p in layer.parameters()):,} parameters"


def _kinds(problem: Problem) -> list[str] | None:
    try:
        return list(problem.task_kinds())
    except ValueError:
        return None


def _shapes(x: Any, targets: Any) -> str:
    def shape(value: Any) -> str:
        return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__
    return f"x {shape(x)}, targets {', '.join(shape(t) for t in targets)}"
