"""A gate that holds trials mid-way, for the fault tests: a fault (a node killed, the driver
killed, a signal, the tracking server down) then lands while the trial runs, however fast or slow
the machine, and the test says when the trial may go on.

In a spec, ``problem: {name: "fault_gate:gated", options: {problem: NAME, gate: DIR, after: K,
hold: ..., ...NAME's options}}`` is problem ``NAME`` whose training stops at its step K + 1 (the
first of an epoch, where K is a whole number of epochs' steps; a trial restored from a checkpoint
counts its steps again from there), and there:

- ``hold: null``: every trial, each time, waits until the file ``DIR/open`` exists;
- ``hold: [n, ...]``: the n-th trial to get there (in the order they come; a file
  ``DIR/trial-n`` each, holding its Tune trial id) waits until ``DIR/open`` or ``DIR/open-n``
  exists; other trials, and a held trial once restored, go on.

The tests import :class:`Gate`; the trials import :func:`gated` (from the tests' folder on the
Python path, or from a copy of this file shipped with the sweep's ``working_dir``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from gradnorm_core import Problem, make_problem


def gated(problem: str, gate: str, after: int, hold: list[int] | None = None, **options: Any) -> Problem:
    """``make_problem(problem, **options)``, stopped at its training step ``after + 1`` (see above)."""
    inner = make_problem(problem, **options)
    task_losses = inner.task_losses
    steps = 0

    def held_task_losses(outputs, targets):
        nonlocal steps
        if torch.is_grad_enabled():  # a training step (evaluation runs without gradients)
            steps += 1
            if steps == after + 1:
                wait_at(Path(gate), hold)
        return task_losses(outputs, targets)

    inner.task_losses = held_task_losses
    return inner


def wait_at(gate: Path, hold: list[int] | None) -> None:
    if hold is None:
        wait_for(gate / "open")
        return
    from ray import tune

    trial = tune.get_context().get_trial_id()
    if any(path.read_text() == trial for path in gate.glob("trial-*")):
        return  # restored: it was here before
    number = 1
    while True:  # the next trial number, taken atomically
        try:
            descriptor = os.open(gate / f"trial-{number}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            number += 1
    with os.fdopen(descriptor, "w") as file:
        file.write(trial)
    if number in hold:
        wait_for(gate / "open", gate / f"open-{number}")


def wait_for(*paths: Path) -> None:
    while not any(path.exists() for path in paths):
        time.sleep(0.05)


class Gate:
    """The test's side of a gate in folder ``path`` (created closed)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def problem(self, name: str, after: int, hold: list[int] | None = None, module: str = "fault_gate",
                **options: Any) -> dict[str, Any]:
        """A spec's ``problem``: ``name`` with ``options``, stopped at this gate after ``after``
        steps (``module``: where the trials import this module from)."""
        return {"name": f"{module}:gated",
                "options": {"problem": name, "gate": str(self.path), "after": after, "hold": hold, **options}}

    def open(self, number: int | None = None) -> None:
        """Every trial goes on, or (``number``) the n-th one held."""
        (self.path / ("open" if number is None else f"open-{number}")).touch()

    @staticmethod
    def ship(folder: Path) -> Path:
        """A copy of this module in ``folder`` (a sweep's ``working_dir``, for nodes that do not
        see the tests' folder); ``folder`` returned."""
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(__file__, folder / "fault_gate.py")
        return folder
