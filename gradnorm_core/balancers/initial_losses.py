"""GradNorm's L_i(0), the loss each task's progress is measured against: by rule or given. How a
trial's option is resolved for its problem (:func:`resolve_initial_losses`), and how GradNorm
checks the value it is given (:func:`check_initial_losses`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..problems.base import Problem

# How GradNorm's L_i(0) is chosen, by name: "first_step", the losses of the first step (the
# paper's default); "chance", the problem's chance-level losses (Problem.chance_losses(), the loss
# of the best constant prediction on the train split). Otherwise initial_losses is T numbers.
FIRST_STEP = "first_step"
CHANCE = "chance"
INITIAL_LOSS_RULES: tuple[str, ...] = (FIRST_STEP, CHANCE)


def resolve_initial_losses(value: object, problem: "Problem", *, read_data: bool = True) -> list[float] | None:
    """GradNorm's ``initial_losses`` option, resolved for ``problem``.

    * ``"first_step"`` (or None) -> None: GradNorm takes the losses of its first step;
    * ``"chance"`` -> ``problem.chance_losses()``, checked to be T finite positive numbers;
    * a list (or tuple) of T numbers -> those numbers as floats (GradNorm checks their signs).

    Anything else raises a one-line ValueError starting ``initial_losses:``. With
    ``read_data=False`` (a check before any data is read), ``"chance"`` is only checked to be
    defined by the problem, and gives None.
    """
    from ..problems.base import Problem

    count = problem.num_tasks
    if value is None or (isinstance(value, str) and value == FIRST_STEP):
        return None
    if isinstance(value, str) and value == CHANCE:
        if not read_data and type(problem).chance_losses is not Problem.chance_losses:
            return None  # defined: computing it reads the train split
        return _chance_losses(problem)
    if getattr(value, "ndim", None) == 1 and hasattr(value, "tolist"):  # a 1-D tensor or array
        value = value.tolist()
    if (
        isinstance(value, (list, tuple))
        and len(value) == count
        and all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        return [float(v) for v in value]
    raise ValueError(
        f"initial_losses: must be '{FIRST_STEP}', '{CHANCE}' or a list of {count} numbers, "
        f"got {value!r}"
    )


def _chance_losses(problem: "Problem") -> list[float]:
    name = getattr(problem, "name", type(problem).__name__)
    try:
        values = problem.chance_losses()
    except NotImplementedError as error:
        raise ValueError(f"initial_losses: '{CHANCE}' needs {error}") from None
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(
            f"initial_losses: problem {name!r}'s chance_losses() must return numbers, got {values!r}"
        ) from None
    if len(values) != problem.num_tasks:
        raise ValueError(
            f"initial_losses: problem {name!r}'s chance_losses() returned {len(values)} values "
            f"for {problem.num_tasks} tasks"
        )
    for task, loss in zip(problem.task_names, values):
        if not (math.isfinite(loss) and loss > 0):
            raise ValueError(
                f"initial_losses: '{CHANCE}' gives task {task!r} a chance-level loss of {loss!r} "
                f"(e.g. its train targets are all equal), and GradNorm divides by it: use "
                f"'{FIRST_STEP}' or a list of positive numbers"
            )
    return values


def check_initial_losses(value: Sequence[float] | torch.Tensor | str | None, num_tasks: int) -> torch.Tensor | None:
    """GradNorm's ``initial_losses`` as given to its constructor: None (or ``"first_step"``) -> None,
    the losses of the first step; T finite positive numbers -> a float64 CPU tensor of them.
    ``"chance"`` needs the problem (:func:`resolve_initial_losses`); it and anything else raise a
    one-line ValueError."""
    if isinstance(value, str):
        if value == FIRST_STEP:
            return None
        if value == CHANCE:
            raise ValueError(
                f"initial_losses '{CHANCE}' needs the problem: pass initial_losses=problem.chance_losses() "
                f"(or resolve_initial_losses(value, problem))"
            )
        raise ValueError(f"initial_losses must be '{FIRST_STEP}', '{CHANCE}' or {num_tasks} numbers, got {value!r}")
    if value is None:
        return None
    initial = torch.as_tensor(value, dtype=torch.float64).detach().cpu().clone()
    if initial.shape != (num_tasks,):
        raise ValueError(
            f"initial_losses must have {num_tasks} values, one per task, got shape {tuple(initial.shape)}"
        )
    if not bool(torch.isfinite(initial).all()):
        raise ValueError("initial_losses must be finite")
    check_positive_initial_losses(initial)
    return initial


def check_positive_initial_losses(initial: torch.Tensor) -> None:
    """A one-line ValueError for an L_i(0) <= 0 (GradNorm divides by it)."""
    bad = (initial <= 0).nonzero()
    if bad.numel():
        task = int(bad[0, 0])
        raise ValueError(
            f"initial loss of task {task} is {float(initial[task])}, but GradNorm divides by it: "
            f"pass initial_losses with positive values (e.g. the losses of an untrained model)"
        )
