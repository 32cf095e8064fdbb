"""What ``gradnorm-tune check`` found (:class:`CheckReport`), and how it reads."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CheckReport", "MethodStep"]


@dataclass
class MethodStep:
    """One search's first trial: its method, what it varied, its trials, one step's seconds."""

    search: str
    method: str
    label: str
    trials: int
    step_seconds: float


@dataclass
class CheckReport:
    """What the check found (see :meth:`lines`); ``val_seconds`` / ``test_seconds``: one pass over
    the validation / test split, estimated from one evaluation batch."""

    source: str
    problem: str
    tasks: list[str]
    kinds: list[str] | None
    sizes: tuple[int, int, int]
    batch: str
    model: str
    parameters: int
    shared_layer: str
    layer: str
    fast_path: bool
    device: str
    where: str
    epochs: int
    steps_per_epoch: int
    validations: int
    val_seconds: float
    test_seconds: float
    steps: list[MethodStep] = field(default_factory=list)

    def trial_seconds(self, step: MethodStep) -> float:
        """One trial's estimated compute: its steps, its validations and a test pass at the end."""
        return (self.epochs * self.steps_per_epoch * step.step_seconds + self.validations * self.val_seconds
                + self.test_seconds)

    def lines(self) -> list[str]:
        kinds = [f"{task} ({kind})" for task, kind in zip(self.tasks, self.kinds)] if self.kinds else self.tasks
        path = "fast path, one backward pass per step" if self.fast_path else \
            "plain path, one more partial backward pass per task and step"
        layer = f"{self.shared_layer} ({self.layer}): {path}" if self.layer != "none" else self.shared_layer
        train, val, test = self.sizes
        total = sum(step.trials * self.trial_seconds(step) for step in self.steps)
        lines = [
            f"check of {self.source}: problem {self.problem}",
            f"  ran on: {self.where}, device {self.device}",
            f"  tasks: {len(self.tasks)}: {', '.join(kinds)}",
            f"  data: train {train}, val {val}, test {test} items; first batch: {self.batch}",
            f"  model: {self.model}, {self.parameters:,} parameters",
            f"  GradNorm's W: {layer}",
            f"  one step of each search's first trial ({self.steps_per_epoch} steps per epoch):",
        ]
        width = max(len(step.search) for step in self.steps)
        for step in self.steps:
            lines.append(f"    {step.search:<{width}}  {step.method:<15} {duration(step.step_seconds):>8}   "
                         f"{step.trials:>4} trial(s) of ~{duration(self.trial_seconds(step))}   ({step.label})")
        trials = sum(step.trials for step in self.steps)
        lines.append(f"  one evaluation: val ~{duration(self.val_seconds)}, test ~{duration(self.test_seconds)}")
        lines.append(f"  estimated compute of the sweep: {trials} trials x {self.epochs} epochs, "
                     f"about {duration(total)} "
                     f"on {self.device} (steps, validations, one test pass each; not Ray's start of each trial)")
        return lines


def duration(seconds: float) -> str:
    """``0.8 ms``, ``12 ms``, ``3.4 s``, ``12 min``, ``2.5 h``."""
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
