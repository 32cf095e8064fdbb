"""The settings of one training run (:class:`TrainConfig`: which keys exist, their defaults and
their checks) and the device a run trains on (:func:`resolve_device`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .optim import check_options


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. ``device="auto"`` takes CUDA when there is one."""

    epochs: int = 10  # passes over the train split
    batch_size: int = 128  # items per optimizer step
    lr: float = 1e-3  # the network's learning rate (a balancer's own is its option)
    weight_decay: float = 0.0  # L2 for "adam" and "sgd", decoupled for "adamw"
    seed: int = 0  # the model's initial weights and the order of the batches
    device: str = "auto"  # "auto" (CUDA when there is one), "cpu", "cuda", "cuda:1", ...
    num_workers: int = 0  # DataLoader worker processes for a split that is not a Split
    # optimisation, precision and evaluation cadence: see gradnorm_core.optim for each one
    optimizer: str = "adam"  # "adam", "adamw" or "sgd"
    momentum: float = 0.0  # sgd only
    nesterov: bool = False  # sgd only, with momentum > 0
    schedule: str = "none"  # "none", "cosine" or "step"; the lr is updated every step
    warmup_epochs: int = 0  # linear warm-up, in epochs (< epochs)
    step_size: int | None = None  # schedule "step": epochs between decays
    gamma: float = 0.1  # schedule "step": the decay factor
    clip_grad_norm: float | None = None  # max total gradient norm; None: no clipping
    precision: str = "fp32"  # "fp32" or "bf16" (bfloat16 autocast)
    val_every: int = 1  # validate every N epochs and at the last; test at the best and the last

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"lr must be a number > 0, got {self.lr!r}")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {self.num_workers!r}")
        check_options(self)
        resolve_device(self.device)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TrainConfig:
        """The settings of keyword ``options``; an unknown key is a one-line ValueError listing the
        accepted ones (a bad value, the field's own)."""
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown training option {unknown[0]!r}; accepted: {', '.join(cls.__dataclass_fields__)}"
            )
        return cls(**options)


def resolve_device(device: str) -> torch.device:
    """The device a run of ``device`` (``"auto"``, ``"cpu"``, ``"cuda[:N]"``) trains on here:
    ``"auto"`` takes CUDA when there is one; CUDA without one is a one-line ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device is {device!r} but no CUDA device is available: use 'cpu' or 'auto'")
    return resolved
