"""A task's target broadcast against an output of another shape: the mistake that trains silently.

A regression head that outputs ``(B, 1)`` and a target of shape ``(B,)`` broadcast, in
``F.mse_loss`` (which warns) or in a loss written by hand (which does not), to ``(B, B)``: every
output is compared with every target of the batch, the loss no longer depends on which target goes
with which output, and the task trains towards the batch's mean. :func:`check_target_shapes` finds
it on one batch, at the cost of one more evaluation of the losses without a graph: the training
loop runs it on its first batch (so does ``gradnorm-tune check``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["TargetShapeError", "check_target_shapes"]

#: how close the loss computed with the target's rows in another order must be to the loss to
#: say that it does not depend on the order (float32 sums in another order differ by ~1e-7)
RELATIVE_TOLERANCE = 1e-5


class TargetShapeError(ValueError):
    """A task's loss broadcast its target against an output of another shape; one line,
    ``"<what>; <fix>"``, naming the task (``task``)."""

    def __init__(self, task: str, output: tuple[int, ...], target: tuple[int, ...], shape: tuple[int, ...]) -> None:
        self.task = task
        fix = (f"give the output and its target the same shape (e.g. the target as {output}, its reshape in "
               "load_data or task_losses)")
        super().__init__(f"task {task!r}: its loss broadcast the target {target} against the output {output} to "
                         f"{shape} on the first batch (it compares every output with every target); {fix}")


def _suspect(output: Any, target: Any) -> torch.Size | None:
    """The broadcast shape of an output and a floating-point target of different shapes, when it
    holds more elements than either (a per-sample loss would hold as many as the larger); else None.
    Class indices (integer targets, ``(B,)`` against ``(B, C)`` logits) are left alone."""
    if not (isinstance(output, torch.Tensor) and isinstance(target, torch.Tensor)):
        return None
    if output.shape == target.shape or not target.is_floating_point() or target.dim() == 0 or target.shape[0] < 2:
        return None
    try:
        shape = torch.broadcast_shapes(output.shape, target.shape)
    except RuntimeError:
        return None
    return shape if shape.numel() > max(output.numel(), target.numel()) else None


def _cuda_devices(outputs: Sequence[Any]) -> list[int]:
    return sorted({output.device.index or 0 for output in outputs
                   if isinstance(output, torch.Tensor) and output.device.type == "cuda"})


def check_target_shapes(problem: Any, outputs: Sequence[Any], targets: Sequence[Any], losses: Any) -> None:
    """Raise :class:`TargetShapeError` if a task's loss (``losses``, what ``problem.task_losses``
    gave for ``outputs`` and ``targets`` on one batch) broadcast its target against its output.

    A task is suspect when its output and its floating-point target differ in shape and broadcast
    to more elements than either holds (``(B, 1)`` and ``(B,)`` give ``(B, B)``). Its loss is then
    computed again, without a graph, with that target's rows rolled by one (the same values, each
    now beside another output): a loss that pairs each output with its own target changes, one
    that compares every output with every target does not. Only an unchanged loss is a mistake, so
    a loss that reshapes the output itself (``F.mse_loss(output.squeeze(1), target)``) passes. A
    batch whose rows are all equal, a non-finite loss, or a ``task_losses`` that raises on the
    rolled batch tells nothing, and passes. The second look draws nothing from torch's random
    generators."""
    if not (isinstance(outputs, (tuple, list)) and isinstance(targets, (tuple, list))
            and isinstance(losses, torch.Tensor) and losses.dim() == 1):
        return
    names = list(getattr(problem, "task_names", ())) or [str(i) for i in range(len(targets))]
    detached = [output.detach() if isinstance(output, torch.Tensor) else output for output in outputs]
    for index, (output, target) in enumerate(zip(outputs, targets)):
        shape = _suspect(output, target)
        if shape is None or index >= losses.numel():
            continue
        rolled = target.roll(1, dims=0)
        if torch.equal(rolled, target):
            continue
        others = list(targets)
        others[index] = rolled
        try:
            # without a graph, and without drawing from the random generators (a loss that samples
            # would otherwise shift a restored run's numbers from an uninterrupted one's)
            with torch.no_grad(), torch.random.fork_rng(devices=_cuda_devices(detached)):
                again = problem.task_losses(detached, type(targets)(others) if isinstance(targets, tuple) else others)
            before, after = float(losses[index].detach()), float(again[index])
        except Exception:  # noqa: BLE001 - the user's loss on a batch it did not expect: no verdict
            continue
        if not (abs(before) < float("inf") and abs(after) < float("inf")):
            continue
        if abs(after - before) <= RELATIVE_TOLERANCE * max(abs(before), 1e-12):
            task = names[index] if index < len(names) else str(index)
            raise TargetShapeError(task, tuple(output.shape), tuple(target.shape), tuple(shape))
