"""The training loop's optimisation settings: optimizer, learning-rate schedule, gradient clipping,
precision, and when to validate and test. They are fields of
:class:`~gradnorm_core.train_config.TrainConfig`; :class:`~gradnorm_core.training.Training` uses
the helpers here.

* ``optimizer``: ``"adam"`` (default), ``"adamw"`` (decoupled weight decay) or ``"sgd"``
  (``momentum``, default 0, and ``nesterov``, default False, which needs momentum > 0).
  ``weight_decay`` applies to all three (Adam and SGD: L2 added to the gradient; AdamW:
  decoupled). Betas and eps are torch's defaults.
* ``schedule``: the network's learning rate, updated after **every optimizer step** (not per
  epoch). Step s = 0, 1, ... of S = ``epochs * steps_per_epoch`` uses ``lr * factor(s)``:

  - warm-up (``warmup_epochs``, W = warmup_epochs * steps_per_epoch steps, default 0):
    factor(s) = (s + 1) / (W + 1) for s < W, a line from 0 (excluded) that reaches ``lr`` at
    the first step after the warm-up;
  - ``"none"`` (default): 1 after the warm-up;
  - ``"cosine"``: 0.5 * (1 + cos(pi * (s - W) / (S - W))) after the warm-up: ``lr`` at its first
    step, decaying to 0 at the end of the last epoch (the last step's factor is just above 0);
  - ``"step"``: gamma ** (e // step_size) after the warm-up, e = (s - W) // steps_per_epoch the
    number of whole epochs since the warm-up ended (so ``lr`` for step_size epochs after it).

  After the warm-up, each schedule runs over the remaining epochs as if training started there.

  Only the network's optimizer is scheduled; a balancer's own optimizer (GradNorm's weights)
  keeps its learning rate.
* ``clip_grad_norm``: None (default) or a max norm > 0: ``torch.nn.utils.clip_grad_norm_`` on
  the model's parameters after the balancer's backward, before the optimizer step.
* ``precision``: ``"fp32"`` (default) or ``"bf16"``: ``torch.autocast`` with bfloat16 on the
  training device (CUDA, or CPU where it is supported, as in CI) around the forward pass and
  the task losses; the losses are cast to float32 before the balancer's backward. No
  GradScaler: bfloat16 needs none (and GradNorm applies none). Evaluation runs in float32.
* ``val_every``: validate after epochs val_every, 2 * val_every, ... and always after the last
  one. The test split is evaluated only after a validation that improves on the best score so
  far (strictly lower; the first validation always does) and after the last epoch, so the best
  validation epoch always has test numbers.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

__all__ = [
    "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "EvaluationPlan", "LearningRateFactor",
    "autocast", "check_options", "clip_gradients", "make_optimizer", "make_scheduler",
]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
PRECISIONS = ("fp32", "bf16")
DEFAULT_GAMMA = 0.1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _choice(name: str, value: Any, choices: tuple[str, ...], example: str) -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"{name}: unknown {name} {value!r}; {hint}choose one of: {', '.join(choices)} "
                         f"(e.g. {name}: {example})")


def check_options(config: Any) -> None:
    """A one-line ValueError ``"<field>: <what>; <fix>"`` for the first bad setting of ``config``
    (a TrainConfig) among the ones this module owns."""
    _choice("optimizer", config.optimizer, OPTIMIZERS, "adamw")
    if not _is_number(config.momentum) or not 0 <= config.momentum < 1:
        raise ValueError(f"momentum: must be a number in [0, 1), got {config.momentum!r}; e.g. momentum: 0.9")
    if config.momentum != 0 and config.optimizer != "sgd":
        raise ValueError(f"momentum: only optimizer 'sgd' takes momentum, not {config.optimizer!r}; "
                         "set optimizer: sgd or remove momentum")
    if not isinstance(config.nesterov, bool):
        raise ValueError(f"nesterov: must be true or false, got {config.nesterov!r}; e.g. nesterov: true")
    if config.nesterov and config.optimizer != "sgd":
        raise ValueError(f"nesterov: only optimizer 'sgd' takes nesterov, not {config.optimizer!r}; "
                         "set optimizer: sgd or remove nesterov")
    if config.nesterov and config.momentum == 0:
        raise ValueError("nesterov: Nesterov momentum needs momentum > 0; set e.g. momentum: 0.9")
    _choice("schedule", config.schedule, SCHEDULES, "cosine")
    warmup = config.warmup_epochs
    if not _is_int(warmup) or warmup < 0:
        raise ValueError(f"warmup_epochs: must be a whole number >= 0, got {warmup!r}; e.g. warmup_epochs: 1")
    if warmup >= config.epochs:
        raise ValueError(f"warmup_epochs: {warmup} leaves no epoch after the warm-up (epochs is "
                         f"{config.epochs}); give fewer warm-up epochs than epochs")
    if config.step_size is not None and (not _is_int(config.step_size) or config.step_size < 1):
        raise ValueError(f"step_size: must be a whole number of epochs >= 1, got {config.step_size!r}; "
                         "e.g. step_size: 10")
    if config.schedule == "step" and config.step_size is None:
        raise ValueError("step_size: schedule 'step' needs step_size, the epochs between decays; "
                         "e.g. step_size: 10")
    if config.schedule != "step" and config.step_size is not None:
        raise ValueError(f"step_size: only schedule 'step' takes step_size, not {config.schedule!r}; "
                         "set schedule: step or remove step_size")
    if not _is_number(config.gamma) or not 0 < config.gamma <= 1:
        raise ValueError(f"gamma: must be a number in (0, 1], got {config.gamma!r}; e.g. gamma: 0.5")
    if config.schedule != "step" and config.gamma != DEFAULT_GAMMA:
        raise ValueError(f"gamma: only schedule 'step' takes gamma, not {config.schedule!r}; "
                         "set schedule: step or remove gamma")
    clip = config.clip_grad_norm
    if clip is not None and (not _is_number(clip) or clip <= 0):
        raise ValueError(f"clip_grad_norm: must be a number > 0 or null (no clipping), got {clip!r}; "
                         "e.g. clip_grad_norm: 1.0")
    _choice("precision", config.precision, PRECISIONS, "bf16")
    if not _is_int(config.val_every) or config.val_every < 1:
        raise ValueError(f"val_every: must be a whole number of epochs >= 1, got {config.val_every!r}; "
                         "e.g. val_every: 5")


def make_optimizer(parameters: Iterable[nn.Parameter], config: Any) -> torch.optim.Optimizer:
    """The network's optimizer for ``config`` (a checked TrainConfig)."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov, weight_decay=config.weight_decay)
    return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)


class LearningRateFactor:
    """factor(s), the multiple of ``lr`` that optimizer step s (0-based) uses (module docstring).

    A plain object (not a closure) so that ``LambdaLR.state_dict()`` keeps its settings."""

    def __init__(self, schedule: str, epochs: int, steps_per_epoch: int, warmup_epochs: int = 0,
                 step_size: int | None = None, gamma: float = DEFAULT_GAMMA) -> None:
        self.schedule = schedule
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = epochs * steps_per_epoch
        self.warmup_steps = warmup_epochs * steps_per_epoch
        self.step_size = step_size
        self.gamma = gamma

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if self.schedule == "cosine":
            decay_steps = self.total_steps - self.warmup_steps
            progress = min(step - self.warmup_steps, decay_steps) / decay_steps
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.schedule == "step":
            epochs_after_warmup = (step - self.warmup_steps) // self.steps_per_epoch
            return self.gamma ** (epochs_after_warmup // self.step_size)
        return 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, config: Any,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR | None:
    """A ``LambdaLR`` stepped after every optimizer step, or None for a constant learning rate
    (``schedule: none`` without warm-up: the optimizer alone, as before schedules existed)."""
    if config.schedule == "none" and config.warmup_epochs == 0:
        return None
    factor = LearningRateFactor(config.schedule, config.epochs, steps_per_epoch, config.warmup_epochs,
                                config.step_size, config.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` for ``precision == "bf16"``; nothing for ``"fp32"``."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def clip_gradients(model: nn.Module, max_norm: float | None) -> None:
    """Scale the model's gradients to a total 2-norm of at most ``max_norm`` (None: no clipping)."""
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


class EvaluationPlan:
    """Which epochs validate and test, and the best validation score so far (resumable).

    ``validates(epoch)``: epoch is a multiple of ``val_every`` or the last one.
    ``tests(epoch, score)``: ``score`` (None: not validated) is strictly below the best so far
    (or the first), which it then becomes, or ``epoch`` is the last one.
    """

    def __init__(self, val_every: int, epochs: int) -> None:
        self.val_every = val_every
        self.epochs = epochs
        self.best: float | None = None

    def validates(self, epoch: int) -> bool:
        return epoch % self.val_every == 0 or epoch >= self.epochs

    def tests(self, epoch: int, score: float | None) -> bool:
        improved = score is not None and (self.best is None or score < self.best)
        if improved:
            self.best = score
        return improved or epoch >= self.epochs
