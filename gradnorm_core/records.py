"""What one epoch of training produced: :class:`EpochRecord`, the unit the training loop
(:mod:`gradnorm_core.training`) yields and a trainer reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EpochRecord"]


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch produced. ``score`` is the validation score (lower is better).

    An epoch that did not validate (``TrainConfig.val_every``) has ``score`` None and ``val``
    empty; ``test`` is filled only at a new best validation score and at the last epoch (so the
    best epoch always has it), empty otherwise. ``weights`` are the task weights at the end of
    the epoch; ``mean_weights`` their mean over the epoch's steps, as used for the gradients
    (their mean over epochs is the time average).

    What the run has cost so far, each cumulative over its epochs (a resumed run included):
    ``elapsed_seconds``, wall-clock, which grows with whatever else loads the machine;
    ``cpu_seconds``, the CPU time of its epochs (:func:`~gradnorm_core.train_config.cpu_clock_now`: the training thread's,
    torch's intra-op threads' too where torch runs several; ``None`` when resumed from a state
    that did not count it); ``gpu_seconds``,
    the time between an event recorded on the device's stream at each epoch's start and one at
    its end (``None`` off CUDA); ``samples``, the training items processed (epochs x the train
    split's size). CPU time and samples hardly move with the machine's load: they are the units
    in which runs on a shared machine compare.
    """

    epoch: int
    score: float | None
    train: dict[str, float]
    val: dict[str, float]
    test: dict[str, float]
    weights: list[float]
    mean_weights: list[float]
    elapsed_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float | None = None
    gpu_seconds: float | None = None
    samples: int = 0

    def flat(self) -> dict[str, float]:
        """One flat mapping, e.g. for a metrics logger: ``val/score``, ``weight/<task>``, ...
        (no ``score`` for an epoch that did not validate)."""
        out: dict[str, float] = {"epoch": self.epoch}
        if self.score is not None:
            out["score"] = self.score
        for split in ("train", "val", "test"):
            out.update({f"{split}/{key}": value for key, value in getattr(self, split).items()})
        out["elapsed_seconds"] = self.elapsed_seconds
        out["samples"] = self.samples
        for key in ("cpu_seconds", "gpu_seconds"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
