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
        path = "fast path: one backward pass per step" if self.fast_path else \
            "plain path: one more partial backward pass per task and step"
        layer = f"{self.shared_layer} ({self.layer}): {path}" if self.layer != "none" else self.shared_layer
        train, val, test = self.sizes
        total = sum(step.trials * self.trial_seconds(step) for step in self.steps)
        lines = [
            f"check of {self.source}: problem {self.problem}, on {self.where}",
            f"  tasks: {len(self.tasks)}: {', '.join(kinds)}",
            f"  data: train {train}, val {val}, test {test} items; first batch: {self.batch}",
            f"  model: {self.model}, {self.parameters:,} parameters",
            f"  GradNorm's W: {layer}",
            f"  one step on {self.device} ({self.steps_per_epoch} per epoch), per search:",
        ]
        width = max(len(step.search) for step in self.steps)
        for step in self.steps:
            lines.append(f"    {step.search:<{width}}  {step.method:<15} {step.step_seconds * 1000:9.1f} ms  "
                         f"{step.trials:>4} trial(s), ~{self.trial_seconds(step):.1f} s each   ({step.label})")
        trials = sum(step.trials for step in self.steps)
        lines.append(f"  one pass over val: ~{self.val_seconds:.2f} s, over test: ~{self.test_seconds:.2f} s")
        lines.append(f"  estimated compute of the sweep: {trials} trials x {self.epochs} epochs, about {total:.0f} s "
                     f"of trial compute on {self.device} (steps, validation, a test pass each)")
        return lines
