"""The interface every loss-balancing method implements, and the input checks they share."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from torch import nn


class NonFiniteLossError(ValueError):
    """A task loss was NaN or infinite; the balancer's state was left untouched. ``task``: its
    index, ``value``: the loss, ``step``: the balancer's step count (None where not known)."""

    def __init__(self, message: str, *, task: int | None = None, value: float | None = None,
                 step: int | None = None) -> None:
        super().__init__(message)
        self.task, self.value, self.step = task, value, step


class Balancer(ABC):
    """Turns T task losses into the network's gradient, and keeps the task weights.

    A balancer is used in place of ``loss.backward()``::

        optimizer.zero_grad()
        balancer.backward(losses)   # 1-D tensor of the T task losses
        optimizer.step()
        balancer.end_epoch()        # once per epoch; only epoch-based methods (DWA) use it

    ``backward`` fills the gradients of the model's parameters and updates the method's own
    state (its weights, their optimizer, its step counter) in the same call. On bad input it
    raises before anything is changed.

    A method that learns from the losses *after* the optimizer's step (FAMO) says so with
    ``wants_losses_after_step``; the training loop then re-evaluates the task losses on the same
    batch, once the optimizer has stepped (one forward pass under ``torch.no_grad()``, no
    backward), and hands them to :meth:`after_step`::

        optimizer.step()
        if balancer.wants_losses_after_step:
            with torch.no_grad():
                balancer.after_step(task_losses(model(x), targets))   # the same x and targets

    A subclass registers its name with :func:`~.registry.register`; its constructor's other
    parameters are its options (see :mod:`.registry`), built by :meth:`build`.
    """

    #: Constructor parameters that :meth:`build` fills from the model (GradNorm's
    #: ``shared_params``, its W): a balancer with any needs the model, and they are no options.
    MODEL_ARGUMENTS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def build(cls, num_tasks: int, model: nn.Module | None = None, shared_layer: str | None = None,
              **options: Any) -> Balancer:
        """The balancer for ``num_tasks`` tasks of ``model`` (W at ``shared_layer``), with
        ``options`` already checked (:func:`~.registry.make_balancer` calls it). By default
        ``cls(num_tasks, **options)``; a balancer that needs the model or derives its task count
        otherwise overrides it."""
        return cls(num_tasks, **options)

    #: whether :meth:`after_step` must be called after each optimizer step (an instance may
    #: override it, e.g. from an option)
    wants_losses_after_step: bool = False

    def __init__(self, num_tasks: int) -> None:
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"num_tasks must be an integer >= 1, got {num_tasks!r}")
        self.num_tasks = num_tasks
        self.step_count = 0

    @abstractmethod
    def backward(self, losses: torch.Tensor) -> None:
        """Backpropagate the weighted losses into the model and update the method's state."""

    @property
    @abstractmethod
    def weights(self) -> torch.Tensor:
        """The current task weights, a detached 1-D tensor of length ``num_tasks``."""

    def shared_parameters(self) -> list[torch.Tensor]:
        """Model parameters this balancer is bound to (GradNorm's W); empty for most methods."""
        return []

    @property
    def uses_branch(self) -> bool:
        """Whether the model's forward must give each head its own view of the shared features
        through :meth:`branch` (GradNorm's single-backward fast path; the training loop then calls
        ``model(x, branch=balancer.branch)``). False for most methods."""
        return False

    def branch(self, features: torch.Tensor) -> list[torch.Tensor]:
        """One view of ``features`` per head; by default ``features`` itself, T times."""
        return [features] * self.num_tasks

    def end_epoch(self) -> None:
        """Called by the training loop after each epoch. Most methods ignore it."""

    def after_step(self, losses: torch.Tensor) -> None:
        """Learn from ``losses``, the T task losses re-evaluated on this step's batch after the
        optimizer's step. Called only when ``wants_losses_after_step``; the others ignore it."""

    def state_dict(self) -> dict[str, Any]:
        return {"num_tasks": self.num_tasks, "step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("num_tasks") != self.num_tasks:
            raise ValueError(
                f"state_dict is for num_tasks={state.get('num_tasks')!r}, but this "
                f"{type(self).__name__} has num_tasks={self.num_tasks}; build it with the same num_tasks"
            )
        self.step_count = int(state["step_count"])

    def check_losses(self, losses: torch.Tensor, *, after_step: bool = False) -> None:
        """Raise a one-line error unless ``losses`` is a finite 1-D tensor of ``num_tasks`` losses.

        Called by ``backward`` before it changes anything, so a bad step leaves no trace. With
        ``after_step`` (the losses :meth:`after_step` is given, evaluated without a graph) no
        gradient is needed, and the messages say where they come from.
        """
        where, when = ("after_step: ", "after") if after_step else ("", "at")
        if not isinstance(losses, torch.Tensor):
            raise TypeError(
                f"{where}losses must be a 1-D tensor of {self.num_tasks} task losses "
                f"(e.g. torch.stack([loss_1, ...])), got {type(losses).__name__}"
            )
        if losses.dim() != 1 or losses.shape[0] != self.num_tasks:
            raise ValueError(
                f"{where}losses must have shape ({self.num_tasks},), one loss per task, "
                f"got shape {tuple(losses.shape)}"
            )
        if not after_step and not losses.requires_grad:
            raise ValueError(
                "losses do not require grad: compute them from the model's outputs "
                "with autograd enabled (not under torch.no_grad())"
            )
        finite = torch.isfinite(losses.detach())
        if not bool(finite.all()):
            task = int((~finite).nonzero()[0, 0])
            value = float(losses.detach()[task])
            raise NonFiniteLossError(
                f"{where}losses[{task}] is {value} {when} step {self.step_count}: task {task}'s loss is "
                f"not finite; the balancer's state is unchanged (lower the learning rate or check "
                f"that task's data)", task=task, value=value, step=self.step_count
            )


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise a one-line error naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


def check_numbers(name: str, values: Any, count: int | None = None, *, minimum: float | None = None) -> list[float]:
    """``values`` as a list of finite floats, one per task: a sequence (no string) of numbers,
    ``count`` of them where given (else at least one), each ``>= minimum`` where given. Anything
    else raises a one-line error naming ``name``, or the entry ``name[i]`` at fault."""
    shape = f"{name} must be a list of {'' if count is None else f'{count} '}numbers, one per task (e.g. [1.0, 0.5])"
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{shape}, got {values!r}")
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"{shape}, got {values!r}") from None
    if count is not None and len(items) != count:
        raise ValueError(f"{name} must hold {count} numbers, one per task, got {values!r}")
    if not items:
        raise ValueError(f"{name} must have one entry per task, got an empty sequence")
    numbers = []
    for index, item in enumerate(items):
        if isinstance(item, (bool, str, bytes)):
            raise TypeError(f"{name}[{index}] must be a number, got {item!r}")
        try:
            number = float(item)
        except (TypeError, ValueError):
            raise TypeError(f"{name}[{index}] must be a number, got {item!r}") from None
        if not math.isfinite(number) or (minimum is not None and number < minimum):
            bound = "" if minimum is None else f" >= {minimum:g}"
            raise ValueError(f"{name}[{index}] must be a finite number{bound}, got {item!r}")
        numbers.append(number)
    return numbers


class VectorOptimizer:
    """Adam or plain SGD for a method's own T numbers (task weights, log-variances), on the host.

    ``"adam"`` is ``torch.optim.Adam`` with its defaults (betas 0.9, 0.999, eps 1e-8): the same
    formulas in the same order, in float64; ``"sgd"`` is ``value -= lr * grad`` (no momentum).
    The update is O(T) scalar work done once per training step: as Python floats it costs a few
    microseconds, where a chain of T-element tensor operations costs a dispatch (or a kernel
    launch) each.
    """

    BETAS = (0.9, 0.999)
    EPS = 1e-8

    def __init__(self, kind: str, lr: float) -> None:
        if kind not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {kind!r}")
        self.kind = kind
        self.lr = lr
        self.steps = 0
        self.exp_avg: list[float] | None = None
        self.exp_avg_sq: list[float] | None = None

    def step(self, values: list[float], grads: list[float]) -> list[float]:
        """The values after one update."""
        self.steps += 1
        lr = self.lr
        if self.kind == "sgd":
            return [value - lr * grad for value, grad in zip(values, grads)]
        beta1, beta2 = self.BETAS
        if self.exp_avg is None or self.exp_avg_sq is None:
            self.exp_avg = [0.0] * len(values)
            self.exp_avg_sq = [0.0] * len(values)
        self.exp_avg = [m + (1 - beta1) * (g - m) for m, g in zip(self.exp_avg, grads)]
        self.exp_avg_sq = [v * beta2 + (1 - beta2) * (g * g) for v, g in zip(self.exp_avg_sq, grads)]
        step_size = lr / (1 - beta1**self.steps)
        correction = math.sqrt(1 - beta2**self.steps)
        return [
            value - step_size * (m / (math.sqrt(v) / correction + self.EPS))
            for value, m, v in zip(values, self.exp_avg, self.exp_avg_sq)
        ]

    def state_dict(self) -> dict[str, Any]:
        as_tensor = (lambda xs: None if xs is None else torch.tensor(xs, dtype=torch.float64))
        return {
            "kind": self.kind,
            "lr": self.lr,
            "steps": self.steps,
            "exp_avg": as_tensor(self.exp_avg),
            "exp_avg_sq": as_tensor(self.exp_avg_sq),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["kind"] != self.kind or float(state["lr"]) != self.lr:
            raise ValueError(
                f"state was saved with optimizer={state['kind']!r}, lr={state['lr']!r}, but this "
                f"one has optimizer={self.kind!r}, lr={self.lr!r}; build it with the same settings"
            )
        as_list = (lambda t: None if t is None else torch.as_tensor(t).double().tolist())
        self.steps = int(state["steps"])
        self.exp_avg = as_list(state["exp_avg"])
        self.exp_avg_sq = as_list(state["exp_avg_sq"])
