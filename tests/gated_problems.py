"""A problem whose trials wait at a gate until the test opens it, for the interrupt tests: the
test then knows where the sweep stands when it stops the driver (trials held mid-way, others not
started), whatever the machine's speed.

``GatedDigits(gate=DIR, at=k, free=n, num_train=..., ...)`` is MultiDigits whose trials, at
their ``k``-th training step in this process, each take a ticket (``DIR/ticket-0``, ``-1``, ...:
the order in which they got there); the first ``n`` go on, the others wait until the file
``DIR/open`` exists (polled). Without ``gate`` (or once it is open) it trains exactly as
MultiDigits with the same options: the gate changes no number.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import torch

from gradnorm_core.problems import MultiDigits

__all__ = ["GatedDigits", "open_gate"]


def open_gate(gate: str | Path) -> None:
    """Let every waiting trial (and every later one) go on."""
    (Path(gate) / "open").touch()


class GatedDigits(MultiDigits):
    def __init__(self, gate: str | None = None, at: int = 1, free: int = 0, num_train: int = 4000,
                 num_val: int = 1000, num_test: int = 1000, seed: int = 0) -> None:
        super().__init__(num_train=num_train, num_val=num_val, num_test=num_test, seed=seed)
        self.gate, self.at, self.free = gate, int(at), int(free)
        self._steps = 0

    def task_losses(self, outputs, targets):
        if torch.is_grad_enabled():  # a training step (evaluation runs without gradients)
            self._steps += 1
            if self._steps == self.at and self.gate is not None:
                self._wait()
        return super().task_losses(outputs, targets)

    def _wait(self) -> None:
        gate = Path(self.gate)
        for ticket in itertools.count():
            try:
                os.close(os.open(gate / f"ticket-{ticket}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                break
            except FileExistsError:
                continue
        if ticket < self.free:
            return
        while not (gate / "open").exists():
            time.sleep(0.05)
